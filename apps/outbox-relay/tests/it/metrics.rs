//! The relay process's metrics port: published rows, their lag, publish errors, the backlog, and
//! the sweeper's expired and stuck orders, read back over HTTP from the real binary (one process
//! per test, so values are exact).

use std::{sync::Mutex, time::Duration};

use domain::EventType;
use outbox_relay::metrics::{
    ORDERS_EXPIRED_TOTAL, ORDERS_STUCK, OUTBOX_BACKLOG, OUTBOX_OLDEST_UNPUBLISHED,
    PUBLISH_ERRORS_TOTAL, PUBLISH_LAG, PUBLISHED_TOTAL,
};
use telemetry::metrics::sample;
use uuid::Uuid;

use crate::helpers::{Harness, harness, kill_9};

/// The metrics of the relay at `addr`, or `None` while it is not answering yet.
async fn scrape(addr: &str) -> Option<String> {
    let response = reqwest::get(format!("http://{addr}/metrics")).await.ok()?;
    response.text().await.ok()
}

/// Waits until the relay at `addr` reports `name` (no labels) as `check` wants it; returns the
/// whole exposition.
async fn wait_for(addr: &str, what: &str, name: &str, check: impl Fn(f64) -> bool) -> String {
    let last = Mutex::new(String::new());
    let seen = testkit::eventually(what, Duration::from_secs(30), || async {
        let Some(text) = scrape(addr).await else {
            return false;
        };
        let ok = sample(&text, name, &[]).is_some_and(&check);
        *last.lock().expect("lock") = text;
        ok
    })
    .await;
    let last = last.into_inner().expect("lock");
    seen.unwrap_or_else(|e| panic!("{e}; last scrape:\n{last}"));
    last
}

async fn enqueue_orders(h: &Harness, n: usize) {
    for _ in 0..n {
        h.enqueue(Uuid::now_v7(), EventType::OrderPlaced).await;
    }
}

#[tokio::test]
async fn the_relay_reports_published_rows_their_lag_and_a_backlog_that_falls_to_zero() {
    let h = harness().await;
    enqueue_orders(&h, 5).await;
    let addr = format!("127.0.0.1:{}", testkit::free_port());
    let mut relay = h.spawn_relay_process_with(&[("APP__METRICS__ADDR", &addr)]);

    h.wait_all_published(5, Duration::from_secs(30)).await;
    let text = wait_for(&addr, "the backlog to read 0", OUTBOX_BACKLOG, |v| v == 0.0).await;
    kill_9(&mut relay);

    assert_eq!(sample(&text, PUBLISHED_TOTAL, &[]), Some(5.0), "{text}");
    let lag_count = sample(&text, &format!("{PUBLISH_LAG}_count"), &[]);
    assert_eq!(
        lag_count,
        Some(5.0),
        "one lag sample per published row: {text}"
    );
    let lag_sum = sample(&text, &format!("{PUBLISH_LAG}_sum"), &[]).unwrap_or(0.0);
    assert!(lag_sum > 0.0, "{text}");
    assert_eq!(sample(&text, PUBLISH_ERRORS_TOTAL, &[]).unwrap_or(0.0), 0.0);
    assert_eq!(sample(&text, OUTBOX_OLDEST_UNPUBLISHED, &[]), Some(0.0));
}

#[tokio::test]
async fn rows_that_cannot_be_published_show_as_errors_and_an_ageing_backlog() {
    let h = harness().await;
    enqueue_orders(&h, 3).await;
    let addr = format!("127.0.0.1:{}", testkit::free_port());
    // No queue has this prefix: every publish fails, and the rows stay in the outbox.
    let prefix = format!("missing-{}-", Uuid::new_v4().simple());
    let mut relay = h.spawn_relay_process_with(&[
        ("APP__METRICS__ADDR", &addr),
        ("APP__SQS__QUEUE_PREFIX", &prefix),
    ]);

    wait_for(&addr, "publish errors", PUBLISH_ERRORS_TOTAL, |v| v >= 3.0).await;
    let text = wait_for(&addr, "an ageing backlog", OUTBOX_OLDEST_UNPUBLISHED, |v| {
        v > 0.0
    })
    .await;
    kill_9(&mut relay);

    assert_eq!(sample(&text, OUTBOX_BACKLOG, &[]), Some(3.0), "{text}");
    assert_eq!(
        sample(&text, PUBLISHED_TOTAL, &[]).unwrap_or(0.0),
        0.0,
        "{text}"
    );
    assert_eq!(h.published().await, 0);
}

#[tokio::test]
async fn the_relay_reports_the_stuck_orders_and_the_orders_it_expired() {
    let h = harness().await;
    let minutes = |m: u64| Duration::from_secs(m * 60);
    // Stuck (not settled, older than the 15 min default): the two paid orders. The placed order
    // of an hour ago is past the 30 min default expiry: expired, so no longer stuck.
    h.insert_order("paid", minutes(20)).await;
    h.insert_order("paid", minutes(40)).await;
    let expiring = h.insert_order("placed", minutes(60)).await;
    h.insert_order("shipped", minutes(60)).await;
    h.insert_order("placed", Duration::ZERO).await;
    let addr = format!("127.0.0.1:{}", testkit::free_port());
    let mut relay = h.spawn_relay_process_with(&[("APP__METRICS__ADDR", &addr)]);

    let text = wait_for(&addr, "the stuck gauge", ORDERS_STUCK, |v| v == 2.0).await;
    kill_9(&mut relay);

    // The gauge is set after the sweep's expiry, so the counter is already there.
    assert_eq!(
        sample(&text, ORDERS_EXPIRED_TOTAL, &[]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(h.order_state(expiring).await.1.as_deref(), Some("expired"));
}
