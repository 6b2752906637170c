//! The Lambda adapter: the same [`Handler`] as the poller, run by AWS Lambda's SQS event source.
//!
//! Each record is decoded and handled on its own, in a span of its own (the child of the
//! record's `traceparent` attribute, not of the batch), through [`process_incoming`]; the
//! answer is a partial batch response (the event source mapping needs
//! `FunctionResponseTypes: [ReportBatchItemFailures]`):
//! - handled, or already handled (inbox): success, not listed;
//! - retryable failure: listed in `batchItemFailures`, and its visibility set to the same
//!   growing delay the poller uses (`retry_base_s × 4^(receives−1)`, capped) — or the failure's
//!   own longer hint ([`Classify::retry_after`](crate::Classify::retry_after), at most 12 h) —
//!   so it comes back after that delay rather than after the queue's whole visibility timeout;
//! - permanent failure: copied to the queue's dead-letter queue and not listed (so it is
//!   deleted); listed only if the copy could not be made;
//! - on a FIFO queue, once a record of a message group is listed, every later record of that
//!   group in the batch is listed too without being run (with the same delay), so an order's
//!   events keep their order.
//!
//! - while the invocation runs, its records are kept invisible for the short
//!   `visibility_timeout_s` at a time (one `ChangeMessageVisibilityBatch` when the batch starts,
//!   renewed every third of it; [`Hold`](crate::queue::Hold)), not for the queue's own
//!   `VisibilityTimeout` (6 × the function's timeout, as AWS asks for event sources): the
//!   records of an invocation that died — a crash, running out of memory, Lambda stopping it at
//!   its timeout — are delivered again within seconds instead of minutes. A record given a retry
//!   delay leaves the hold first, so its delay stands.
//! - a record that could not finish before the invocation's deadline (less the handler timeout
//!   and [`DEADLINE_MARGIN`]) is listed without being run, so a slow batch answers in time
//!   instead of being cut off by Lambda (which would send the whole batch back).
//!
//! The pool, the SQS client, the dead-letter queue's URL and the handler are built once per cold
//! start ([`LambdaAdapter::connect_on`]) and shared by every invocation.

use std::{
    collections::HashSet,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::Client;
use settings::{Settings, WorkerSettings};
use sqlx::PgPool;

use crate::{
    Disposition, Handler, Incoming, WorkerError, process_incoming,
    queue::{Delivery, WorkQueue},
};

/// Time kept free before the invocation's deadline to set retry delays and answer.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(2);

/// Whether this process was started by the Lambda runtime.
pub fn in_lambda() -> bool {
    std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some()
}

/// A handler with what it needs to answer SQS event batches.
pub struct LambdaAdapter<H> {
    handler: H,
    pool: PgPool,
    queue: WorkQueue,
}

impl<H: Handler> LambdaAdapter<H> {
    /// Builds the shared state once, over `pool`: SQS client, queue and dead-letter queue URLs.
    ///
    /// # Errors
    /// [`WorkerError`] when SQS cannot be reached or the queue does not exist.
    pub async fn connect_on(
        settings: &Settings,
        pool: PgPool,
        handler: H,
    ) -> Result<Self, WorkerError> {
        let queue = WorkQueue::open(settings, handler.consumer()).await?;
        Ok(LambdaAdapter {
            handler,
            pool,
            queue,
        })
    }

    /// An adapter over the given pool, client and queue, with the handler timeout and retry
    /// delays of `settings`; looks up the queue's DLQ.
    ///
    /// # Errors
    /// [`WorkerError::Transport`] when the queue's attributes cannot be read.
    pub async fn new(
        handler: H,
        pool: PgPool,
        client: Client,
        queue_url: String,
        settings: WorkerSettings,
    ) -> Result<Self, WorkerError> {
        let queue = WorkQueue::on(client, queue_url, settings).await?;
        Ok(LambdaAdapter {
            handler,
            pool,
            queue,
        })
    }

    fn handler_timeout(&self) -> Duration {
        Duration::from_secs(self.queue.settings.handler_timeout_s)
    }

    /// Handles one batch with no deadline and says which records to retry.
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        self.handle_until(event, None).await
    }

    /// Handles one batch, starting a record only while it can finish before `deadline` (less
    /// [`DEADLINE_MARGIN`]), and says which records to retry.
    pub async fn handle_until(
        &self,
        event: SqsEvent,
        deadline: Option<Instant>,
    ) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        let mut failed_groups = HashSet::new();
        let handles: Vec<String> = event
            .records
            .iter()
            .filter_map(|record| record.receipt_handle.clone())
            .collect();
        let hold = if handles.is_empty() {
            None
        } else {
            Some(self.queue.hold(handles).await)
        };
        for record in event.records {
            let message_id = record.message_id.clone().unwrap_or_default();
            let group = record.attributes.get("MessageGroupId").cloned();
            let blocked = group.as_ref().is_some_and(|g| failed_groups.contains(g));
            let late = deadline
                .is_some_and(|d| Instant::now() + self.handler_timeout() + DEADLINE_MARGIN > d);
            let outcome = if blocked {
                tracing::info!(message.id = %message_id, message.group = ?group, "an earlier record of this group failed: retrying this one after it");
                Outcome::Retry(None)
            } else if late {
                tracing::warn!(message.id = %message_id, message.group = ?group, "the invocation's deadline is near: retrying this record later");
                Outcome::Retry(None)
            } else {
                // Its span is the handling's own (`process_incoming`), the child of the record's trace
                // context, not of the batch.
                self.handle_record(&record).await
            };
            if let Outcome::Retry(after) = outcome {
                if let Some(group) = group {
                    failed_groups.insert(group);
                }
                if let Some(delivery) = delivery(&record) {
                    if let Some(hold) = &hold {
                        hold.release(delivery.receipt_handle).await;
                    }
                    self.queue.retry_later(&delivery, after).await;
                }
                response.add_failure(message_id);
            }
        }
        response
    }

    /// Runs one record: whether it may be deleted, or is to be retried (after how long, at
    /// least, if the failure said).
    async fn handle_record(&self, record: &SqsMessage) -> Outcome {
        let incoming = Incoming {
            message_id: record.message_id.as_deref().unwrap_or_default(),
            body: record.body.as_deref().unwrap_or_default(),
            traceparent: record
                .message_attributes
                .get("traceparent")
                .and_then(|a| a.string_value.as_deref()),
        };
        match process_incoming(&self.handler, &self.pool, incoming, self.handler_timeout()).await {
            Disposition::Done | Disposition::Duplicate => Outcome::Delete,
            Disposition::Retry { after, .. } => Outcome::Retry(after),
            Disposition::Park { reason } => match delivery(record) {
                Some(delivery) if self.queue.park(&delivery, &reason).await => Outcome::Delete,
                _ => Outcome::Retry(None),
            },
        }
    }
}

