//! A fresh database, queues and fake Stripe per test; invoiced orders written straight into the
//! tables with their `invoice.generated` events; the billing worker in-process or as a process.

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use billing_service::{BillingHandler, gateway::Gateway};
use domain::{Currency, EventEnvelope, EventType, InvoiceGenerated, ShipmentFailed};
use testkit::stripe::FakeStripe;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use worker::Poller;

pub const TOTAL: i64 = 3_900;

/// A fresh database and queue set ([`testkit::Backends`]) and a fake Stripe.
pub struct Harness {
    backends: testkit::Backends,
    pub stripe: FakeStripe,
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

pub async fn harness() -> Harness {
    let backends = testkit::Backends::start(5)
        .await
        .expect("database and queues");
    let stripe = FakeStripe::start().await.expect("fake stripe");
    Harness {
        backends,
        stripe,
        stop: CancellationToken::new(),
    }
}

impl Harness {
    pub fn overrides(&self) -> Vec<(&'static str, String)> {
        let mut overrides = testkit::worker_overrides(&self.db_url, &self.endpoint, &self.queues);
        overrides.push(("APP__STRIPE__API_BASE", self.stripe.api_base()));
        overrides.push(("APP__STRIPE__SECRET_KEY", self.stripe.secret_key().into()));
        overrides
    }

    /// The billing worker, in this process, until the harness is dropped.
    pub async fn start_worker(&self) {
        let settings = testkit::test_settings_from(&self.overrides());
        let gateway = Gateway::new(&settings.stripe).expect("gateway");
        let poller = Poller::connect(&settings, BillingHandler::new(gateway, self.pool.clone()))
            .await
            .expect("worker");
        tokio::spawn(poller.run(self.stop.clone()));
    }

    /// The billing worker as a process of its own (to be killed).
    pub fn spawn_worker_process(&self) -> Child {
        Command::new(env!("CARGO_BIN_EXE_billing-service"))
            .envs(self.overrides())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .expect("worker process")
    }

    /// An invoiced order paying with `payment_method`, its 2 units taken from demo product 1's
    /// stock, and its `invoice.generated` event.
    pub async fn invoiced_order(&self, payment_method: &str) -> EventEnvelope {
        let placed = testkit::orders::insert_order(&self.pool)
            .await
            .expect("order");
        sqlx::query("UPDATE orders SET status = 'invoiced', payment_method = $2 WHERE id = $1")
            .bind(placed.order_id)
            .bind(payment_method)
            .execute(&self.pool)
            .await
            .expect("invoiced");
        sqlx::query("UPDATE products SET stock = stock - 2 WHERE id = 1")
            .execute(&self.pool)
            .await
            .expect("reserve");
        let currency = Currency::parse("EUR").expect("EUR");
        let payload = InvoiceGenerated {
            invoice_number: "INV-2026-000001".into(),
            currency,
            subtotal_minor: 2_900,
            shipping_minor: 490,
            tax_minor: TOTAL - 2_900 - 490,
            total_minor: TOTAL,
        };
        EventEnvelope::new(
            EventType::InvoiceGenerated,
            placed.order_id,
            "test",
            "",
            &payload,
        )
        .expect("envelope")
    }

    pub fn shipment_failed(&self, order_id: Uuid) -> EventEnvelope {
        let payload = ShipmentFailed {
            reason: "undeliverable address".into(),
        };
        EventEnvelope::new(EventType::ShipmentFailed, order_id, "test", "", &payload)
            .expect("envelope")
    }

    pub async fn send(&self, event: &EventEnvelope) {
        let body = serde_json::to_string(event).expect("json");
        testkit::orders::send_bodies(&self.sqs, self.queues.url("billing"), &[body])
            .await
            .expect("send");
    }

    pub async fn status(&self, order_id: Uuid) -> String {
        testkit::order_status(&self.pool, order_id).await
    }

    pub async fn wait_status(&self, order_id: Uuid, status: &str) {
        testkit::eventually(
            &format!("order to be {status}"),
            Duration::from_secs(30),
            || async { self.status(order_id).await == status },
        )
        .await
        .expect("status in time");
    }

    pub async fn stock(&self) -> i32 {
        sqlx::query_scalar("SELECT stock FROM products WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .expect("stock")
    }

    pub async fn count(&self, sql: &str) -> i64 {
        testkit::scalar(&self.pool, sql).await
    }

    pub async fn intents(&self, order_id: Uuid) -> Vec<serde_json::Value> {
        self.stripe
            .payment_intents_for(&order_id.to_string())
            .await
            .expect("intents")
    }

    pub async fn wait_idle(&self) {
        let url = self.queues.url("billing");
        testkit::wait_drained(&self.sqs, url, Duration::from_secs(30))
            .await
            .expect("drained");
    }
}
