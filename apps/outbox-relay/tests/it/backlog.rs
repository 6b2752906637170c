//! A backlog of several events per order, committed at once: after each order's first event
//! is published, the next becomes claimable, and no notification says so. The relay claims it
//! after its linger, not after the poll interval (here one minute), also when another loop
//! published the rows it waited behind.

use std::time::Duration;

use domain::{EventEnvelope, EventType};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::helpers::{Harness, harness};

const ORDERS: usize = 3;
const EVENTS_PER_ORDER: usize = 5;

#[tokio::test]
async fn several_events_per_order_committed_at_once_drain_without_waiting_for_the_poll() {
    let h = harness().await;
    commit_backlog(&h, ORDERS, EVENTS_PER_ORDER).await;
    let relay = h
        .relay_with(&[("APP__RELAY__POLL_INTERVAL_MS", "60000")])
        .await;
    let summary = drain_within(
        &h,
        relay,
        ORDERS * EVENTS_PER_ORDER,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(summary.published, ORDERS * EVENTS_PER_ORDER);
}

/// More orders than the loops claim at once: a claim can find every claimable row locked by
/// the other loops and the rows behind them not claimable yet (it ends empty or short), and the
/// rows become claimable when another loop commits its publish. That commit wakes the claim.
#[tokio::test]
async fn a_backlog_spread_over_the_loops_drains_without_waiting_for_the_poll() {
    const MANY_ORDERS: usize = 200;
    let h = harness().await;
    commit_backlog(&h, MANY_ORDERS, 2).await;
    let relay = h
        .relay_with(&[
            ("APP__RELAY__POLL_INTERVAL_MS", "60000"),
            ("APP__RELAY__BATCH_SIZE", "10"),
            ("APP__RELAY__CONCURRENCY", "4"),
        ])
        .await;
    let summary = drain_within(&h, relay, MANY_ORDERS * 2, Duration::from_secs(20)).await;
    assert_eq!(summary.published, MANY_ORDERS * 2);
}

/// Commits `events_per_order` events for each of `orders` new orders in one transaction.
async fn commit_backlog(h: &Harness, orders: usize, events_per_order: usize) {
    let mut tx = h.pool.begin().await.expect("begin");
    for _ in 0..orders {
        let order_id = Uuid::now_v7();
        for n in 0..events_per_order {
            let event = EventEnvelope::new(
                EventType::OrderPlaced,
                order_id,
                "test",
                "",
                &serde_json::json!({ "n": n }),
            )
            .expect("envelope");
            outbox::enqueue(&mut tx, &event).await.expect("enqueue");
        }
    }
    tx.commit().await.expect("commit");
}

/// Runs `relay` until `all` rows are published, at most `within` (the poll interval is far
/// longer: a wait for it fails the test); its summary.
async fn drain_within(
    h: &Harness,
    relay: outbox_relay::Relay,
    all: usize,
    within: Duration,
) -> outbox_relay::RunSummary {
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(relay.run(shutdown.clone()));
    let all = i64::try_from(all).expect("count");
    let drained = testkit::eventually("every row published", within, || async {
        testkit::scalar(
            &h.pool,
            "SELECT count(*) FROM outbox WHERE published_at IS NOT NULL",
        )
        .await
            == all
    })
    .await;
    shutdown.cancel();
    let summary = running.await.expect("relay stopped");
    drained.expect("drained before the poll interval of 60 s");
    summary
}
