//! The order lifecycle's persistence against the real PostgreSQL (started by
//! `scripts/test.sh`): cancellation, the expiry sweep with several sweepers, what a late
//! order waits for, and a move written with its event in one statement.

use std::time::Duration;

use domain::{CancelReason, EventEnvelope, EventType};
use orders::{Cancellation, Origin, expiry, stuck};
use sqlx::PgPool;
use uuid::Uuid;

async fn database() -> PgPool {
    let url = testkit::fresh_database().await.expect("fresh database");
    let pool = testkit::pool(&url, 10).await.expect("pool");
    sqlx::query("UPDATE products SET stock = 10000 WHERE id = 1")
        .execute(&pool)
        .await
        .unwrap();
    pool
}

/// An order of two units of product 1 in `status`, placed `age` ago, with its units taken from
/// the stock as checkout does.
async fn order(pool: &PgPool, status: &str, age: Duration) -> Uuid {
    let order_id = Uuid::now_v7();
    testkit::orders::write_order(pool, order_id)
        .await
        .expect("order");
    sqlx::query(
        "UPDATE orders SET status = $2, created_at = now() - make_interval(secs => $3) WHERE id = $1",
    )
    .bind(order_id)
    .bind(status)
    .bind(age.as_secs_f64())
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("UPDATE products SET stock = stock - 2 WHERE id = 1")
        .execute(pool)
        .await
        .unwrap();
    order_id
}

async fn stock(pool: &PgPool) -> i32 {
    sqlx::query_scalar("SELECT stock FROM products WHERE id = 1")
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn cancelled_events(pool: &PgPool, order_id: Uuid) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE aggregate_id = $1 AND event_type = 'order.cancelled'",
    )
    .bind(order_id)
    .fetch_one(pool)
    .await
    .unwrap()
}

const SHOPPER: Origin<'static> = Origin {
    reason: CancelReason::Shopper,
    correlation_id: "test",
    traceparent: "",
};

async fn cancel(pool: &PgPool, order_id: Uuid) -> Option<Cancellation> {
    let mut tx = pool.begin().await.unwrap();
    let done = orders::cancel(&mut tx, order_id, &SHOPPER).await.unwrap();
    tx.commit().await.unwrap();
    done
}

#[tokio::test]
async fn each_status_gets_the_cancellation_the_lifecycle_allows_and_a_second_one_changes_nothing() {
    let pool = database().await;
    let expected = [
        ("placed", Cancellation::Cancelled, "cancelled", true),
        ("invoiced", Cancellation::Cancelled, "cancelled", true),
        ("paid", Cancellation::RefundRequested, "paid", false),
    ];
    for (status, outcome, after, stock_back) in expected {
        let order_id = order(&pool, status, Duration::ZERO).await;
        let before = stock(&pool).await;

        assert_eq!(cancel(&pool, order_id).await, Some(outcome), "{status}");
        assert_eq!(
            cancel(&pool, order_id).await,
            Some(Cancellation::AlreadyCancelled(CancelReason::Shopper))
        );

        assert_eq!(testkit::order_status(&pool, order_id).await, after);
        assert_eq!(stock(&pool).await, before + if stock_back { 2 } else { 0 });
        assert_eq!(cancelled_events(&pool, order_id).await, 1);
    }
    for status in ["shipped", "delivered", "payment_failed", "refunded"] {
        let order_id = order(&pool, status, Duration::ZERO).await;
        assert!(
            matches!(
                cancel(&pool, order_id).await,
                Some(Cancellation::NotCancellable(_))
            ),
            "{status}"
        );
        assert_eq!(cancelled_events(&pool, order_id).await, 0);
    }
    assert_eq!(cancel(&pool, Uuid::now_v7()).await, None);
}

