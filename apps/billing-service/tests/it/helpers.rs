//! A fresh database, queues and fake Stripe per test; invoiced orders written straight into the
//! tables with their `invoice.generated` events; the billing worker in-process or as a process,
//! or one event run through the handler as the worker runs it ([`Harness::process`]) or bare in
//! a transaction of its own ([`Harness::handle_alone`]); cancellations as the shop makes them.

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use sqlx::{PgPool, postgres::PgPoolOptions};

use billing_service::{BillingHandler, gateway::Gateway};
use domain::{
    CancelReason, Currency, Event, EventEnvelope, EventType, InvoiceGenerated, ShipmentFailed,
};
use orders::{Cancellation, Origin};
use testkit::stripe::FakeStripe;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use worker::{Disposition, Handler, Poller};

pub const TOTAL: i64 = 3_900;

/// Connections of `pool` out of it right now (taken and not given back).
fn in_use(pool: &PgPool) -> u32 {
    pool.size() - u32::try_from(pool.num_idle()).expect("a small pool")
}

/// Asserts that no connection of `pool` is out while a Stripe call is held. A handler gives its
/// connection back before it calls Stripe, but the pool takes it back on a task of its own, so
/// the last one may still be on its way when the held call arrives: waited for, up to 5 s
/// (the held call does not answer meanwhile, so a connection kept across it stays out).
pub async fn assert_all_back(pool: &PgPool) {
    let back = testkit::eventually(
        "every connection back in the pool",
        Duration::from_secs(5),
        || std::future::ready(in_use(pool) == 0),
    )
    .await;
    assert!(
        back.is_ok(),
        "no connection out while Stripe works: {} out",
        in_use(pool)
    );
}

