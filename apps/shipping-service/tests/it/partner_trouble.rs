//! A partner in trouble delays shipping and never refunds: outages, rate limits and lost answers
//! are retried through the real queue (with the same idempotency key) until the retry budget;
//! only the partner's refusal of the address emits `shipment.failed`. Time is compressed
//! ([`FAST_RETRIES`]): 300 ms of quick retries per delivery instead of 20 s, redeliveries after
//! 1 s and then every 2 s instead of 2 s … 5 min.

use std::time::{Duration, Instant};

use partner_sim::Faults;
use serde_json::json;

use crate::helpers::{FAST_RETRIES, Harness, harness_with};

fn fast_retries_and(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    FAST_RETRIES.iter().chain(extra).copied().collect()
}

/// 50 paid orders meet a partner answering nothing but `503` for `outage`; afterwards every one
/// is shipped once, none failed or parked.
async fn orders_outlive_an_outage(h: &Harness, outage: Duration) {
    let mut events = Vec::new();
    for _ in 0..50 {
        events.push(h.paid_order().await);
    }
    let started = Instant::now();
    h.send(&events.iter().collect::<Vec<_>>()).await;
    for event in &events {
        h.wait_partner(event.order_id, "requests", 2, outage).await;
    }
    tokio::time::sleep(outage.saturating_sub(started.elapsed())).await;

    assert_eq!(
        h.count("SELECT count(*) FROM orders WHERE status = 'paid'")
            .await,
        50,
        "during the outage every order waits, paid"
    );
    assert_eq!(
        h.emitted("shipment.failed").await,
        0,
        "no refund for an outage"
    );
    assert_eq!(h.dlq_depth().await, 0, "nothing parked during the outage");

    h.put_faults(&json!({})).await;
    h.wait_for(
        "50 shipped orders",
        "SELECT count(*) FROM orders WHERE status = 'shipped'",
        50,
        // At production timings a message may be waiting out a redelivery delay, then run
        // behind nine others: up to about a minute and a half.
        Duration::from_secs(120),
    )
    .await;
    h.wait_idle().await;

    assert_eq!(h.count("SELECT count(*) FROM shipments").await, 50);
    assert_eq!(h.emitted("shipment.created").await, 50);
    assert_eq!(h.emitted("shipment.failed").await, 0);
    assert_eq!(h.dlq_depth().await, 0, "nothing in the dead-letter queue");
    for event in &events {
        assert_eq!(
            h.partner_shipments(event.order_id).await,
            1,
            "order {}: exactly one shipment",
            event.order_id
        );
    }
}

#[tokio::test]
async fn orders_paid_during_a_partner_outage_longer_than_the_old_deadline_are_all_shipped_once() {
    let down = Faults {
        error_rate: 1.0,
        ..Faults::default()
    };
    let h = harness_with(down, &FAST_RETRIES).await;
    // The old handler gave up — shipment.failed, a refund — after 20 s of outage.
    orders_outlive_an_outage(&h, Duration::from_secs(21)).await;
}

#[tokio::test]
#[ignore = "the same at production timings (20 s per delivery, a 3-minute outage): about 3.5 minutes"]
async fn orders_paid_during_a_three_minute_outage_are_all_shipped_once_at_production_timings() {
    let down = Faults {
        error_rate: 1.0,
        ..Faults::default()
    };
    let settings = [
        ("APP__SHIPPING__ATTEMPT_TIMEOUT_MS", "5000"),
        ("APP__SHIPPING__DEADLINE_MS", "20000"),
        ("APP__SHIPPING__BACKOFF_BASE_MS", "200"),
        ("APP__SHIPPING__BACKOFF_MAX_MS", "5000"),
        ("APP__WORKER__HANDLER_TIMEOUT_S", "30"),
        ("APP__WORKER__RETRY_BASE_S", "2"),
        ("APP__WORKER__RETRY_MAX_S", "60"),
    ];
    let h = harness_with(down, &settings).await;
    orders_outlive_an_outage(&h, Duration::from_secs(180)).await;
}

#[tokio::test]
async fn a_rate_limited_shipment_is_not_retried_before_the_partners_retry_after() {
    let limited = Faults {
        rate_limit_rate: 1.0,
        retry_after_s: 3,
        ..Faults::default()
    };
    let h = harness_with(limited, &FAST_RETRIES).await;
    let event = h.paid_order().await;
    h.send(&[&event]).await;
    let first = h
        .wait_partner(event.order_id, "requests", 1, Duration::from_secs(20))
        .await;
    h.put_faults(&json!({})).await;
    let second = h
        .wait_partner(event.order_id, "requests", 2, Duration::from_secs(20))
        .await;
    h.wait_for(
        "the shipment",
        "SELECT count(*) FROM shipments",
        1,
        Duration::from_secs(20),
    )
    .await;

    let waited = second - first;
    // Polled every 10 ms: the second request is seen at most a poll late, the first too.
    assert!(
        waited >= Duration::from_millis(2_900),
        "retried after {waited:?}, before the Retry-After of 3 s (the worker's own delay is 1 s)"
    );
    assert!(
        waited < Duration::from_secs(10),
        "retried after {waited:?}: the Retry-After, not the queue's visibility timeout"
    );
    assert_eq!(h.status(event.order_id).await, "shipped");
    assert_eq!(
        h.partner_count(event.order_id, "requests").await,
        2,
        "one rate-limited request, one served"
    );
    assert_eq!(h.partner_shipments(event.order_id).await, 1);
}