/// What becomes of one record of a batch.
enum Outcome {
    /// Not listed: Lambda deletes it.
    Delete,
    /// Listed in `batchItemFailures`, visible again after the growing delay or this longer hint.
    Retry(Option<Duration>),
}

/// The queue's view of a Lambda record (`None` without a receipt handle: nothing can be done
/// to it but listing it).
fn delivery(record: &SqsMessage) -> Option<Delivery<'_>> {
    Some(Delivery {
        message_id: record.message_id.as_deref().unwrap_or_default(),
        receipt_handle: record.receipt_handle.as_deref()?,
        group_id: record.attributes.get("MessageGroupId").map(String::as_str),
        receive_count: record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|n| n.parse().ok())
            .unwrap_or(1),
        body: record.body.as_deref().unwrap_or_default(),
    })
}

/// Serves Lambda invocations with `handler` until the runtime stops the process. Each
/// invocation's counters (messages by outcome, SQS requests) are written as CloudWatch EMF lines
/// when it ends ([`telemetry::emf`]), and its spans are exported before it answers (when the
/// span export is on, [`telemetry::otel::flush`]).
///
/// # Errors
/// When the shared state cannot be built or the runtime fails.
pub async fn run<H: Handler>(
    settings: &Settings,
    pool: PgPool,
    handler: H,
) -> Result<(), lambda_runtime::Error> {
    telemetry::emf::install(handler.consumer().name());
    let adapter = LambdaAdapter::connect_on(settings, pool, handler).await?;
    let adapter = &adapter;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<SqsEvent>| async move {
            let deadline = deadline_instant(event.context.deadline, SystemTime::now());
            let response = adapter.handle_until(event.payload, Some(deadline)).await;
            telemetry::emf::flush();
            // The sandbox may be frozen once the invocation answers: its spans leave now, in
            // the time left before the deadline.
            telemetry::otel::flush(flush_limit(deadline)).await;
            Ok::<_, lambda_runtime::Error>(response)
        },
    ))
    .await
}

/// How long the span flush at the end of an invocation may take: until half a second before its
/// deadline (the answer's own time), at least 100 ms.
fn flush_limit(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .saturating_sub(Duration::from_millis(500))
        .max(Duration::from_millis(100))
}

/// The invocation's deadline (milliseconds since the epoch, as Lambda gives it) as an instant.
fn deadline_instant(deadline_ms: u64, now: SystemTime) -> Instant {
    let deadline = UNIX_EPOCH + Duration::from_millis(deadline_ms);
    Instant::now() + deadline.duration_since(now).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_span_flush_ends_half_a_second_before_the_deadline_and_gets_at_least_100_ms() {
        let in_ten_s = Instant::now() + Duration::from_secs(10);
        let limit = flush_limit(in_ten_s);
        assert!(limit <= Duration::from_millis(9_500), "{limit:?}");
        assert!(limit >= Duration::from_millis(9_000), "{limit:?}");
        assert_eq!(flush_limit(Instant::now()), Duration::from_millis(100));
    }
}
