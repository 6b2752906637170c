//! The long-running SQS consumer of one worker.
//!
//! One loop receives (long poll, at most as many messages as there are free slots), one task
//! per message runs the handler while a side task keeps the message invisible (it makes a call
//! only for a handler that outlives a third of the visibility timeout), and one task deletes
//! finished messages in batches, each waiting up to `delete_linger_ms` for others to join it.
//!
//! Requests are kept few and full: a receive waits (up to `receive_linger_ms`) until half a
//! batch of slots is free rather than taking one message per freed slot, and after a receive
//! that emptied the queue (fewer messages than asked for) the next one starts
//! `receive_linger_ms` after its end at the earliest, so that messages arriving meanwhile come
//! together. An empty long poll is followed by the next at once — it already waited
//! `wait_time_s` — so an idle worker makes one receive per `wait_time_s` and does not spin.
//!
//! Retryable failures come back after a delay that grows with the receive count (or after the
//! failure's own longer hint, such as a partner's `Retry-After`, at most 12 h); permanent ones
//! are copied to the dead-letter queue and deleted at once, so one poison message never holds
//! back its batch-mates. On shutdown the loop stops
//! receiving, in-flight messages finish, and the last deletes are flushed. A side task keeps
//! the dead-letter queue's depth metric current.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

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
    Disposition, Handler, Incoming, WorkerError, error_chain, process_incoming,
    queue::{Delivery, WorkQueue},
};

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
        let mut pace = None;
        while let Some(batch) = next_batch(&shared, &slots, &cancel, &mut pace).await {
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

/// Waits until the receive may start (`pace`) and for free slots ([`take_slots`]), then
/// receives as many messages as it holds slots (at most 10), each paired with its slot. Sets
/// `pace` for the next receive ([`next_receive_at`]). `None` once cancelled.
async fn next_batch<H: Handler>(
    shared: &Shared<H>,
    slots: &Arc<Semaphore>,
    cancel: &CancellationToken,
    pace: &mut Option<Instant>,
) -> Option<Vec<(ReceivedMessage, OwnedSemaphorePermit)>> {
    let linger = shared.queue.settings.receive_linger();
    loop {
        if let Some(not_before) = pace.take() {
            tokio::select! {
                () = tokio::time::sleep_until(not_before.into()) => {}
                () = cancel.cancelled() => return None,
            }
        }
        let mut permits =
            take_slots(slots, shared.queue.settings.in_flight, linger, cancel).await?;
        let received = tokio::select! {
            received = receive(shared, permits.len()) => received,
            () = cancel.cancelled() => return None,
        };
        let Some(messages) = received else {
            drop(permits);
            tokio::select! {
                () = tokio::time::sleep(RECEIVE_ERROR_PAUSE) => continue,
                () = cancel.cancelled() => return None,
            }
        };
        let long_poll = shared.queue.settings.wait_time_s > 0;
        *pace = next_receive_at(messages.len(), permits.len(), long_poll, linger);
        if messages.is_empty() {
            continue;
        }
        // The slots no message came for are free again.
        permits.truncate(messages.len());
        return Some(messages.into_iter().zip(permits).collect());
    }
}

/// When the receive after one that asked for `wanted` messages and got `got` may start:
/// at once after a full one (more are waiting) and after an empty long poll (it already waited
/// on the server); `linger` after the end of a short one (the queue ran dry: let messages
/// gather), or of an empty short poll (`wait_time_s` 0), which would spin otherwise.
fn next_receive_at(
    got: usize,
    wanted: usize,
    long_poll: bool,
    linger: Duration,
) -> Option<Instant> {
    let rest = got == wanted || (got == 0 && long_poll);
    (!rest).then(|| Instant::now() + linger)
}

/// Takes one free slot (waiting as long as it takes), then more, up to a batch
/// (`min(in_flight, 10)`): at once those already free, and waiting up to `linger` while fewer
/// than half a batch are held. `None` once cancelled.
async fn take_slots(
    slots: &Arc<Semaphore>,
    in_flight: usize,
    linger: Duration,
    cancel: &CancellationToken,
) -> Option<Vec<OwnedSemaphorePermit>> {
    let batch = in_flight.clamp(1, sqs_transport::MAX_BATCH);
    let enough = batch.div_ceil(2);
    let first = tokio::select! {
        permit = Arc::clone(slots).acquire_owned() => permit.ok()?,
        () = cancel.cancelled() => return None,
    };
    let mut permits = vec![first];
    let deadline = tokio::time::Instant::now() + linger;
    while permits.len() < batch {
        if let Ok(permit) = Arc::clone(slots).try_acquire_owned() {
            permits.push(permit);
            continue;
        }
        if permits.len() >= enough {
            break;
        }
        tokio::select! {
            permit = Arc::clone(slots).acquire_owned() => permits.push(permit.ok()?),
            () = tokio::time::sleep_until(deadline) => break,
            () = cancel.cancelled() => return None,
        }
    }
    Some(permits)
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
    let incoming = Incoming {
        message_id: &message.message_id,
        body: &message.body,
        traceparent: message.attribute("traceparent"),
    };
    let disposition = process_incoming(&shared.handler, &shared.pool, incoming, timeout).await;
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

/// Deletes finished messages in batches of up to ten until the channel closes: a batch goes
/// when it is full or `delete_linger_ms` after its first message finished.
async fn delete_finished<H: Handler>(shared: Arc<Shared<H>>, mut finished: mpsc::Receiver<String>) {
    let linger = shared.queue.settings.delete_linger();
    let mut batch = Vec::with_capacity(sqs_transport::MAX_BATCH);
    while let Some(first) = finished.recv().await {
        batch.push(first);
        let deadline = tokio::time::Instant::now() + linger;
        while batch.len() < sqs_transport::MAX_BATCH {
            match tokio::time::timeout_at(deadline, finished.recv()).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    const LINGER: Duration = Duration::from_millis(100);

    #[test]
    fn a_full_receive_or_an_empty_long_poll_is_followed_at_once_a_short_one_after_the_linger() {
        assert_eq!(next_receive_at(10, 10, true, LINGER), None);
        assert_eq!(next_receive_at(0, 10, true, LINGER), None);
        let before = Instant::now();
        let short = next_receive_at(3, 10, true, LINGER).expect("a pause");
        assert!(short >= before + LINGER && short <= Instant::now() + LINGER);
        let empty_short_poll = next_receive_at(0, 10, false, LINGER).expect("a pause");
        assert!(empty_short_poll >= before + LINGER);
    }

    #[tokio::test]
    async fn slots_already_free_are_taken_up_to_a_batch_without_waiting() {
        let slots = Arc::new(Semaphore::new(25));
        let cancel = CancellationToken::new();
        let taken = take_slots(&slots, 25, Duration::from_secs(3600), &cancel)
            .await
            .expect("slots");
        assert_eq!(taken.len(), sqs_transport::MAX_BATCH);
        assert_eq!(slots.available_permits(), 15);
    }

    #[tokio::test]
    async fn half_a_batch_of_free_slots_is_enough_to_receive() {
        let slots = Arc::new(Semaphore::new(10));
        let busy = Arc::clone(&slots)
            .acquire_many_owned(4)
            .await
            .expect("busy");
        let cancel = CancellationToken::new();
        let taken = take_slots(&slots, 10, Duration::from_secs(3600), &cancel)
            .await
            .expect("slots");
        assert_eq!(
            taken.len(),
            6,
            "the six free ones, without waiting for the busy ones"
        );
        drop(busy);
    }

    #[tokio::test]
    async fn fewer_than_half_a_batch_wait_for_more_slots_to_free() {
        let slots = Arc::new(Semaphore::new(10));
        let mut busy = Arc::clone(&slots)
            .acquire_many_owned(8)
            .await
            .expect("busy");
        let cancel = CancellationToken::new();
        let taking = {
            let slots = Arc::clone(&slots);
            tokio::spawn(
                async move { take_slots(&slots, 10, Duration::from_secs(3600), &cancel).await },
            )
        };
        // Two slots are free: without three more the wait would last the hour.
        drop(busy.split(3).expect("three slots"));
        let taken = taking.await.expect("task").expect("slots");
        assert_eq!(taken.len(), 5, "half a batch");
    }

    #[tokio::test]
    async fn a_cancelled_wait_for_slots_returns_none() {
        let slots = Arc::new(Semaphore::new(1));
        let _busy = Arc::clone(&slots).acquire_owned().await.expect("busy");
        let cancel = CancellationToken::new();
        cancel.cancel();
        assert!(take_slots(&slots, 1, LINGER, &cancel).await.is_none());
    }
}
