//! The Lambda adapter: the same [`Handler`] as the poller, run by AWS Lambda's SQS event source.
//!
//! Each record is decoded and handled on its own, in a span of its own, through [`process`]; the
//! answer is a partial batch response (the event source mapping needs
//! `FunctionResponseTypes: [ReportBatchItemFailures]`):
//! - handled, or already handled (inbox): success, not listed;
//! - retryable failure: listed in `batchItemFailures`, so Lambda makes it visible again;
//! - permanent failure: copied to the queue's dead-letter queue and not listed (so it is
//!   deleted); listed only if the copy could not be made;
//! - on a FIFO queue, once a record of a message group is listed, every later record of that
//!   group in the batch is listed too without being run, so an order's events keep their order.
//!
//! The pool, the SQS client, the dead-letter queue's URL and the handler are built once per cold
//! start ([`LambdaAdapter::connect_on`]) and shared by every invocation.

use std::{collections::HashSet, time::Duration};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::Client;
use settings::Settings;
use sqlx::PgPool;
use sqs_transport::consume;
use tracing::Instrument;

use crate::{
    Disposition, Handler, WorkerError,
    dlq::{self, Parked},
    error_chain, process,
};

/// Whether this process was started by the Lambda runtime.
pub fn in_lambda() -> bool {
    std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some()
}

/// A handler with what it needs to answer SQS event batches.
pub struct LambdaAdapter<H> {
    handler: H,
    pool: PgPool,
    client: Client,
    queue_url: String,
    dlq_url: Option<String>,
    timeout: Duration,
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
        let (client, queue_url) = crate::consumer_queue(settings, handler.consumer()).await?;
        let timeout = Duration::from_secs(settings.worker.handler_timeout_s);
        Self::new(handler, pool, client, queue_url, timeout).await
    }

    /// An adapter over the given pool, client and queue; looks up the queue's DLQ.
    ///
    /// # Errors
    /// [`WorkerError::Transport`] when the queue's attributes cannot be read.
    pub async fn new(
        handler: H,
        pool: PgPool,
        client: Client,
        queue_url: String,
        timeout: Duration,
    ) -> Result<Self, WorkerError> {
        let dlq_url = consume::dead_letter_queue_url(&client, &queue_url).await?;
        Ok(LambdaAdapter {
            handler,
            pool,
            client,
            queue_url,
            dlq_url,
            timeout,
        })
    }

    /// Handles one batch and says which records to retry.
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        let mut failed_groups = HashSet::new();
        for record in event.records {
            let message_id = record.message_id.clone().unwrap_or_default();
            let group = record.attributes.get("MessageGroupId").cloned();
            let blocked = group.as_ref().is_some_and(|g| failed_groups.contains(g));
            let span =
                tracing::info_span!("sqs.record", message.id = %message_id, message.group = ?group);
            let succeeded = if blocked {
                tracing::info!(parent: &span, "an earlier record of this group failed: retrying this one after it");
                false
            } else {
                self.handle_record(&record).instrument(span).await
            };
            if !succeeded {
                if let Some(group) = group {
                    failed_groups.insert(group);
                }
                response.add_failure(message_id);
            }
        }
        response
    }

    /// Runs one record; true when it may be deleted.
    async fn handle_record(&self, record: &SqsMessage) -> bool {
        let body = record.body.as_deref().unwrap_or_default();
        match process(&self.handler, &self.pool, body, self.timeout).await {
            Disposition::Done | Disposition::Duplicate => true,
            Disposition::Retry { .. } => false,
            Disposition::Park { reason } => self.park(record, body, &reason).await,
        }
    }

    async fn park(&self, record: &SqsMessage, body: &str, reason: &str) -> bool {
        let Some(dlq_url) = &self.dlq_url else {
            tracing::error!(
                "the queue has no dead-letter queue: leaving the poison record to expire"
            );
            return false;
        };
        let parked = Parked {
            message_id: record.message_id.as_deref().unwrap_or_default(),
            group_id: record.attributes.get("MessageGroupId").map(String::as_str),
            body,
            reason,
            from: &self.queue_url,
        };
        match dlq::park(&self.client, dlq_url, &parked).await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %error_chain(&e), "could not park a record; it will come back");
                false
            }
        }
    }
}

/// Serves Lambda invocations with `handler` until the runtime stops the process.
///
/// # Errors
/// When the shared state cannot be built or the runtime fails.
pub async fn run<H: Handler>(
    settings: &Settings,
    pool: PgPool,
    handler: H,
) -> Result<(), lambda_runtime::Error> {
    let adapter = LambdaAdapter::connect_on(settings, pool, handler).await?;
    let adapter = &adapter;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<SqsEvent>| async move {
            Ok::<_, lambda_runtime::Error>(adapter.handle(event.payload).await)
        },
    ))
    .await
}
