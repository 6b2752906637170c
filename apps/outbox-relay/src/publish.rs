//! Turning claimed outbox rows into `SendMessageBatch` calls, one set per destination queue.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use aws_sdk_sqs::Client;
use domain::{Consumer, EventType, route};
use futures::future::join_all;
use outbox::PendingEvent;
use sqs_transport::{MAX_BATCH, OutgoingMessage, QueueDirectory, TransportError};
use tokio::sync::Semaphore;

/// Publishes claimed rows to the queues their event types are routed to.
#[derive(Debug, Clone)]
pub struct Publisher {
    client: Client,
    queues: QueueDirectory,
    queue_prefix: String,
    /// Bounds the `SendMessageBatch` calls in flight, shared by every clone (all the loops).
    calls: Option<Arc<Semaphore>>,
}

/// Which rows went out to every queue they are routed to, and which must be retried (grouped by
/// the reason).
#[derive(Debug, Default)]
pub struct PublishOutcome {
    /// Row ids delivered to all of their queues.
    pub published: Vec<i64>,
    /// Row ids to retry, with the reason.
    pub failed: Vec<(Vec<i64>, String)>,
}

impl Publisher {
    /// A publisher sending to queues named `<queue_prefix><consumer>.fifo`.
    pub fn new(client: Client, queue_prefix: String) -> Self {
        Publisher {
            queues: QueueDirectory::new(client.clone()),
            client,
            queue_prefix,
            calls: None,
        }
    }

    /// The publisher with at most `calls` `SendMessageBatch` calls in flight at once, across
    /// all its clones.
    #[must_use]
    pub fn with_calls_in_flight(mut self, calls: usize) -> Self {
        self.calls = Some(Arc::new(Semaphore::new(calls.max(1))));
        self
    }

    /// The queue name of `consumer`.
    pub fn queue_name(&self, consumer: Consumer) -> String {
        format!("{}{}.fifo", self.queue_prefix, consumer.name())
    }

    /// Sends every row to each of its queues, all calls in flight together. A row counts as
    /// published only when every one of its queues accepted it.
    pub async fn publish(&self, batch: &[PendingEvent]) -> PublishOutcome {
        let mut errors: HashMap<i64, String> = HashMap::new();
        let mut per_queue: BTreeMap<Consumer, Vec<OutgoingMessage>> = BTreeMap::new();
        for event in batch {
            match event.event_type.parse::<EventType>() {
                Ok(event_type) => {
                    for consumer in route(event_type) {
                        per_queue.entry(*consumer).or_default().push(message(event));
                    }
                }
                Err(unknown) => {
                    errors.insert(event.id, unknown.to_string());
                }
            }
        }
        let calls = per_queue.iter().flat_map(|(consumer, messages)| {
            messages
                .chunks(MAX_BATCH)
                .map(move |chunk| self.send_chunk(*consumer, chunk))
        });
        for (entry_ids, error) in join_all(calls).await.into_iter().flatten() {
            errors.entry(entry_ids).or_insert(error);
        }
        outcome(batch, errors)
    }

    /// Sends one chunk; returns the row ids that failed, with the reason.
    async fn send_chunk(
        &self,
        consumer: Consumer,
        chunk: &[OutgoingMessage],
    ) -> Vec<(i64, String)> {
        // A permit (the semaphore is never closed) for the call and for the queue URL lookup
        // before it, which calls GetQueueUrl the first time.
        let _permit = match &self.calls {
            Some(calls) => calls.acquire().await.ok(),
            None => None,
        };
        let result = match self.queues.url(&self.queue_name(consumer)).await {
            Ok(url) => sqs_transport::send_batch(&self.client, &url, chunk).await,
            Err(error) => Err(error),
        };
        match result {
            Ok(sent) => sent
                .failed
                .into_iter()
                .filter_map(|(entry, reason)| {
                    Some((entry.parse().ok()?, format!("{consumer}: {reason}")))
                })
                .collect(),
            Err(error) => {
                let reason = describe(consumer, &error);
                tracing::warn!(queue = %consumer, error = %reason, "publish failed, will retry");
                chunk
                    .iter()
                    .filter_map(|m| Some((m.entry_id.parse().ok()?, reason.clone())))
                    .collect()
            }
        }
    }
}

fn describe(consumer: Consumer, error: &TransportError) -> String {
    format!("{consumer}: {error}")
}

fn message(event: &PendingEvent) -> OutgoingMessage {
    OutgoingMessage {
        // The row id: unique within the batch, and maps an entry back to its row.
        entry_id: event.id.to_string(),
        body: event.envelope.clone(),
        group_id: event.aggregate_id.to_string(),
        dedup_id: event.event_id.to_string(),
        attributes: vec![
            ("event_type", event.event_type.clone()),
            ("correlation_id", event.correlation_id.clone()),
            ("traceparent", event.traceparent.clone()),
        ],
    }
}

fn outcome(batch: &[PendingEvent], errors: HashMap<i64, String>) -> PublishOutcome {
    let mut by_reason: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut published = Vec::new();
    for event in batch {
        match errors.get(&event.id) {
            Some(reason) => by_reason.entry(reason.clone()).or_default().push(event.id),
            None => published.push(event.id),
        }
    }
    PublishOutcome {
        published,
        failed: by_reason
            .into_iter()
            .map(|(reason, ids)| (ids, reason))
            .collect(),
    }
}