/// A `payments` row: status, PaymentIntent, failure reason, refund.
pub type PaymentRecord = (String, Option<String>, Option<String>, Option<String>);

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

    /// The billing worker in this process with `settings`, on `pool`, until the harness is
    /// dropped.
    pub async fn start_worker_on(
        &self,
        settings: &settings::Settings,
        pool: PgPool,
        handler: BillingHandler,
    ) {
        let poller = Poller::connect_on(settings, pool, handler)
            .await
            .expect("worker");
        tokio::spawn(poller.run(self.stop.clone()));
    }

    /// A pool of `size` connections on this harness's database, of its own (so that what billing
    /// holds of it can be seen), that gives up waiting for a connection after 2 s.
    pub async fn pool_of(&self, size: u32) -> PgPool {
        PgPoolOptions::new()
            .max_connections(size)
            .acquire_timeout(Duration::from_secs(2))
            .connect(&self.db_url)
            .await
            .expect("pool")
    }

    /// A billing handler on `pool` whose Stripe calls wait up to a minute for an answer (a held
    /// call must not time out while a test works).
    pub fn patient_handler(&self, pool: PgPool) -> BillingHandler {
        let mut overrides = self.overrides();
        overrides.push(("APP__STRIPE__TIMEOUT_MS", "60000".into()));
        let settings = testkit::test_settings_from(&overrides);
        BillingHandler::new(Gateway::new(&settings.stripe).expect("gateway"), pool)
    }

    /// Waits until the fake Stripe holds `count` requests.
    pub async fn wait_held(&self, count: u64) {
        testkit::eventually(
            &format!("the fake Stripe to hold {count} requests"),
            Duration::from_secs(30),
            || async { self.stripe.held().await.expect("held") == count },
        )
        .await
        .expect("held in time");
    }

    /// Runs `work` while the fake Stripe holds the requests matching `request`: once `count` are
    /// held, runs `meanwhile`, then releases them; returns what both gave.
    pub async fn while_held<W: Future, M: Future>(
        &self,
        request: &str,
        count: u64,
        work: W,
        meanwhile: M,
    ) -> (W::Output, M::Output) {
        self.stripe.hold(request).await.expect("hold");
        let meanwhile = async {
            self.wait_held(count).await;
            let out = meanwhile.await;
            self.stripe.release().await.expect("release");
            out
        };
        tokio::join!(work, meanwhile)
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

    /// A billing handler on this harness's database and fake Stripe, as the worker builds it.
    pub fn handler(&self) -> BillingHandler {
        self.handler_with_key(self.stripe.secret_key())
    }

    /// [`Harness::handler`] with another Stripe secret key.
    pub fn handler_with_key(&self, secret_key: &str) -> BillingHandler {
        BillingHandler::new(self.gateway_with_key(secret_key), self.pool.clone())
    }

    /// The billing gateway to the fake Stripe, for setting up what an earlier attempt left.
    pub fn gateway(&self) -> Gateway {
        self.gateway_with_key(self.stripe.secret_key())
    }

    fn gateway_with_key(&self, secret_key: &str) -> Gateway {
        let overrides: Vec<_> = self
            .overrides()
            .into_iter()
            .map(|(name, value)| match name {
                "APP__STRIPE__SECRET_KEY" => (name, secret_key.to_owned()),
                _ => (name, value),
            })
            .collect();
        let settings = testkit::test_settings_from(&overrides);
        Gateway::new(&settings.stripe).expect("gateway")
    }

    /// Runs `event` through `handler` exactly as a worker does (decode, inbox, transaction,
    /// failure sorting) and returns the decision.
    pub async fn process(&self, handler: &BillingHandler, event: &EventEnvelope) -> Disposition {
        let body = serde_json::to_string(event).expect("json");
        worker::process(handler, &self.pool, &body, Duration::from_secs(30)).await
    }

    /// [`Harness::process`] on `pool` instead of the harness's.
    pub async fn process_on(
        &self,
        handler: &BillingHandler,
        pool: &PgPool,
        event: &EventEnvelope,
    ) -> Disposition {
        let body = serde_json::to_string(event).expect("json");
        worker::process(handler, pool, &body, Duration::from_secs(30)).await
    }

    /// Runs `event` through `handler` in a transaction of its own, without the inbox (as a
    /// redelivery the inbox did not catch would), and commits.
    pub async fn handle_alone(&self, handler: &BillingHandler, event: &EventEnvelope) {
        let event = Event::from_envelope(event.clone()).expect("event");
        let mut tx = self.pool.begin().await.expect("tx");
        handler.handle(&event, &mut tx).await.expect("handled");
        tx.commit().await.expect("commit");
    }

    /// The shopper cancels the order, in a transaction of its own, as the shop does.
    pub async fn cancel(&self, order_id: Uuid) -> Option<Cancellation> {
        let origin = Origin {
            reason: CancelReason::Shopper,
            correlation_id: "test",
            traceparent: "",
        };
        let mut tx = self.pool.begin().await.expect("tx");
        let cancelled = orders::cancel(&mut tx, order_id, &origin)
            .await
            .expect("cancel");
        tx.commit().await.expect("commit");
        cancelled
    }

    /// [`Harness::cancel`], taking the order's row lock with `NOWAIT`: fails at once, instead of
    /// waiting, if anyone holds it.
    pub async fn cancel_at_once(&self, order_id: Uuid) -> Cancellation {
        let origin = Origin {
            reason: CancelReason::Shopper,
            correlation_id: "test",
            traceparent: "",
        };
        let mut tx = self.pool.begin().await.expect("tx");
        sqlx::query("SELECT 1 FROM orders WHERE id = $1 FOR NO KEY UPDATE NOWAIT")
            .bind(order_id)
            .execute(&mut *tx)
            .await
            .expect("nobody holds the order's row lock");
        let cancelled = orders::cancel(&mut tx, order_id, &origin)
            .await
            .expect("cancel")
            .expect("the order exists");
        tx.commit().await.expect("commit");
        cancelled
    }

    /// Transactions open on this harness's database right now, other than the asker's.
    pub async fn open_transactions(&self) -> i64 {
        self.count(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()
                 AND backend_type = 'client backend' AND xact_start IS NOT NULL",
        )
        .await
    }

    /// Forgets that billing handled `event` (its inbox row), as a redelivery the inbox did not
    /// catch would.
    pub async fn forget_handled(&self, event: &EventEnvelope) {
        sqlx::query("DELETE FROM inbox WHERE consumer = 'billing' AND event_id = $1")
            .bind(event.event_id)
            .execute(&self.pool)
            .await
            .expect("inbox");
    }

    /// The `order.cancelled` event the cancellation of the order wrote to the outbox.
    pub async fn cancellation(&self, order_id: Uuid) -> EventEnvelope {
        let envelope: serde_json::Value = sqlx::query_scalar(
            "SELECT envelope FROM outbox WHERE aggregate_id = $1 AND event_type = 'order.cancelled'",
        )
        .bind(order_id)
        .fetch_one(&self.pool)
        .await
        .expect("order.cancelled");
        serde_json::from_value(envelope).expect("envelope")
    }

    /// The payloads of the events of `event_type` the order emitted, oldest first.
    pub async fn emitted(&self, order_id: Uuid, event_type: &str) -> Vec<serde_json::Value> {
        sqlx::query_scalar(
            "SELECT envelope->'payload' FROM outbox
             WHERE aggregate_id = $1 AND event_type = $2 ORDER BY id",
        )
        .bind(order_id)
        .bind(event_type)
        .fetch_all(&self.pool)
        .await
        .expect("outbox")
    }

    /// The order's payments row: status, PaymentIntent, failure reason and refund.
    pub async fn payment(&self, order_id: Uuid) -> Option<PaymentRecord> {
        sqlx::query_as(
            "SELECT status, payment_intent_id, failure_reason, refund_id
             FROM payments WHERE order_id = $1",
        )
        .bind(order_id)
        .fetch_optional(&self.pool)
        .await
        .expect("payment")
    }

    /// A `pending` payments row for the order's invoice total, as an attempt leaves it: with the
    /// PaymentIntent's id if it got that far, and claimed by `claim` (an event id) for another
    /// 30 s if it is still working.
    pub async fn pending_payment(
        &self,
        order_id: Uuid,
        payment_intent_id: Option<&str>,
        claim: Option<Uuid>,
    ) {
        sqlx::query(
            "INSERT INTO payments (order_id, amount_minor, currency, payment_intent_id,
                 claim_event, claimed_until)
             VALUES ($1, $2, 'EUR', $3, $4, CASE WHEN $4 IS NOT NULL
                 THEN now() + interval '30 seconds' END)",
        )
        .bind(order_id)
        .bind(TOTAL)
        .bind(payment_intent_id)
        .bind(claim)
        .execute(&self.pool)
        .await
        .expect("payment");
    }

    /// Every refund of the PaymentIntent at the fake Stripe.
    pub async fn refunds(&self, payment_intent_id: &str) -> Vec<serde_json::Value> {
        self.stripe
            .refunds_for_payment_intent(payment_intent_id)
            .await
            .expect("refunds")
    }

    /// An invoiced order paying with `payment_method`, its 2 units taken from demo product 1's
    /// stock, and its `invoice.generated` event.
    pub async fn invoiced_order(&self, payment_method: &str) -> EventEnvelope {
        self.invoiced_order_of(payment_method, TOTAL).await
    }

    /// [`Harness::invoiced_order`] with an invoice total of `total_minor`.
    pub async fn invoiced_order_of(&self, payment_method: &str, total_minor: i64) -> EventEnvelope {
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
            tax_minor: total_minor - 2_900 - 490,
            total_minor,
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