#[tokio::test]
async fn two_sweepers_at_once_expire_each_due_order_exactly_once_and_leave_the_others() {
    let pool = database().await;
    let mut due = Vec::new();
    for i in 0..60 {
        let status = if i % 2 == 0 { "placed" } else { "invoiced" };
        due.push(order(&pool, status, Duration::from_secs(120)).await);
    }
    let fresh = order(&pool, "placed", Duration::ZERO).await;
    let paid = order(&pool, "paid", Duration::from_secs(120)).await;
    let before = stock(&pool).await;

    let sweep = |pool: PgPool| async move {
        let mut all = Vec::new();
        loop {
            let batch = expiry::expire_due(&pool, Duration::from_secs(60), 7)
                .await
                .unwrap();
            if batch.is_empty() {
                return all;
            }
            all.extend(batch);
        }
    };
    let (a, b) = tokio::join!(
        tokio::spawn(sweep(pool.clone())),
        tokio::spawn(sweep(pool.clone()))
    );
    let (a, b) = (a.unwrap(), b.unwrap());

    assert_eq!(a.len() + b.len(), due.len(), "each due order once");
    assert!(a.iter().all(|id| !b.contains(id)));
    for order_id in &due {
        assert_eq!(cancelled_events(&pool, *order_id).await, 1);
        let reason: Option<String> =
            sqlx::query_scalar("SELECT cancel_reason FROM orders WHERE id = $1")
                .bind(order_id)
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(reason.as_deref(), Some("expired"));
    }
    assert_eq!(
        stock(&pool).await,
        before + 2 * due.len() as i32,
        "released once each"
    );
    assert_eq!(testkit::order_status(&pool, fresh).await, "placed");
    assert_eq!(
        testkit::order_status(&pool, paid).await,
        "paid",
        "paid orders never expire"
    );
}

#[tokio::test]
async fn a_late_order_says_which_consumer_has_not_processed_which_event() {
    let pool = database().await;
    let order_id = order(&pool, "placed", Duration::from_secs(3600)).await;
    let placed = EventEnvelope::new(
        EventType::OrderPlaced,
        order_id,
        "test",
        "",
        &serde_json::json!({}),
    )
    .unwrap();
    let mut tx = pool.begin().await.unwrap();
    orders::record_event(&mut tx, &placed, serde_json::json!({}))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let waiting = stuck::pending_steps(&pool, order_id).await.unwrap();
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert_eq!(waiting[0].consumer, domain::Consumer::Invoice);
    assert_eq!(
        waiting[0].describe(),
        "order.placed: waiting in the outbox to be published"
    );
    let listed = stuck::stuck(&pool, Duration::from_secs(900), 10)
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|o| o.order_id).collect::<Vec<_>>(),
        [order_id]
    );
    assert_eq!(
        stuck::count_stuck(&pool, Duration::from_secs(900))
            .await
            .unwrap(),
        1
    );

    sqlx::query("INSERT INTO inbox (consumer, event_id) VALUES ('invoice', $1)")
        .bind(placed.event_id)
        .execute(&pool)
        .await
        .unwrap();
    assert!(
        stuck::pending_steps(&pool, order_id)
            .await
            .unwrap()
            .is_empty()
    );
}

/// The outbox row and timeline entry of `event_id`: (outbox rows, timeline detail).
async fn recorded(pool: &PgPool, event_id: Uuid) -> (i64, Option<serde_json::Value>) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM outbox WHERE event_id = $1),
                (SELECT detail FROM order_timeline WHERE event_id = $1)",
    )
    .bind(event_id)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn advance_writes_the_move_and_its_event_together_or_nothing() {
    use domain::OrderStatus::{Invoiced, Paid, Placed, Refunded};
    let pool = database().await;
    let order_id = order(&pool, "invoiced", Duration::ZERO).await;
    let event = |event_type| {
        EventEnvelope::new(event_type, order_id, "test", "", &serde_json::json!({})).unwrap()
    };
    let paid = event(EventType::PaymentSucceeded);
    let detail = serde_json::json!({"amount_minor": 990});

    let mut tx = pool.begin().await.unwrap();
    orders::lock(&mut tx, order_id).await.unwrap();
    let moved = orders::advance(&mut tx, Invoiced, Paid, &paid, detail.clone()).await;
    tx.commit().await.unwrap();
    assert_eq!(moved.unwrap(), orders::Transition::Applied);
    assert_eq!(testkit::order_status(&pool, order_id).await, "paid");
    assert_eq!(recorded(&pool, paid.event_id).await, (1, Some(detail)));

    // A move the state machine refuses writes nothing.
    let back = event(EventType::OrderPlaced);
    let mut tx = pool.begin().await.unwrap();
    let refused = orders::advance(&mut tx, Paid, Placed, &back, serde_json::json!({})).await;
    tx.commit().await.unwrap();
    assert!(matches!(refused.unwrap(), orders::Transition::Rejected(_)));
    assert_eq!(recorded(&pool, back.event_id).await, (0, None));

    // A failing write (the event recorded already) fails the status change with it.
    let mut tx = pool.begin().await.unwrap();
    let again = orders::advance(&mut tx, Paid, Refunded, &paid, serde_json::json!({})).await;
    tx.rollback().await.unwrap();
    assert!(again.is_err(), "a second row for the event must be refused");
    assert_eq!(testkit::order_status(&pool, order_id).await, "paid");
}

