//! A worker's queue as both consumers see it — the poller and the Lambda adapter: its client,
//! URL and dead-letter queue, and what is done to a delivery that was not handled: redelivered
//! after a delay that grows with its receive count, or parked in the dead-letter queue. Also the
//! [`Hold`] a Lambda invocation keeps on its batch, so that the records of an invocation that
//! died come back after the short visibility timeout instead of the queue's own.

use std::{sync::Arc, time::Duration};

use aws_sdk_sqs::Client;
use domain::Consumer;
use settings::{Settings, WorkerSettings};
use sqs_transport::consume;

use crate::{
    MAX_RETRY_DELAY, WorkerError,
    dlq::{self, Parked},
    error_chain, metrics,
};

/// The queue of one consumer, resolved once.
pub(crate) struct WorkQueue {
    pub(crate) client: Client,
    pub(crate) url: String,
    pub(crate) dlq_url: Option<String>,
    pub(crate) settings: WorkerSettings,
}

/// The parts of one delivery the queue acts on (from an SQS receive or a Lambda record).
pub(crate) struct Delivery<'a> {
    pub(crate) message_id: &'a str,
    pub(crate) receipt_handle: &'a str,
    pub(crate) group_id: Option<&'a str>,
    pub(crate) receive_count: u32,
    pub(crate) body: &'a str,
}

impl WorkQueue {
    /// Resolves `consumer`'s queue (`<prefix><consumer>.fifo`) and its dead-letter queue.
    pub(crate) async fn open(settings: &Settings, consumer: Consumer) -> Result<Self, WorkerError> {
        let timeout = std::time::Duration::from_millis(settings.worker.sqs_timeout_ms);
        let client = sqs_transport::connect(&settings.sqs, timeout).await;
        let name = settings.sqs.queue_name(consumer.name());
        let url = sqs_transport::QueueDirectory::new(client.clone())
            .url(&name)
            .await?;
        Self::on(client, url, settings.worker.clone()).await
    }

    /// The queue at `url`; looks up its dead-letter queue.
    pub(crate) async fn on(
        client: Client,
        url: String,
        settings: WorkerSettings,
    ) -> Result<Self, WorkerError> {
        let dlq_url = consume::dead_letter_queue_url(&client, &url).await?;
        if dlq_url.is_none() {
            tracing::warn!(
                queue_url = url,
                "the queue has no dead-letter queue: poison messages will be retried until they expire"
            );
        }
        metrics::describe();
        Ok(WorkQueue {
            client,
            url,
            dlq_url,
            settings,
        })
    }

    /// Makes the delivery visible again after [`redelivery_delay`] (the growing delay, or the
    /// failure's longer hint `after`) instead of the queue's whole visibility timeout.
    pub(crate) async fn retry_later(&self, delivery: &Delivery<'_>, after: Option<Duration>) {
        let delay = redelivery_delay(&self.settings, delivery.receive_count, after);
        let changed =
            consume::change_visibility(&self.client, &self.url, delivery.receipt_handle, delay)
                .await;
        match changed {
            Ok(()) => tracing::info!(
                message.id = delivery.message_id,
                receive_count = delivery.receive_count,
                delay_s = delay,
                "message will be redelivered"
            ),
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), "could not set the redelivery delay; the visibility timeout applies")
            }
        }
    }

    /// Copies the delivery to the dead-letter queue with `reason`; true when it may be deleted.
    /// False when there is no dead-letter queue or the copy failed: the caller retries it later.
    pub(crate) async fn park(&self, delivery: &Delivery<'_>, reason: &str) -> bool {
        let Some(dlq_url) = &self.dlq_url else {
            return false;
        };
        let parked = Parked {
            message_id: delivery.message_id,
            group_id: delivery.group_id,
            body: delivery.body,
            reason,
            from: &self.url,
        };
        match dlq::park(&self.client, dlq_url, &parked).await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %error_chain(&e), "could not park a message; it will come back");
                false
            }
        }
    }

    /// Reads the dead-letter queue's depth into its metric.
    pub(crate) async fn refresh_dlq_depth(&self) {
        let Some(dlq_url) = &self.dlq_url else {
            return;
        };
        match consume::approximate_depth(&self.client, dlq_url).await {
            Ok(depth) => metrics::set_dlq_depth(dlq_url, depth),
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), "could not read the dead-letter queue's depth")
            }
        }
    }
}

/// The records of one Lambda batch, kept invisible for `visibility_timeout_s` at a time while the
/// invocation works on them: set once when the batch starts (one `ChangeMessageVisibilityBatch`
/// per ten records), renewed every third of it, and given up when dropped — so the records of an
/// invocation that died (or was stopped at its timeout) are visible again within the short
/// timeout, whatever the queue's own `VisibilityTimeout`.
pub(crate) struct Hold {
    held: Arc<tokio::sync::Mutex<Vec<String>>>,
    renewer: tokio::task::JoinHandle<()>,
}

