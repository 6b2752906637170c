//! The long-running SQS consumer of one worker.
//!
//! One loop receives (long poll, at most as many messages as there are free slots), one task
//! per message runs the handler while a side task keeps the message invisible, and one task
//! deletes finished messages in batches. Retryable failures come back after a delay that grows
//! with the receive count (or after the failure's own longer hint, such as a partner's
//! `Retry-After`, at most 12 h); permanent ones are copied to the dead-letter queue and deleted
//! at once, so one poison message never holds back its batch-mates. On shutdown the loop stops
//! receiving, in-flight messages finish, and the last deletes are flushed. A side task keeps
//! the dead-letter queue's depth metric current.

use std::{sync::Arc, time::Duration};

use aws_sdk_sqs::Client;
use settings::{Settings, WorkerSettings};
use sqlx::PgPool;
use sqs_transport::consume::{self, ReceivedMessage};
use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore, mpsc},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

use crate::{
    Disposition, Handler, WorkerError, error_chain, process,
    queue::{Delivery, WorkQueue},
};

/// How long the deleter waits for more finished messages before sending a partial batch.
const DELETE_LINGER: Duration = Duration::from_millis(20);
/// Pause after a failed receive before the next one.
const RECEIVE_ERROR_PAUSE: Duration = Duration::from_secs(1);
/// How often the dead-letter queue's depth is read (and after every message parked).
const DLQ_DEPTH_EVERY: Duration = Duration::from_secs(15);

/// Runs a [`Handler`] over its SQS queue until cancelled.
pub struct Poller<H> {
    shared: Arc<Shared<H>>,
}

struct Shared<H> {
    handler: H,
    pool: PgPool,
    queue: WorkQueue,
}

impl<H: Handler> Poller<H> {
    /// Connects to the database and resolves the handler's queue (`<prefix><consumer>.fifo`)
    /// and its dead-letter queue.
    ///
    /// # Errors
    /// [`WorkerError`] when PostgreSQL or SQS cannot be reached or the queue does not exist.
    pub async fn connect(settings: &Settings, handler: H) -> Result<Self, WorkerError> {
        let pool = settings.database.connect().await?;
        Self::connect_on(settings, pool, handler).await
    }

    /// Like [`Poller::connect`], over a pool the caller already has (and shares with the handler).
    ///
    /// # Errors
    /// [`WorkerError`] when SQS cannot be reached or the queue does not exist.
    pub async fn connect_on(
        settings: &Settings,
        pool: PgPool,
        handler: H,
    ) -> Result<Self, WorkerError> {
        let queue = WorkQueue::open(settings, handler.consumer()).await?;
        Ok(Self::with_queue(handler, pool, queue))
    }

    /// A poller over the given pool, client and queue; looks up the queue's DLQ.
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
        Ok(Self::with_queue(handler, pool, queue))
    }

    fn with_queue(handler: H, pool: PgPool, queue: WorkQueue) -> Self {
        Poller {
            shared: Arc::new(Shared {
                handler,
                pool,
                queue,
            }),
        }
    }

    /// Receives and handles messages until `cancel` fires, then lets in-flight messages finish.
    pub async fn run(self, cancel: CancellationToken) {
        let shared = self.shared;
        let consumer = shared.handler.consumer();
        tracing::info!(%consumer, queue_url = shared.queue.url, in_flight = shared.queue.settings.in_flight, "worker started");
        let slots = Arc::new(Semaphore::new(shared.queue.settings.in_flight));
        let (finished_tx, finished_rx) = mpsc::channel(shared.queue.settings.in_flight * 2 + 10);
        let deleter = tokio::spawn(delete_finished(Arc::clone(&shared), finished_rx));
        let depth_watch = tokio::spawn(watch_dlq_depth(Arc::clone(&shared), cancel.clone()));
        let mut tasks = JoinSet::new();
        while let Some(batch) = next_batch(&shared, &slots, &cancel).await {
            for (message, slot) in batch {
                let shared = Arc::clone(&shared);
                tasks.spawn(handle_one(shared, message, slot, finished_tx.clone()));
            }
            while tasks.try_join_next().is_some() {}
        }
        tracing::info!(%consumer, in_flight = tasks.len(), "worker stopping: finishing in-flight messages");
        while tasks.join_next().await.is_some() {}
        drop(finished_tx);
        let _ = deleter.await;
        let _ = depth_watch.await;
        tracing::info!(%consumer, "worker stopped");
    }
}

