//! One pooled connection per message at most, and none while Stripe works: every path of billing
//! runs on a pool of one connection; as many messages in flight as the pool has connections all
//! wait on Stripe at the same time, and every order is paid. And what one charged order costs
//! the database: connections taken (each one explicit transaction or one statement on its own)
//! and statements sent.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use billing_service::{BillingHandler, gateway::Gateway};
use orders::Cancellation;
use sqlx::{PgPool, postgres::PgPoolOptions};
use tracing_subscriber::{Layer, layer::SubscriberExt};
use worker::Disposition;

use crate::helpers::{Harness, harness};

#[tokio::test]
async fn every_billing_path_runs_on_a_pool_of_one_connection() {
    let h = harness().await;
    // A message that needed a second connection while holding one would wait for it in vain
    // and fail after the pool's 2 s acquire timeout.
    let pool = h.pool_of(1).await;
    let handler = h.patient_handler(pool.clone());
    let run = |event| {
        let (handler, pool, h) = (&handler, &pool, &h);
        async move { h.process_on(handler, pool, &event).await }
    };

    let paid = h.invoiced_order("pm_card_visa").await;
    assert_eq!(run(paid.clone()).await, Disposition::Done);
    assert_eq!(run(paid.clone()).await, Disposition::Duplicate);
    for (method, end) in [
        ("pm_card_chargeDeclined", "payment_failed"),
        ("pm_card_authenticationRequired", "invoiced"),
        ("pm_does_not_exist", "payment_failed"),
    ] {
        let invoiced = h.invoiced_order(method).await;
        assert_eq!(run(invoiced.clone()).await, Disposition::Done, "{method}");
        assert_eq!(h.status(invoiced.order_id).await, end, "{method}");
    }
    // A failed shipment's refund.
    assert_eq!(
        run(h.shipment_failed(paid.order_id)).await,
        Disposition::Done
    );
    assert_eq!(h.status(paid.order_id).await, "refunded");
    // A paid order's cancellation.
    let cancelled_paid = h.invoiced_order("pm_card_visa").await;
    assert_eq!(run(cancelled_paid.clone()).await, Disposition::Done);
    assert_eq!(
        h.cancel(cancelled_paid.order_id).await,
        Some(Cancellation::RefundRequested)
    );
    let cancellation = h.cancellation(cancelled_paid.order_id).await;
    assert_eq!(run(cancellation).await, Disposition::Done);
    assert_eq!(h.status(cancelled_paid.order_id).await, "refunded");
    // An order cancelled before billing ran, and its cancellation.
    let cancelled = h.invoiced_order("pm_card_visa").await;
    assert_eq!(
        h.cancel(cancelled.order_id).await,
        Some(Cancellation::Cancelled)
    );
    assert_eq!(run(cancelled.clone()).await, Disposition::Done);
    let cancellation = h.cancellation(cancelled.order_id).await;
    assert_eq!(run(cancellation).await, Disposition::Done);
    assert!(h.intents(cancelled.order_id).await.is_empty());
}