impl WorkQueue {
    /// Holds `receipt_handles` (see [`Hold`]).
    pub(crate) async fn hold(&self, receipt_handles: Vec<String>) -> Hold {
        let seconds = self.settings.visibility_timeout_s;
        let held = Arc::new(tokio::sync::Mutex::new(receipt_handles));
        set_visibility(&self.client, &self.url, &held.lock().await, seconds).await;
        let renewer = tokio::spawn(renew(
            self.client.clone(),
            self.url.clone(),
            Arc::clone(&held),
            seconds,
        ));
        Hold { held, renewer }
    }
}

impl Hold {
    /// Stops renewing `receipt_handle`, once a renewal under way has finished: a record given
    /// its own retry delay must not have it overwritten.
    pub(crate) async fn release(&self, receipt_handle: &str) {
        self.held.lock().await.retain(|h| h != receipt_handle);
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

/// Renews the held records' visibility every third of `seconds`, until aborted.
async fn renew(
    client: Client,
    url: String,
    held: Arc<tokio::sync::Mutex<Vec<String>>>,
    seconds: i32,
) {
    let every = Duration::from_millis(u64::try_from(seconds).unwrap_or(1) * 1000 / 3);
    loop {
        tokio::time::sleep(every).await;
        // Locked through the calls: `Hold::release` waits for them.
        let handles = held.lock().await;
        set_visibility(&client, &url, &handles, seconds).await;
    }
}

/// Sets the visibility of `receipt_handles` to `seconds`; a failure leaves the records with the
/// visibility they had (at worst the queue's own), so it is logged and otherwise ignored.
async fn set_visibility(client: &Client, url: &str, receipt_handles: &[String], seconds: i32) {
    for chunk in receipt_handles.chunks(sqs_transport::MAX_BATCH) {
        match consume::change_visibility_batch(client, url, chunk, seconds).await {
            Ok(outcome) if outcome.failed.is_empty() => {}
            Ok(outcome) => tracing::warn!(
                failed = outcome.failed.len(),
                "some records' visibility could not be set; they keep the queue's timeout"
            ),
            Err(e) => tracing::warn!(
                error = %error_chain(&e),
                "the records' visibility could not be set; they keep the queue's timeout"
            ),
        }
    }
}

/// The redelivery delay after the `receive_count`-th receive failed: `base × 4^(n−1)`, capped.
pub(crate) fn retry_delay(settings: &WorkerSettings, receive_count: u32) -> i32 {
    let exponent = receive_count.saturating_sub(1).min(15);
    let delay = i64::from(settings.retry_base_s) * 4_i64.pow(exponent);
    delay.min(i64::from(settings.retry_max_s)) as i32
}

/// The visibility, in seconds, of a delivery retried after its `receive_count`-th receive: the
/// longer of [`retry_delay`] and the failure's hint (rounded up to whole seconds), at most
/// [`MAX_RETRY_DELAY`].
pub(crate) fn redelivery_delay(
    settings: &WorkerSettings,
    receive_count: u32,
    hint: Option<Duration>,
) -> i32 {
    let hint_s = hint.map_or(0, |h| {
        h.as_secs().saturating_add(u64::from(h.subsec_nanos() > 0))
    });
    let cap = MAX_RETRY_DELAY.as_secs();
    let delay = u64::try_from(retry_delay(settings, receive_count))
        .unwrap_or(0)
        .max(hint_s)
        .min(cap);
    i32::try_from(delay).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failures_retry_hint_lengthens_the_redelivery_delay_up_to_twelve_hours() {
        let settings = WorkerSettings {
            retry_base_s: 2,
            retry_max_s: 300,
            ..WorkerSettings::default()
        };
        let secs = |s: u64| Some(Duration::from_secs(s));
        assert_eq!(
            redelivery_delay(&settings, 1, None),
            2,
            "no hint: the growing delay"
        );
        assert_eq!(
            redelivery_delay(&settings, 1, secs(30)),
            30,
            "a longer hint wins"
        );
        assert_eq!(
            redelivery_delay(&settings, 3, secs(5)),
            32,
            "a shorter hint does not"
        );
        assert_eq!(
            redelivery_delay(&settings, 1, Some(Duration::from_millis(2500))),
            3,
            "rounded up to whole seconds"
        );
        assert_eq!(
            redelivery_delay(&settings, 1, secs(86_400)),
            43_200,
            "capped at 12 h"
        );
        assert_eq!(
            redelivery_delay(&settings, 1, Some(Duration::MAX)),
            43_200,
            "whatever the hint"
        );
    }

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
