//! A fresh database and queues, a partner simulator with the given faults, and a shipping
//! worker pointed at it, running until the harness is dropped.

use std::time::Duration;

use domain::{Currency, EventEnvelope, EventType, PaymentSucceeded};
use partner_sim::{Application, Faults};
use shipping_service::{ShippingHandler, partner::PartnerClient};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use worker::Poller;

/// A fresh database and queue set ([`testkit::Backends`]) and a partner simulator.
pub struct Harness {
    backends: testkit::Backends,
    pub partner: String,
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
    let h = harness_without_worker(faults).await;
    let settings = testkit::test_settings_from(&h.overrides());
    let client = PartnerClient::new(&settings.shipping).expect("partner client");
    let poller = Poller::connect(&settings, ShippingHandler::new(client))
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
        stop,
    }
}

async fn spawn_partner(faults: Faults, stop: &CancellationToken) -> String {
    Application::spawn_on_loopback(faults, stop.clone())
        .await
        .expect("partner simulator")
}

impl Harness {
    /// The settings a shipping worker of this harness runs with: a patient worker (90 s per
    /// message) and a partner client with short timeouts and backoff and a 60 s deadline.
    pub fn overrides(&self) -> Vec<(&'static str, String)> {
        vec![
            ("APP__DATABASE__URL", self.db_url.clone()),
            ("APP__SQS__QUEUE_PREFIX", self.queues.prefix.clone()),
            ("APP__WORKER__WAIT_TIME_S", "1".into()),
            ("APP__WORKER__HANDLER_TIMEOUT_S", "90".into()),
            ("APP__SHIPPING__PARTNER_URL", self.partner.clone()),
            ("APP__SHIPPING__ATTEMPT_TIMEOUT_MS", "500".into()),
            ("APP__SHIPPING__DEADLINE_MS", "60000".into()),
            ("APP__SHIPPING__BACKOFF_BASE_MS", "50".into()),
            ("APP__SHIPPING__BACKOFF_MAX_MS", "500".into()),
        ]
    }

    /// A paid order (2 × demo product 1) and its `payment.succeeded` envelope.
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

    /// Shipments the partner created for the order.
    pub async fn partner_shipments(&self, order_id: Uuid) -> i64 {
        let stats: serde_json::Value = reqwest::get(format!(
            "{}/v1/_sim/stats?reference={order_id}",
            self.partner
        ))
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
        stats["shipments_created"].as_i64().expect("count")
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
