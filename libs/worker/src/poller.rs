//! The long-running SQS consumer of one worker.
//!
//! One loop receives (long poll, at most as many messages as there are free slots), one task
//! per message runs the handler while a side task keeps the message invisible, and one task
//! deletes finished messages in batches. Retryable failures come back after a delay that grows
//! with the receive count; permanent ones are copied to the dead-letter queue and deleted at
//! once, so one poison message never holds back its batch-mates. On shutdown the loop stops
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
    Disposition, Handler, WorkerError,
    dlq::{self, Parked},
    error_chain, metrics, process,
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
    client: Client,
    queue_url: String,
    dlq_url: Option<String>,
    settings: WorkerSettings,
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
        let (client, queue_url) = crate::consumer_queue(settings, handler.consumer()).await?;
        Self::new(handler, pool, client, queue_url, settings.worker.clone()).await
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
        let dlq_url = consume::dead_letter_queue_url(&client, &queue_url).await?;
        if dlq_url.is_none() {
            tracing::warn!(
                queue_url,
                "the queue has no dead-letter queue: poison messages will be retried until they expire"
            );
        }
        metrics::describe();
        let shared = Shared {
            handler,
            pool,
            client,
            queue_url,
            dlq_url,
            settings,
        };
        Ok(Poller {
            shared: Arc::new(shared),
        })
    }

    /// Receives and handles messages until `cancel` fires, then lets in-flight messages finish.
    pub async fn run(self, cancel: CancellationToken) {
        let shared = self.shared;
        let consumer = shared.handler.consumer();
        tracing::info!(%consumer, queue_url = shared.queue_url, in_flight = shared.settings.in_flight, "worker started");
        let slots = Arc::new(Semaphore::new(shared.settings.in_flight));
        let (finished_tx, finished_rx) = mpsc::channel(shared.settings.in_flight * 2 + 10);
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
    let settings = &shared.settings;
    let result = consume::receive(
        &shared.client,
        &shared.queue_url,
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
    let timeout = Duration::from_secs(shared.settings.handler_timeout_s);
    let disposition = process(&shared.handler, &shared.pool, &message.body, timeout).await;
    keep_hidden.abort();
    match disposition {
        Disposition::Done | Disposition::Duplicate => {
            let _ = finished.send(message.receipt_handle).await;
        }
        Disposition::Retry { .. } => retry_later(&shared, &message).await,
        Disposition::Park { reason } => {
            if park(&shared, &message, &reason).await {
                let _ = finished.send(message.receipt_handle).await;
            }
        }
    }
}

/// Renews the message's visibility every third of the timeout while its handler works.
async fn keep_invisible<H: Handler>(shared: Arc<Shared<H>>, receipt_handle: String) {
    let timeout = shared.settings.visibility_timeout_s;
    let every = Duration::from_millis(timeout as u64 * 1000 / 3);
    loop {
        tokio::time::sleep(every).await;
        let renewed =
            consume::change_visibility(&shared.client, &shared.queue_url, &receipt_handle, timeout)
                .await;
        if let Err(e) = renewed {
            tracing::warn!(error = %error_chain(&e), "could not extend a message's visibility");
        }
    }
}

/// The redelivery delay after the `receive_count`-th receive failed: `base × 4^(n−1)`, capped.
pub(crate) fn retry_delay(settings: &WorkerSettings, receive_count: u32) -> i32 {
    let exponent = receive_count.saturating_sub(1).min(15);
    let delay = i64::from(settings.retry_base_s) * 4_i64.pow(exponent);
    delay.min(i64::from(settings.retry_max_s)) as i32
}

async fn retry_later<H: Handler>(shared: &Shared<H>, message: &ReceivedMessage) {
    let delay = retry_delay(&shared.settings, message.receive_count);
    let changed = consume::change_visibility(
        &shared.client,
        &shared.queue_url,
        &message.receipt_handle,
        delay,
    )
    .await;
    match changed {
        Ok(()) => tracing::info!(
            message.id = message.message_id,
            receive_count = message.receive_count,
            delay_s = delay,
            "message will be redelivered"
        ),
        Err(e) => {
            tracing::warn!(error = %error_chain(&e), "could not set the redelivery delay; the visibility timeout applies")
        }
    }
}

/// Copies the message to the dead-letter queue with the reason; true when it is safe to delete.
async fn park<H: Handler>(shared: &Shared<H>, message: &ReceivedMessage, reason: &str) -> bool {
    let Some(dlq_url) = &shared.dlq_url else {
        retry_later(shared, message).await;
        return false;
    };
    let parked = Parked {
        message_id: &message.message_id,
        group_id: message.group_id.as_deref(),
        body: &message.body,
        reason,
        from: &shared.queue_url,
    };
    match dlq::park(&shared.client, dlq_url, &parked).await {
        Ok(()) => {
            refresh_dlq_depth(shared).await;
            true
        }
        Err(e) => {
            tracing::error!(error = %error_chain(&e), "could not park a message; it will come back");
            retry_later(shared, message).await;
            false
        }
    }
}

/// Reads the dead-letter queue's depth now and every [`DLQ_DEPTH_EVERY`] until cancelled.
async fn watch_dlq_depth<H: Handler>(shared: Arc<Shared<H>>, cancel: CancellationToken) {
    loop {
        refresh_dlq_depth(&shared).await;
        tokio::select! {
            () = tokio::time::sleep(DLQ_DEPTH_EVERY) => {}
            () = cancel.cancelled() => return,
        }
    }
}

async fn refresh_dlq_depth<H: Handler>(shared: &Shared<H>) {
    let Some(dlq_url) = &shared.dlq_url else {
        return;
    };
    match dlq::depth(&shared.client, dlq_url).await {
        Ok(depth) => metrics::set_dlq_depth(dlq_url, depth),
        Err(e) => {
            tracing::warn!(error = %error_chain(&e), "could not read the dead-letter queue's depth")
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
    match consume::delete_batch(&shared.client, &shared.queue_url, receipt_handles).await {
        Ok(outcome) if outcome.failed.is_empty() => {}
        Ok(outcome) => {
            tracing::warn!(failed = ?outcome.failed, "some deletes failed; those messages come back and are deduplicated by the inbox")
        }
        Err(e) => {
            tracing::warn!(error = %error_chain(&e), "delete failed; the messages come back and are deduplicated by the inbox")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_redelivery_delay_grows_fourfold_per_receive_up_to_the_cap() {
        let settings = WorkerSettings {
            retry_base_s: 2,
            retry_max_s: 300,
            ..WorkerSettings::default()
        };
        let delays: Vec<i32> = (1..=6).map(|n| retry_delay(&settings, n)).collect();
        assert_eq!(delays, [2, 8, 32, 128, 300, 300]);
        assert_eq!(retry_delay(&settings, 0), 2);
        assert_eq!(retry_delay(&settings, u32::MAX), 300);
    }
}