#[tokio::test]
async fn as_many_messages_as_pool_connections_wait_on_stripe_together_and_every_order_is_paid() {
    const POOL: u32 = 4;
    const ORDERS: usize = 20;
    let h = harness().await;
    let pool = h.pool_of(POOL).await;
    let mut overrides = h.overrides();
    overrides.extend([
        ("APP__WORKER__IN_FLIGHT", POOL.to_string()),
        ("APP__DATABASE__MAX_CONNECTIONS", POOL.to_string()),
        ("APP__STRIPE__TIMEOUT_MS", "60000".into()),
    ]);
    let settings = testkit::test_settings_from(&overrides);
    let gateway = Gateway::new(&settings.stripe).expect("gateway");
    let handler = BillingHandler::new(gateway, pool.clone());
    let mut orders = Vec::new();
    for _ in 0..ORDERS {
        let invoiced = h.invoiced_order("pm_card_visa").await;
        h.send(&invoiced).await;
        orders.push(invoiced.order_id);
    }

    let started = std::time::Instant::now();
    let ((), ()) = h
        .while_held(
            "^POST /v1/payment_intents$",
            u64::from(POOL),
            h.start_worker_on(&settings, pool.clone(), handler),
            async {
                crate::helpers::assert_all_back(&pool).await;
                assert_eq!(h.open_transactions().await, 0, "no transaction open");
            },
        )
        .await;
    for order_id in &orders {
        h.wait_status(*order_id, "paid").await;
        assert_eq!(h.intents(*order_id).await.len(), 1, "one charge per order");
    }
    eprintln!(
        "{ORDERS} orders paid by {POOL} messages in flight on a pool of {POOL} in {:?}",
        started.elapsed()
    );
}

/// Statements sent through sqlx, in order, by their first four words (sqlx's own summary),
/// counted from sqlx's statement log (target `sqlx::query`). sqlx does not log the `BEGIN` that
/// opens a transaction; every transaction here ends with a logged `COMMIT` or `ROLLBACK`.
#[derive(Clone, Default)]
struct Statements(Arc<Mutex<Vec<String>>>);

impl Statements {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().expect("statements"))
    }
}

impl<S: tracing::Subscriber> Layer<S> for Statements {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() != "sqlx::query" {
            return;
        }
        let mut summary = Summary::default();
        event.record(&mut summary);
        self.0.lock().expect("statements").push(summary.0);
    }
}

#[derive(Default)]
struct Summary(String);

impl tracing::field::Visit for Summary {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "summary" {
            self.0 = value.trim_end_matches(" …").to_owned();
        }
    }

    fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
}

/// A pool of `size` on the harness's database that counts the connections taken from it.
async fn metered_pool(h: &Harness, size: u32) -> (PgPool, Arc<AtomicUsize>) {
    let taken = Arc::new(AtomicUsize::new(0));
    let (fresh, idle) = (taken.clone(), taken.clone());
    let pool = PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(Duration::from_secs(5))
        .after_connect(move |_, _| {
            fresh.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Ok(()) })
        })
        .before_acquire(move |_, _| {
            idle.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Ok(true) })
        })
        .connect(&h.db_url)
        .await
        .expect("pool");
    (pool, taken)
}

#[tokio::test]
async fn one_charged_order_takes_three_transactions() {
    let h = harness().await;
    let statements = Statements::default();
    let _counting =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(statements.clone()));
    let (pool, taken) = metered_pool(&h, 5).await;
    let handler = BillingHandler::new(h.gateway(), pool.clone());
    let invoiced = h.invoiced_order("pm_card_visa").await;
    let body = serde_json::to_string(&invoiced).expect("json");
    statements.take();
    taken.store(0, Ordering::SeqCst);

    let decided = worker::process(&handler, &pool, &body, Duration::from_secs(30)).await;

    assert_eq!(decided, Disposition::Done);
    let sent = statements.take();
    let transactions = taken.load(Ordering::SeqCst);
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for statement in &sent {
        let kind = statement.split_whitespace().next().unwrap_or_default();
        *kinds.entry(kind.to_uppercase()).or_default() += 1;
    }
    let begins =
        kinds.get("COMMIT").copied().unwrap_or(0) + kinds.get("ROLLBACK").copied().unwrap_or(0);
    eprintln!(
        "one charged order: {transactions} transactions (pool connections taken), {} statements \
         ({begins} BEGIN not logged by sqlx + {} logged: {kinds:?}):\n  {}",
        sent.len() + begins,
        sent.len(),
        sent.join("\n  ")
    );
    assert_eq!(h.status(invoiced.order_id).await, "paid");
    assert_eq!(
        transactions, 3,
        "claim the attempt, record the intent, close with the outcome"
    );
}
