//! A fresh database and queues, a partner simulator with the given faults, and a shipping
//! worker pointed at it, running until the harness is dropped.

use std::time::{Duration, Instant};

use domain::{CancelReason, Currency, EventEnvelope, EventType, PaymentSucceeded};
use partner_sim::{Application, Faults};
use serde_json::Value;
use shipping_service::{ShippingHandler, partner::PartnerClient};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use worker::Poller;

/// A fresh database and queue set ([`testkit::Backends`]) and a partner simulator.
pub struct Harness {
    backends: testkit::Backends,
    pub partner: String,
    settings: Vec<(&'static str, String)>,
    stop: CancellationToken,
}

impl std::ops::Deref for Harness {
    type Target = testkit::Backends;

    fn deref(&self) -> &testkit::Backends {
        &self.backends
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub async fn harness(faults: Faults) -> Harness {
    harness_with(faults, &[]).await
}

/// [`harness`] with `settings` on top of [`Harness::overrides`]'s defaults.
pub async fn harness_with(faults: Faults, settings: &[(&'static str, &str)]) -> Harness {
    let mut h = harness_without_worker(faults).await;
    h.settings = settings
        .iter()
        .map(|(k, v)| (*k, (*v).to_owned()))
        .collect();
    let settings = testkit::test_settings_from(&h.overrides());
    let client = PartnerClient::new(&settings.shipping).expect("partner client");
    let pool = settings.database.connect().await.expect("worker pool");
    let handler = ShippingHandler::new(client).with_pool(pool.clone());
    let poller = Poller::connect_on(&settings, pool, handler)
        .await
        .expect("worker");
    tokio::spawn(poller.run(h.stop.clone()));
    h
}

/// The database, queues and partner simulator of [`harness`], with no worker consuming the
/// queue (a test runs the binary itself).
pub async fn harness_without_worker(faults: Faults) -> Harness {
    let backends = testkit::Backends::start(5)
        .await
        .expect("database and queues");
    let stop = CancellationToken::new();
    let partner = spawn_partner(faults, &stop).await;
    Harness {
        backends,
        partner,
        settings: Vec::new(),
        stop,
    }
}

async fn spawn_partner(faults: Faults, stop: &CancellationToken) -> String {
    Application::spawn_on_loopback(faults, stop.clone())
        .await
        .expect("partner simulator")
}

/// Settings for partner trouble in fast motion: 300 ms of quick retries per delivery (200 ms
/// per call), then the queue brings the message back after 1 s, then every 2 s.
pub const FAST_RETRIES: [(&str, &str); 7] = [
    ("APP__SHIPPING__ATTEMPT_TIMEOUT_MS", "200"),
    ("APP__SHIPPING__DEADLINE_MS", "300"),
    ("APP__SHIPPING__BACKOFF_BASE_MS", "50"),
    ("APP__SHIPPING__BACKOFF_MAX_MS", "100"),
    ("APP__WORKER__RETRY_BASE_S", "1"),
    ("APP__WORKER__RETRY_MAX_S", "2"),
    ("APP__WORKER__HANDLER_TIMEOUT_S", "10"),
];

impl Harness {
    /// The settings a shipping worker of this harness runs with: by default a patient worker
    /// (90 s per message) and a partner client with short timeouts and backoff and a 60 s
    /// deadline per delivery; then the harness's own settings.
    pub fn overrides(&self) -> Vec<(&'static str, String)> {
        let mut settings = vec![
            ("APP__DATABASE__URL", self.db_url.clone()),
            ("APP__SQS__QUEUE_PREFIX", self.queues.prefix.clone()),
            ("APP__WORKER__WAIT_TIME_S", "1".into()),
            ("APP__WORKER__HANDLER_TIMEOUT_S", "90".into()),
            ("APP__SHIPPING__PARTNER_URL", self.partner.clone()),
            ("APP__SHIPPING__ATTEMPT_TIMEOUT_MS", "500".into()),
            ("APP__SHIPPING__DEADLINE_MS", "60000".into()),
            ("APP__SHIPPING__BACKOFF_BASE_MS", "50".into()),
            ("APP__SHIPPING__BACKOFF_MAX_MS", "500".into()),
        ];
        for (key, value) in &self.settings {
            settings.retain(|(k, _)| k != key);
            settings.push((key, value.clone()));
        }
        settings
    }

    /// A paid order (2 × demo product 1) and its `payment.succeeded` envelope, paid now.
    pub async fn paid_order(&self) -> EventEnvelope {
        let placed = testkit::orders::insert_order(&self.pool)
            .await
            .expect("order");
        sqlx::query("UPDATE orders SET status = 'paid' WHERE id = $1")
            .bind(placed.order_id)
            .execute(&self.pool)
            .await
            .expect("paid");
        let payload = PaymentSucceeded {
            payment_intent_id: "pi_test".into(),
            amount_minor: 3390,
            currency: Currency::parse("EUR").expect("currency"),
        };
        EventEnvelope::new(
            EventType::PaymentSucceeded,
            placed.order_id,
            "test",
            "",
            &payload,
        )
        .expect("envelope")
    }

    pub async fn send(&self, events: &[&EventEnvelope]) {
        let bodies: Vec<String> = events
            .iter()
            .map(|e| serde_json::to_string(e).expect("json"))
            .collect();
        testkit::orders::send_bodies(&self.sqs, self.queues.url("shipping"), &bodies)
            .await
            .expect("send");
    }

    pub async fn count(&self, sql: &str) -> i64 {
        testkit::scalar(&self.pool, sql).await
    }

    pub async fn status(&self, order_id: Uuid) -> String {
        testkit::order_status(&self.pool, order_id).await
    }

    /// Rows of `event_type` in the outbox.
    pub async fn emitted(&self, event_type: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE event_type = $1")
            .bind(event_type)
            .fetch_one(&self.pool)
            .await
            .expect("outbox count")
    }

    /// The simulator's counters for the order: `shipments_created`, `shipments_cancelled`,
    /// `requests`.
    pub async fn partner_stats(&self, order_id: Uuid) -> Value {
        reqwest::get(format!(
            "{}/v1/_sim/stats?reference={order_id}",
            self.partner
        ))
        .await
        .expect("stats")
        .json()
        .await
        .expect("json")
    }

    /// Shipments the partner created for the order.
    pub async fn partner_shipments(&self, order_id: Uuid) -> i64 {
        self.partner_stats(order_id).await["shipments_created"]
            .as_i64()
            .expect("count")
    }

    /// One of the simulator's counters for the order.
    pub async fn partner_count(&self, order_id: Uuid, counter: &str) -> i64 {
        self.partner_stats(order_id).await[counter]
            .as_i64()
            .expect("count")
    }

    /// Waits until the simulator's `counter` for the order reaches `n`; returns when it was
    /// first seen there (polled every 10 ms).
    pub async fn wait_partner(
        &self,
        order_id: Uuid,
        counter: &str,
        n: i64,
        timeout: Duration,
    ) -> Instant {
        let deadline = Instant::now() + timeout;
        loop {
            if self.partner_count(order_id, counter).await >= n {
                return Instant::now();
            }
            assert!(
                Instant::now() < deadline,
                "{counter} of order {order_id} did not reach {n} within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Replaces the simulator's faults (`{}` turns them all off).
    pub async fn put_faults(&self, faults: &Value) {
        let response = reqwest::Client::new()
            .put(format!("{}/v1/_sim/faults", self.partner))
            .json(faults)
            .send()
            .await
            .expect("faults");
        assert!(response.status().is_success(), "faults refused: {faults}");
    }

    /// Cancels the order as a shopper would (`orders::cancel`, committed).
    pub async fn cancel(&self, order_id: Uuid) -> orders::Cancellation {
        let mut tx = self.pool.begin().await.expect("begin");
        let origin = orders::Origin {
            reason: CancelReason::Shopper,
            correlation_id: "test-cancel",
            traceparent: "",
        };
        let cancelled = orders::cancel(&mut tx, order_id, &origin)
            .await
            .expect("cancel")
            .expect("the order exists");
        tx.commit().await.expect("commit");
        cancelled
    }

    /// The messages parked in the shipping dead-letter queue (received and deleted), with their
    /// `parked_reason`.
    pub async fn parked(&self, expected: usize, timeout: Duration) -> Vec<(String, String)> {
        let dlq = self.queues.dlq("shipping");
        let messages = testkit::receive_all(&self.sqs, dlq, expected, timeout)
            .await
            .expect("dead-letter queue");
        messages
            .into_iter()
            .map(|m| {
                let reason = m
                    .message_attributes
                    .as_ref()
                    .and_then(|a| a.get("parked_reason"))
                    .and_then(|v| v.string_value.clone())
                    .unwrap_or_default();
                (m.body.unwrap_or_default(), reason)
            })
            .collect()
    }

    /// Messages in the shipping dead-letter queue.
    pub async fn dlq_depth(&self) -> i64 {
        testkit::queue_depth(&self.sqs, self.queues.dlq("shipping"))
            .await
            .expect("dead-letter queue depth")
    }

    pub async fn wait_for(&self, what: &str, sql: &str, n: i64, timeout: Duration) {
        testkit::eventually(what, timeout, || async { self.count(sql).await >= n })
            .await
            .expect("in time");
    }

    pub async fn wait_idle(&self) {
        let url = self.queues.url("shipping");
        testkit::wait_drained(&self.sqs, url, Duration::from_secs(60))
            .await
            .expect("drained");
    }
}
