//! A cancellation and a shipment racing: the handler holds no order lock while the partner
//! works, so a cancellation accepted meanwhile wins, and the shipment just booked is cancelled
//! at the partner; an order cancelled before its message books nothing.

use std::time::Duration;

use orders::Cancellation;
use partner_sim::Faults;
use serde_json::json;

use crate::helpers::{FAST_RETRIES, harness_with};

/// Every partner answer takes this long (the work is done first), far within the client's
/// timeouts below.
const LATENCY_MS: u64 = 1_500;

const PATIENT_CLIENT: [(&str, &str); 2] = [
    ("APP__SHIPPING__ATTEMPT_TIMEOUT_MS", "2500"),
    ("APP__SHIPPING__DEADLINE_MS", "3000"),
];

fn settings() -> Vec<(&'static str, &'static str)> {
    FAST_RETRIES
        .iter()
        .chain(&PATIENT_CLIENT)
        .copied()
        .collect()
}

#[tokio::test]
async fn a_cancellation_accepted_while_the_partner_books_cancels_the_shipment_at_the_partner() {
    let slow = Faults {
        latency_ms: LATENCY_MS,
        ..Faults::default()
    };
    let h = harness_with(slow, &settings()).await;
    let event = h.paid_order().await;
    h.send(&[&event]).await;
    let booked = h
        .wait_partner(
            event.order_id,
            "shipments_created",
            1,
            Duration::from_secs(20),
        )
        .await;

    // The partner has booked; its answer is on the way. The order's row is not locked.
    let cancelled = h.cancel(event.order_id).await;
    let cancelled_after = booked.elapsed();
    assert_eq!(cancelled, Cancellation::RefundRequested);
    assert!(
        cancelled_after < Duration::from_millis(LATENCY_MS),
        "the cancellation took {cancelled_after:?}: it waited for the partner call"
    );
    h.wait_partner(
        event.order_id,
        "shipments_cancelled",
        1,
        Duration::from_secs(20),
    )
    .await;
    h.wait_idle().await;

    assert_eq!(
        h.status(event.order_id).await,
        "paid",
        "not shipped: billing refunds it"
    );
    assert_eq!(h.partner_shipments(event.order_id).await, 1);
    assert_eq!(
        h.partner_count(event.order_id, "shipments_cancelled").await,
        1
    );
    assert_eq!(h.count("SELECT count(*) FROM shipments").await, 0);
    assert_eq!(h.emitted("shipment.created").await, 0);
    assert_eq!(h.emitted("shipment.failed").await, 0);
    assert_eq!(h.emitted("order.cancelled").await, 1);
    assert_eq!(
        h.count("SELECT count(*) FROM inbox WHERE consumer = 'shipping'")
            .await,
        1,
        "the event is handled"
    );
    assert_eq!(
        h.count("SELECT count(*) FROM inbox WHERE consumer = 'shipping-cancel'")
            .await,
        0,
        "nothing left to cancel"
    );
    assert_eq!(h.dlq_depth().await, 0);
}

#[tokio::test]
async fn a_shipment_whose_cancel_call_failed_is_cancelled_by_the_redelivery() {
    let slow = Faults {
        latency_ms: LATENCY_MS,
        ..Faults::default()
    };
    let h = harness_with(slow, &settings()).await;
    let event = h.paid_order().await;
    h.send(&[&event]).await;
    h.wait_partner(
        event.order_id,
        "shipments_created",
        1,
        Duration::from_secs(20),
    )
    .await;
    // The booking's answer is on its way; the cancel call that follows meets an outage.
    h.put_faults(&json!({"error_rate": 1.0})).await;
    assert_eq!(
        h.cancel(event.order_id).await,
        Cancellation::RefundRequested
    );
    h.wait_for(
        "the shipment marked as still to cancel",
        "SELECT count(*) FROM inbox WHERE consumer = 'shipping-cancel'",
        1,
        Duration::from_secs(20),
    )
    .await;
    // The cancel call gives up after its deadline; the message comes back and its booking call
    // (counted, unlike cancel calls) meets the outage too.
    h.wait_partner(event.order_id, "requests", 2, Duration::from_secs(20))
        .await;
    assert_eq!(
        h.partner_count(event.order_id, "shipments_cancelled").await,
        0
    );

    // The partner is back: a redelivery books again with the same key, gets the same
    // shipment, and cancels it.
    h.put_faults(&json!({})).await;
    h.wait_partner(
        event.order_id,
        "shipments_cancelled",
        1,
        Duration::from_secs(20),
    )
    .await;
    h.wait_idle().await;

    assert_eq!(h.partner_shipments(event.order_id).await, 1, "one shipment");
    assert_eq!(h.status(event.order_id).await, "paid");
    assert_eq!(h.count("SELECT count(*) FROM shipments").await, 0);
    assert_eq!(h.emitted("shipment.created").await, 0);
    assert_eq!(h.emitted("shipment.failed").await, 0);
    assert_eq!(
        h.count("SELECT count(*) FROM inbox WHERE consumer = 'shipping-cancel'")
            .await,
        0,
        "the mark is gone with the cancellation"
    );
    assert_eq!(h.dlq_depth().await, 0);
}

#[tokio::test]
async fn an_order_cancelled_before_its_payment_event_is_handled_gets_nothing_booked() {
    let h = harness_with(Faults::default(), &settings()).await;
    let event = h.paid_order().await;
    assert_eq!(
        h.cancel(event.order_id).await,
        Cancellation::RefundRequested
    );
    h.send(&[&event]).await;
    h.wait_for(
        "the event handled",
        "SELECT count(*) FROM inbox WHERE consumer = 'shipping'",
        1,
        Duration::from_secs(20),
    )
    .await;
    h.wait_idle().await;

    assert_eq!(
        h.partner_count(event.order_id, "requests").await,
        0,
        "the partner was not called"
    );
    assert_eq!(h.partner_shipments(event.order_id).await, 0);
    assert_eq!(h.status(event.order_id).await, "paid");
    assert_eq!(h.emitted("shipment.created").await, 0);
    assert_eq!(h.emitted("shipment.failed").await, 0);
}