#[tokio::test]
async fn advance_if_records_the_event_only_when_the_order_was_still_where_it_was_read() {
    use domain::OrderStatus::{Cancelled, Invoiced, Paid, Placed, Shipped};
    let pool = database().await;
    let order_id = order(&pool, "placed", Duration::ZERO).await;
    let invoiced = |n: i64| {
        let payload = serde_json::json!({"n": n});
        EventEnvelope::new(EventType::InvoiceGenerated, order_id, "test", "", &payload).unwrap()
    };
    let first = invoiced(1);
    let detail = serde_json::json!({"invoice_number": "INV-2026-000001"});

    let mut conn = pool.acquire().await.unwrap();
    let moved = orders::advance_if(&mut conn, Placed, Invoiced, &first, detail.clone()).await;
    assert!(moved.unwrap(), "a placed order moves");
    assert_eq!(testkit::order_status(&pool, order_id).await, "invoiced");
    assert_eq!(recorded(&pool, first.event_id).await, (1, Some(detail)));

    // Read as placed, but it moved on meanwhile (a second delivery, a cancellation): nothing.
    let second = invoiced(2);
    let moved = orders::advance_if(&mut conn, Placed, Invoiced, &second, serde_json::json!({}));
    assert!(
        !moved.await.unwrap(),
        "an order no longer placed does not move"
    );
    assert_eq!(recorded(&pool, second.event_id).await, (0, None));

    // A move the state machine refuses writes nothing either.
    let third = invoiced(3);
    let moved = orders::advance_if(
        &mut conn,
        Cancelled,
        Invoiced,
        &third,
        serde_json::json!({}),
    );
    assert!(!moved.await.unwrap());
    assert_eq!(recorded(&pool, third.event_id).await, (0, None));
    assert_eq!(testkit::order_status(&pool, order_id).await, "invoiced");

    // Paid, with a cancellation accepted (billing refunds it): it does not move on.
    sqlx::query(
        "UPDATE orders SET status = 'paid', cancel_reason = 'shopper', cancelled_at = now()
         WHERE id = $1",
    )
    .bind(order_id)
    .execute(&pool)
    .await
    .unwrap();
    let shipped = EventEnvelope::new(
        EventType::ShipmentCreated,
        order_id,
        "test",
        "",
        &serde_json::json!({}),
    )
    .unwrap();
    let moved = orders::advance_if(&mut conn, Paid, Shipped, &shipped, serde_json::json!({}));
    assert!(
        !moved.await.unwrap(),
        "an order being cancelled does not ship"
    );
    assert_eq!(recorded(&pool, shipped.event_id).await, (0, None));
    assert_eq!(testkit::order_status(&pool, order_id).await, "paid");
}

#[tokio::test]
async fn a_payment_outcome_gives_up_only_the_claim_of_the_handling_that_applies_it() {
    use orders::payments::{self, PaymentOutcome};
    let pool = database().await;
    let (holder, other) = (Uuid::now_v7(), Uuid::now_v7());
    let outcome = |order_id: Uuid| PaymentOutcome::Succeeded {
        payment_intent_id: format!("pi_{}", order_id.simple()),
        amount_minor: 990,
        currency: domain::Currency::parse("EUR").unwrap(),
    };
    let claim_of = |order_id: Uuid| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, Option<Uuid>>(
                "SELECT claim_event FROM payments WHERE order_id = $1",
            )
            .bind(order_id)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let mut ends = Vec::new();
    for applier in [None, Some(other), Some(holder)] {
        let order_id = order(&pool, "invoiced", Duration::ZERO).await;
        sqlx::query(
            "INSERT INTO payments (order_id, amount_minor, currency, claim_event, claimed_until)
             VALUES ($1, 990, 'EUR', $2, now() + interval '60 s')",
        )
        .bind(order_id)
        .bind(holder)
        .execute(&pool)
        .await
        .unwrap();
        let outcome = outcome(order_id);
        let mut tx = pool.begin().await.unwrap();
        let released = match applier {
            None => {
                payments::apply_outcome(&mut tx, order_id, &outcome, "test", "")
                    .await
                    .unwrap();
                None
            }
            Some(claim) => Some(
                payments::apply_claimed_outcome(&mut tx, order_id, &outcome, claim, "test", "")
                    .await
                    .unwrap()
                    .1,
            ),
        };
        tx.commit().await.unwrap();
        assert_eq!(testkit::order_status(&pool, order_id).await, "paid");
        ends.push((released, claim_of(order_id).await));
    }
    assert_eq!(
        ends,
        [
            (None, Some(holder)),
            (Some(true), Some(holder)),
            (Some(true), None)
        ],
        "the webhook and another event leave the holder's claim; the holder gives it up"
    );
}