#[tokio::test]
async fn a_booking_whose_answer_was_lost_is_found_by_the_retry_not_booked_twice() {
    // Every answer comes after 1.5 s, long after the client gave up (200 ms): the shipment is
    // booked, its answer lost.
    let slow = Faults {
        latency_ms: 1_500,
        ..Faults::default()
    };
    let h = harness_with(slow, &FAST_RETRIES).await;
    let event = h.paid_order().await;
    h.send(&[&event]).await;
    h.wait_partner(
        event.order_id,
        "shipments_created",
        1,
        Duration::from_secs(20),
    )
    .await;
    h.put_faults(&json!({})).await;
    h.wait_for(
        "the shipment",
        "SELECT count(*) FROM shipments",
        1,
        Duration::from_secs(20),
    )
    .await;
    h.wait_idle().await;

    assert_eq!(h.status(event.order_id).await, "shipped");
    assert_eq!(h.partner_shipments(event.order_id).await, 1, "one shipment");
    assert!(h.partner_count(event.order_id, "requests").await >= 2);
    assert_eq!(h.emitted("shipment.created").await, 1);
    assert_eq!(h.emitted("shipment.failed").await, 0);
}

#[tokio::test]
async fn a_recipient_field_the_partner_refuses_emits_shipment_failed() {
    let h = harness_with(Faults::default(), &FAST_RETRIES).await;
    let event = h.paid_order().await;
    // The partner answers 400 missing_field with field recipient.city.
    sqlx::query("UPDATE orders SET ship_city = '' WHERE id = $1")
        .bind(event.order_id)
        .execute(&h.pool)
        .await
        .expect("no city");
    h.send(&[&event]).await;
    h.wait_for(
        "shipment.failed",
        "SELECT count(*) FROM outbox WHERE event_type = 'shipment.failed'",
        1,
        Duration::from_secs(20),
    )
    .await;
    h.wait_idle().await;

    let reason: String = sqlx::query_scalar(
        "SELECT envelope->'payload'->>'reason' FROM outbox WHERE event_type = 'shipment.failed'",
    )
    .fetch_one(&h.pool)
    .await
    .expect("event");
    assert!(reason.contains("recipient.city"), "{reason}");
    assert_eq!(
        h.status(event.order_id).await,
        "paid",
        "billing refunds next"
    );
    assert_eq!(h.partner_shipments(event.order_id).await, 0);
    assert_eq!(h.dlq_depth().await, 0);
}

#[tokio::test]
async fn a_partner_down_past_the_retry_budget_parks_the_message_and_leaves_the_order_paid() {
    let down = Faults {
        error_rate: 1.0,
        ..Faults::default()
    };
    // The simulator answers 503 at once; the client gets 2 s per attempt so that a loaded
    // machine cannot turn the last answer into a timeout of our own (the reason names the 503).
    let settings = fast_retries_and(&[
        ("APP__SHIPPING__RETRY_BUDGET_S", "2"),
        ("APP__SHIPPING__ATTEMPT_TIMEOUT_MS", "2000"),
        ("APP__SHIPPING__DEADLINE_MS", "2000"),
    ]);
    let h = harness_with(down, &settings).await;
    let event = h.paid_order().await;
    h.send(&[&event]).await;
    let parked = h.parked(1, Duration::from_secs(20)).await;
    h.wait_idle().await;

    let [(body, reason)] = parked.as_slice() else {
        panic!("one parked message, got {parked:?}");
    };
    assert!(body.contains(&event.event_id.to_string()));
    assert!(
        reason.contains("past the retry budget of 2 s") && reason.contains("503"),
        "{reason}"
    );
    assert!(
        h.partner_count(event.order_id, "requests").await >= 2,
        "retried before it was parked"
    );
    assert_eq!(h.status(event.order_id).await, "paid", "not refunded");
    assert_eq!(h.emitted("shipment.failed").await, 0);
    assert_eq!(h.count("SELECT count(*) FROM shipments").await, 0);
    assert_eq!(
        h.count("SELECT count(*) FROM inbox WHERE consumer = 'shipping'")
            .await,
        0,
        "not processed: the order is listed as waiting on shipping"
    );
}

#[tokio::test]
async fn a_request_the_partner_refuses_as_ours_is_parked_not_refunded() {
    let h = harness_with(Faults::default(), &FAST_RETRIES).await;
    let event = h.paid_order().await;
    // The same key with another request before: 409 idempotency_key_reused.
    let response = reqwest::Client::new()
        .post(format!("{}/v1/shipments", h.partner))
        .header("Idempotency-Key", format!("ship-{}", event.event_id))
        .json(&json!({
            "reference": "someone else",
            "recipient": {"name": "B", "line1": "1 Road", "postal_code": "N1", "city": "London", "country": "GB"}
        }))
        .send()
        .await
        .expect("first use of the key");
    assert_eq!(response.status(), 201);
    h.send(&[&event]).await;
    let parked = h.parked(1, Duration::from_secs(20)).await;
    h.wait_idle().await;

    let [(_, reason)] = parked.as_slice() else {
        panic!("one parked message, got {parked:?}");
    };
    assert!(reason.contains("409 idempotency_key_reused"), "{reason}");
    assert_eq!(h.status(event.order_id).await, "paid");
    assert_eq!(h.emitted("shipment.failed").await, 0);
}
