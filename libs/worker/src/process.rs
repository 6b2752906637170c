//! One message through one handler, whatever the transport.
//!
//! The decision what to do with a message is made here, once, and expressed as a
//! [`Disposition`]; the SQS poller and a Lambda adapter only translate it into their own
//! acknowledgement. Each failure is logged here, where it is handled, and nowhere else.

use std::time::Duration;

use domain::{Aggregate, Consumer, Event, EventEnvelope};
use outbox::inbox::{self, Inbox};
use sqlx::{PgPool, Postgres, Transaction};
use tracing::Instrument;
use uuid::Uuid;

use crate::{Classify, Failure, Handler, error_chain, metrics};

/// What to do with a message after it was processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Handled and committed: delete the message.
    Done,
    /// Already handled before (the inbox row exists): delete the message.
    Duplicate,
    /// Failed in a way that may pass: let the message come back later.
    Retry {
        /// What failed (for logs; never a message body).
        reason: String,
        /// The failure's own hint of when to try again ([`Classify::retry_after`]): the message
        /// stays invisible for at least this long (and at least the transport's growing delay).
        after: Option<Duration>,
    },
    /// Can never succeed: move the message to the dead-letter queue now.
    Park {
        /// Why (kept with the parked message for the operator).
        reason: String,
    },
}

/// How a decoded event's handling ended, when it did ([`Handler::run`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Handled now; its changes are committed with the inbox row.
    Done,
    /// Handled before (the inbox row exists): nothing was written.
    Duplicate,
}

