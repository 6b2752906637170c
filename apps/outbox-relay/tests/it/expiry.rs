//! The expiry sweeper beside the publish loops: unpaid orders past the expiry are cancelled as
//! `expired` once, whatever number of relays sweep at once, with their stock put back and
//! `order.cancelled` published; paid orders are never expired.

use std::time::Duration;

use domain::{Consumer, EventType};
use outbox_relay::{Sweeper, expiry::Swept};
use settings::OrdersSettings;
use tokio_util::sync::CancellationToken;

use crate::helpers::{harness, kill_9};

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn an_unpaid_order_past_its_expiry_ends_cancelled_as_expired_with_its_stock_back_and_billing_and_email_told()
 {
    let h = harness().await;
    let shelf = h.stock().await;
    let unpaid = h.insert_order("placed", Duration::from_secs(2)).await;
    let paid = h.insert_order("paid", HOUR).await;
    assert_eq!(
        h.stock().await,
        shelf - 4,
        "both orders reserve their units"
    );

    let mut relay = h.spawn_relay_process_with(&[
        ("APP__ORDERS__EXPIRE_AFTER_S", "1"),
        ("APP__ORDERS__SWEEP_INTERVAL_S", "1"),
    ]);
    testkit::eventually("the order to expire", Duration::from_secs(30), || async {
        testkit::order_status(&h.pool, unpaid).await == "cancelled"
    })
    .await
    .expect("expired in time");
    h.wait_all_published(1, Duration::from_secs(30)).await;
    kill_9(&mut relay);

    assert_eq!(
        h.order_state(unpaid).await,
        ("cancelled".to_owned(), Some("expired".to_owned()))
    );
    assert_eq!(
        h.stock().await,
        shelf - 2,
        "the expired order's units are back"
    );
    // The paid order was due by age in the same sweep, and stays as it was.
    assert_eq!(h.order_state(paid).await, ("paid".to_owned(), None));
    assert_eq!(h.cancellations(paid).await, 0);
    for consumer in [Consumer::Billing, Consumer::Email] {
        let received = h.receive(consumer, 1).await;
        assert_eq!(received.len(), 1, "{consumer}");
        let envelope = &received[0].envelope;
        assert_eq!(envelope.event_type, EventType::OrderCancelled, "{consumer}");
        assert_eq!(envelope.order_id, unpaid, "{consumer}");
        assert_eq!(envelope.payload["reason"], "expired", "{consumer}");
        assert_eq!(envelope.payload["paid"], false, "{consumer}");
    }
}

#[tokio::test]
async fn two_relays_sweeping_at_once_cancel_each_of_200_due_orders_exactly_once() {
    let h = harness().await;
    sqlx::query("UPDATE products SET stock = 1000 WHERE id = 1")
        .execute(&h.pool)
        .await
        .expect("stock");
    for n in 0..200 {
        let status = if n % 2 == 0 { "placed" } else { "invoiced" };
        h.insert_order(status, HOUR).await;
    }
    assert_eq!(h.stock().await, 600);
    // Small batches, so that the two relays' sweeps interleave over many transactions.
    let orders = OrdersSettings {
        expire_after_s: 60,
        sweep_interval_s: 1,
        sweep_batch: 10,
        stuck_after_s: 900,
    };
    let first = h.sweeping_relay(&orders).await;
    let second = h.sweeping_relay(&orders).await;
    let stop = CancellationToken::new();

    let runs = [
        tokio::spawn(first.run(stop.clone())),
        tokio::spawn(second.run(stop.clone())),
    ];
    let cancelled = || {
        testkit::scalar(
            &h.pool,
            "SELECT count(*) FROM orders WHERE status = 'cancelled'",
        )
    };
    testkit::eventually(
        "all 200 orders to expire",
        Duration::from_secs(60),
        || async { cancelled().await == 200 },
    )
    .await
    .expect("expired in time");
    h.wait_all_published(200, Duration::from_secs(60)).await;
    stop.cancel();
    let mut expired = 0;
    for run in runs {
        expired += run.await.expect("the relay stops cleanly").expired;
    }

    assert_eq!(expired, 200, "the two sweepers' counts add up to 200");
    let not_once = testkit::scalar(
        &h.pool,
        "SELECT count(*) FROM orders o
         WHERE (SELECT count(*) FROM outbox x
                WHERE x.aggregate_id = o.id AND x.event_type = 'order.cancelled') <> 1
            OR (SELECT count(*) FROM order_timeline t
                WHERE t.order_id = o.id AND t.event_type = 'order.cancelled') <> 1
            OR o.cancel_reason IS DISTINCT FROM 'expired'",
    )
    .await;
    assert_eq!(
        not_once, 0,
        "every order cancelled exactly once, as expired"
    );
    assert_eq!(
        h.stock().await,
        1000,
        "every order's units back exactly once"
    );
}

#[tokio::test]
async fn a_paid_order_is_never_expired_and_counts_as_stuck() {
    let h = harness().await;
    let paid = h.insert_order("paid", HOUR).await;
    let invoiced = h.insert_order("invoiced", HOUR).await;
    let fresh = h.insert_order("placed", Duration::ZERO).await;
    let sweeper = Sweeper::new(
        h.pool.clone(),
        OrdersSettings {
            expire_after_s: 60,
            sweep_interval_s: 1,
            sweep_batch: 10,
            stuck_after_s: 600,
        },
    );
    let stop = CancellationToken::new();

    let first = sweeper.sweep(&stop).await;
    let second = sweeper.sweep(&stop).await;

    assert_eq!(
        first,
        Swept {
            expired: 1,
            stuck: Some(1)
        },
        "the invoiced order expires; the paid one is stuck; the fresh one neither"
    );
    assert_eq!(
        second,
        Swept {
            expired: 0,
            stuck: Some(1)
        }
    );
    assert_eq!(h.order_state(paid).await, ("paid".to_owned(), None));
    assert_eq!(h.cancellations(paid).await, 0);
    assert_eq!(
        h.order_state(invoiced).await,
        ("cancelled".to_owned(), Some("expired".to_owned()))
    );
    assert_eq!(h.cancellations(invoiced).await, 1);
    assert_eq!(h.order_state(fresh).await, ("placed".to_owned(), None));
}