/// Waits for a free slot, then receives as many messages as there are free slots (at most 10),
/// each paired with its slot. `None` once cancelled.
async fn next_batch<H: Handler>(
    shared: &Shared<H>,
    slots: &Arc<Semaphore>,
    cancel: &CancellationToken,
) -> Option<Vec<(ReceivedMessage, OwnedSemaphorePermit)>> {
    loop {
        let first = tokio::select! {
            permit = Arc::clone(slots).acquire_owned() => permit.ok()?,
            () = cancel.cancelled() => return None,
        };
        let want = (slots.available_permits() + 1).min(sqs_transport::MAX_BATCH);
        let received = tokio::select! {
            received = receive(shared, want) => received,
            () = cancel.cancelled() => return None,
        };
        let Some(messages) = received else {
            drop(first);
            tokio::select! {
                () = tokio::time::sleep(RECEIVE_ERROR_PAUSE) => continue,
                () = cancel.cancelled() => return None,
            }
        };
        if messages.is_empty() {
            continue;
        }
        // Only this loop takes slots, so the ones counted before the receive are still free.
        let mut permits = vec![first];
        while permits.len() < messages.len() {
            permits.push(Arc::clone(slots).acquire_owned().await.ok()?);
        }
        return Some(messages.into_iter().zip(permits).collect());
    }
}

async fn receive<H: Handler>(shared: &Shared<H>, want: usize) -> Option<Vec<ReceivedMessage>> {
    let settings = &shared.queue.settings;
    let result = consume::receive(
        &shared.queue.client,
        &shared.queue.url,
        want as i32,
        settings.wait_time_s,
        settings.visibility_timeout_s,
    )
    .await;
    result
        .inspect_err(|e| tracing::warn!(error = %error_chain(e), "receive failed, retrying"))
        .ok()
}

/// Runs the handler on one message and acts on the outcome; releases the slot when done.
async fn handle_one<H: Handler>(
    shared: Arc<Shared<H>>,
    message: ReceivedMessage,
    _slot: OwnedSemaphorePermit,
    finished: mpsc::Sender<String>,
) {
    let keep_hidden = tokio::spawn(keep_invisible(
        Arc::clone(&shared),
        message.receipt_handle.clone(),
    ));
    let timeout = Duration::from_secs(shared.queue.settings.handler_timeout_s);
    let disposition = process(&shared.handler, &shared.pool, &message.body, timeout).await;
    keep_hidden.abort();
    match disposition {
        Disposition::Done | Disposition::Duplicate => {
            let _ = finished.send(message.receipt_handle).await;
        }
        Disposition::Retry { after, .. } => {
            shared.queue.retry_later(&delivery(&message), after).await
        }
        Disposition::Park { reason } => {
            if shared.queue.park(&delivery(&message), &reason).await {
                shared.queue.refresh_dlq_depth().await;
                let _ = finished.send(message.receipt_handle).await;
            } else {
                shared.queue.retry_later(&delivery(&message), None).await;
            }
        }
    }
}

/// Renews the message's visibility every third of the timeout while its handler works.
async fn keep_invisible<H: Handler>(shared: Arc<Shared<H>>, receipt_handle: String) {
    let queue = &shared.queue;
    let timeout = queue.settings.visibility_timeout_s;
    let every = Duration::from_millis(timeout as u64 * 1000 / 3);
    loop {
        tokio::time::sleep(every).await;
        let renewed =
            consume::change_visibility(&queue.client, &queue.url, &receipt_handle, timeout).await;
        if let Err(e) = renewed {
            tracing::warn!(error = %error_chain(&e), "could not extend a message's visibility");
        }
    }
}

/// The queue's view of a received message.
fn delivery(message: &ReceivedMessage) -> Delivery<'_> {
    Delivery {
        message_id: &message.message_id,
        receipt_handle: &message.receipt_handle,
        group_id: message.group_id.as_deref(),
        receive_count: message.receive_count,
        body: &message.body,
    }
}

/// Reads the dead-letter queue's depth now and every [`DLQ_DEPTH_EVERY`] until cancelled.
async fn watch_dlq_depth<H: Handler>(shared: Arc<Shared<H>>, cancel: CancellationToken) {
    loop {
        shared.queue.refresh_dlq_depth().await;
        tokio::select! {
            () = tokio::time::sleep(DLQ_DEPTH_EVERY) => {}
            () = cancel.cancelled() => return,
        }
    }
}

/// Deletes finished messages in batches of up to ten until the channel closes.
async fn delete_finished<H: Handler>(shared: Arc<Shared<H>>, mut finished: mpsc::Receiver<String>) {
    let mut batch = Vec::with_capacity(sqs_transport::MAX_BATCH);
    while let Some(first) = finished.recv().await {
        batch.push(first);
        while batch.len() < sqs_transport::MAX_BATCH {
            match tokio::time::timeout(DELETE_LINGER, finished.recv()).await {
                Ok(Some(next)) => batch.push(next),
                _ => break,
            }
        }
        delete(&shared, &batch).await;
        batch.clear();
    }
}

async fn delete<H: Handler>(shared: &Shared<H>, receipt_handles: &[String]) {
    match consume::delete_batch(&shared.queue.client, &shared.queue.url, receipt_handles).await {
        Ok(outcome) if outcome.failed.is_empty() => {}
        Ok(outcome) => {
            tracing::warn!(failed = ?outcome.failed, "some deletes failed; those messages come back and are deduplicated by the inbox")
        }
        Err(e) => {
            tracing::warn!(error = %error_chain(&e), "delete failed; the messages come back and are deduplicated by the inbox")
        }
    }
}