/// Why running a decoded event did not finish ([`Handler::run`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError<E> {
    /// The handler's own error, sorted by its [`Classify`].
    #[error("the handler failed")]
    Handler(#[source] E),
    /// A transaction could not begin or commit (retryable unless PostgreSQL refused the data).
    #[error("the transaction failed")]
    Database(#[from] sqlx::Error),
    /// The inbox row could not be written (retryable).
    #[error("the inbox write failed")]
    Inbox(#[from] outbox::OutboxError),
    /// The handler ran past the runtime's time limit and was abandoned (retryable).
    #[error("the handler did not finish within {0:?}")]
    Timeout(Duration),
}

/// Begins the transaction that ends an event's handling and writes the event's inbox row in it,
/// so that whatever the caller then writes in it commits exactly once with that row. `None` when
/// `consumer` has handled the event already: the row exists, nothing was written (the
/// transaction is rolled back). If another delivery of the event is ending right now, the
/// insert waits for it and then sees its row.
///
/// # Errors
/// [`RunError::Database`] when the transaction cannot begin, [`RunError::Inbox`] when the inbox
/// write fails.
pub async fn begin_with_inbox<E>(
    pool: &PgPool,
    consumer: Consumer,
    event_id: Uuid,
) -> Result<Option<Transaction<'static, Postgres>>, RunError<E>> {
    let mut tx = pool.begin().await?;
    match inbox::record(&mut tx, consumer.name(), event_id).await? {
        Inbox::New => Ok(Some(tx)),
        Inbox::Duplicate => Ok(None),
    }
}

/// [`Handler::run`]'s default: [`Handler::handle`] in one transaction that begins with the inbox
/// row ([`begin_with_inbox`]) and commits when the handler returns `Ok`.
pub(crate) async fn in_one_transaction<H: Handler + ?Sized>(
    handler: &H,
    event: &Event,
    pool: &PgPool,
) -> Result<Handled, RunError<H::Error>> {
    let Some(mut tx) = begin_with_inbox(pool, handler.consumer(), event.id).await? else {
        return Ok(Handled::Duplicate);
    };
    handler
        .handle(event, &mut tx)
        .await
        .map_err(RunError::Handler)?;
    tx.commit().await?;
    Ok(Handled::Done)
}

/// Decodes `body` and runs `handler` on it ([`Handler::run`]: by default in one transaction with
/// the inbox row), giving up after `timeout` (an open transaction is then rolled back). The
/// decision is counted in
/// [`metrics::MESSAGES_TOTAL`](crate::metrics::MESSAGES_TOTAL), here and nowhere else.
pub async fn process<H: Handler>(
    handler: &H,
    pool: &PgPool,
    body: &str,
    timeout: Duration,
) -> Disposition {
    let event = match decode(body) {
        Ok(event) => event,
        Err(reason) => {
            tracing::warn!(consumer = %handler.consumer(), reason, "parking a message that cannot be decoded");
            let parked = Disposition::Park { reason };
            metrics::record(handler.consumer(), &parked, None);
            return parked;
        }
    };
    let span = tracing::info_span!(
        "event",
        event.id = %event.id,
        event.r#type = %event.event_type(),
        order.id = tracing::field::Empty,
        sign_in_request.id = tracing::field::Empty,
        correlation_id = %event.correlation_id,
        trace_id = %telemetry::trace::trace_id_of(&event.traceparent),
        consumer = %handler.consumer(),
    );
    // The envelope's aggregate is an order for every event type but the sign-in request.
    match event.event_type().aggregate() {
        Aggregate::Order => span.record("order.id", tracing::field::display(event.order_id)),
        Aggregate::SignInRequest => span.record(
            "sign_in_request.id",
            tracing::field::display(event.order_id),
        ),
    };
    async {
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(timeout, run(handler, pool, &event))
            .await
            .unwrap_or(Err(RunError::Timeout(timeout)));
        let elapsed = started.elapsed();
        let decided = disposition(result, elapsed);
        metrics::record(handler.consumer(), &decided, Some(elapsed));
        decided
    }
    .instrument(span)
    .await
}

/// The typed event in `body`, or why there is none (a permanent failure).
fn decode(body: &str) -> Result<Event, String> {
    let envelope: EventEnvelope = serde_json::from_str(body).map_err(|e| {
        // Redacted: the body's values (an e-mail address, a name) must not reach the logs
        // or the parked message's reason.
        format!(
            "not an event envelope: {}",
            domain::redact::SchemaMismatch::of(&e)
        )
    })?;
    Event::from_envelope(envelope).map_err(|e| error_chain(&e))
}

async fn run<H: Handler>(
    handler: &H,
    pool: &PgPool,
    event: &Event,
) -> Result<Disposition, RunError<H::Error>> {
    Ok(match handler.run(event, pool).await? {
        Handled::Done => Disposition::Done,
        Handled::Duplicate => Disposition::Duplicate,
    })
}

fn disposition<E: std::error::Error + Classify + 'static>(
    result: Result<Disposition, RunError<E>>,
    elapsed: Duration,
) -> Disposition {
    let duration_ms = elapsed.as_millis() as u64;
    match result {
        Ok(done) => {
            tracing::info!(duration_ms, outcome = ?done, "event handled");
            done
        }
        Err(error) => {
            let reason = error_chain(&error);
            let (failure, after) = match &error {
                RunError::Handler(e) => (e.failure(), e.retry_after()),
                RunError::Database(e) => (e.failure(), None),
                RunError::Inbox(_) | RunError::Timeout(_) => (Failure::Retryable, None),
            };
            if failure == Failure::Permanent {
                tracing::error!(duration_ms, error = %reason, "parking an event that cannot succeed");
                Disposition::Park { reason }
            } else {
                let after_s = after.map(|a| a.as_secs_f64());
                tracing::warn!(duration_ms, error = %reason, after_s, "event failed, it will be retried");
                Disposition::Retry { reason, after }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("rate limited")]
    struct RateLimited(Failure);

    impl Classify for RateLimited {
        fn failure(&self) -> Failure {
            self.0
        }

        fn retry_after(&self) -> Option<Duration> {
            Some(Duration::from_secs(30))
        }
    }

    fn decide(result: Result<Disposition, RunError<RateLimited>>) -> Disposition {
        disposition(result, Duration::ZERO)
    }

    #[test]
    fn a_retryable_failure_carries_its_retry_hint_to_the_transport() {
        let retried = decide(Err(RunError::Handler(RateLimited(Failure::Retryable))));
        assert_eq!(
            retried,
            Disposition::Retry {
                reason: "the handler failed: rate limited".into(),
                after: Some(Duration::from_secs(30)),
            }
        );
        let timed_out = decide(Err(RunError::Timeout(Duration::from_secs(1))));
        assert!(matches!(timed_out, Disposition::Retry { after: None, .. }));
        let parked = decide(Err(RunError::Handler(RateLimited(Failure::Permanent))));
        assert!(matches!(parked, Disposition::Park { .. }));
    }

    #[test]
    fn a_body_that_cannot_be_decoded_is_parked_without_the_values_it_holds() {
        let envelope = |payload: &str| {
            format!(
                r#"{{"event_id": "0190c1d2-0000-7000-8000-000000000001", "event_type": "order.placed",
                    "version": 1, "order_id": "0190c1d2-0000-7000-8000-000000000002",
                    "occurred_at": "2026-12-04T10:00:00Z", "correlation_id": "c", "traceparent": "",
                    "payload": {payload}}}"#
            )
        };
        let bodies = [
            r#"{"event_id": "ada@example.com"}"#.to_owned(),
            envelope(r#"{"customer_name": "Ada Lovelace", "customer_email": 42}"#),
            envelope(r#"{"customer_name": ["12 Analytical Row"]}"#),
        ];
        for body in bodies {
            let reason = decode(&body).expect_err("not decodable");
            for personal in ["ada@example.com", "Ada Lovelace", "Analytical"] {
                assert!(!reason.contains(personal), "{personal} in {reason}");
            }
            assert!(
                reason.contains("invalid"),
                "it still says what is wrong: {reason}"
            );
        }
    }
}
