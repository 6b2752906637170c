//! The relay under AWS Lambda: a scheduled function (EventBridge, every minute) whose every
//! invocation runs the same relay as the long-running process for a bounded time, and sweeps
//! once for expired orders beside it ([`crate::expiry`]), then answers with what it published
//! and expired: `{"published": n, "failed": n, "expired": n}`.
//!
//! A run lasts `relay.lambda_run_s` (50 s by default), or less when the invocation's deadline is
//! nearer: it stops `DEADLINE_MARGIN` before it so that batches in flight can finish and commit.
//! While a run lasts, `LISTEN/NOTIFY` wakes it as it wakes the long-running relay, so the lag is
//! the same; between runs (the few seconds until the next schedule) rows wait. Overlapping runs
//! are safe: rows are claimed with `FOR UPDATE SKIP LOCKED`, one per order at a time, and due
//! orders with `FOR NO KEY UPDATE SKIP LOCKED`. The sweep runs at the start of the run, so the
//! `order.cancelled` rows it writes go out in the same invocation; it stops between two batches
//! when the run's time is up. The stuck gauge is not served under Lambda (no metrics port).
//!
//! Nothing runs between invocations: each one starts the claim loops, the listener and the purge
//! and stops them all before it answers, so a frozen Lambda sandbox holds no half-done batch.
//! The pool and the SQS client are built once per cold start.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::{Relay, RunSummary};

/// Time kept free before the invocation's deadline to finish the batches in flight.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(5);

/// The most the span flush at the end of an invocation may take (within [`DEADLINE_MARGIN`]).
pub const FLUSH_LIMIT: Duration = Duration::from_secs(2);
const _: () = assert!(FLUSH_LIMIT.as_millis() < DEADLINE_MARGIN.as_millis());

/// How long a run started now may last: `run_for`, cut to the deadline (milliseconds since the
/// epoch, as Lambda gives it) less [`DEADLINE_MARGIN`].
pub fn budget(run_for: Duration, deadline_ms: u64, now: SystemTime) -> Duration {
    let deadline = UNIX_EPOCH + Duration::from_millis(deadline_ms);
    let left = deadline
        .duration_since(now)
        .unwrap_or_default()
        .saturating_sub(DEADLINE_MARGIN);
    run_for.min(left)
}

/// Runs `relay` for `budget` with one expiry sweep beside it (if it has a sweeper), then stops
/// it and says what it did.
pub async fn run_for(relay: Relay, budget: Duration) -> RunSummary {
    let stop = CancellationToken::new();
    let timer = tokio::spawn({
        let stop = stop.clone();
        async move {
            tokio::time::sleep(budget).await;
            stop.cancel();
        }
    });
    let (relay, sweeper) = relay.without_sweeper();
    let sweep = async {
        match &sweeper {
            Some(sweeper) => sweeper.sweep(&stop).await.expired,
            None => 0,
        }
    };
    let (mut summary, expired) = tokio::join!(relay.run(stop.clone()), sweep);
    summary.expired = expired;
    timer.abort();
    summary
}

/// Serves scheduled invocations until the Lambda runtime stops the process. The event's
/// content is ignored (any schedule payload will do). The run's counters and gauges are written
/// as CloudWatch EMF lines at its end ([`telemetry::emf`]), and its spans are exported before it
/// answers (when the span export is on, [`telemetry::otel::flush`]).
///
/// # Errors
/// When the runtime fails.
pub async fn serve(relay: Relay, run_for_at_most: Duration) -> Result<(), lambda_runtime::Error> {
    telemetry::emf::install("outbox-relay");
    let relay = &relay;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let budget = budget(run_for_at_most, event.context.deadline, SystemTime::now());
        tracing::info!(budget_ms = budget.as_millis(), "relay invocation");
        let summary = run_for(relay.clone(), budget).await;
        telemetry::emf::flush();
        // The sandbox may be frozen once the invocation answers: its spans leave now, within
        // the margin the run kept before the deadline.
        telemetry::otel::flush(FLUSH_LIMIT).await;
        Ok::<_, lambda_runtime::Error>(summary)
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_ends_before_the_deadline() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let deadline_ms = 1_000_000 + 60_000; // one minute from now
        let fifty = Duration::from_secs(50);
        assert_eq!(budget(fifty, deadline_ms, now), fifty);
        assert_eq!(
            budget(Duration::from_secs(90), deadline_ms, now),
            Duration::from_secs(55)
        );
        let soon = 1_000_000 + 3_000; // closer than the margin
        assert_eq!(budget(fifty, soon, now), Duration::ZERO);
        assert_eq!(budget(fifty, 0, now), Duration::ZERO, "already past");
    }
}
