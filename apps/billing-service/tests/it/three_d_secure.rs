//! A card that asks for 3-D Secure: the order waits for the shopper (stays `invoiced`, stock
//! held, payment `requires_action`), `payment.action_required` is emitted once and the message
//! is done; an order that expires meanwhile has its intent cancelled at Stripe, and one whose
//! shopper authenticated as it expired is refunded.

use std::time::Duration;

use domain::CancelReason;
use worker::Disposition;

use crate::helpers::{Harness, TOTAL, harness};

const CARD: &str = "pm_card_authenticationRequired";

/// Runs an invoiced 3-D Secure order's charge; returns its `invoice.generated` and its
/// PaymentIntent's id.
async fn waiting_order(h: &Harness) -> (domain::EventEnvelope, String) {
    let invoiced = h.invoiced_order(CARD).await;
    assert_eq!(
        h.process(&h.handler(), &invoiced).await,
        Disposition::Done,
        "handled, not retried or parked"
    );
    let (status, intent, _, _) = h.payment(invoiced.order_id).await.expect("payment row");
    assert_eq!(status, "requires_action");
    (invoiced, intent.expect("the intent is recorded"))
}

/// The sweeper's expiry of every unpaid order, as the relay runs it.
async fn expire_now(h: &Harness) -> Vec<uuid::Uuid> {
    orders::expiry::expire_due(&h.pool, Duration::ZERO, 100)
        .await
        .expect("expiry")
}

#[tokio::test]
async fn a_card_that_asks_for_3d_secure_leaves_the_order_waiting_and_asks_the_shopper_once() {
    let h = harness().await;
    let before = h.stock().await;

    let (invoiced, intent_id) = waiting_order(&h).await;
    let order_id = invoiced.order_id;

    assert_eq!(h.status(order_id).await, "invoiced");
    assert_eq!(h.stock().await, before - 2, "the stock stays held");
    let asked = h.emitted(order_id, "payment.action_required").await;
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0]["payment_intent_id"], intent_id.as_str());
    assert_eq!(asked[0]["amount_minor"], TOTAL);
    assert_eq!(asked[0]["currency"], "EUR");
    assert!(
        asked[0].get("client_secret").is_none(),
        "no secret in the event"
    );
    assert!(h.emitted(order_id, "payment.failed").await.is_empty());
    let intents = h.intents(order_id).await;
    assert_eq!(intents.len(), 1, "{intents:#?}");
    assert_eq!(intents[0]["status"], "requires_action");
    let timeline = h
        .count(&format!(
            "SELECT count(*) FROM order_timeline WHERE order_id = '{order_id}'
             AND event_type = 'payment.action_required'"
        ))
        .await;
    assert_eq!(timeline, 1, "one step on the order's timeline");

    // Redelivered: the inbox answers; and should the inbox miss it, the payment row does.
    assert_eq!(
        h.process(&h.handler(), &invoiced).await,
        Disposition::Duplicate
    );
    h.forget_handled(&invoiced).await;
    assert_eq!(h.process(&h.handler(), &invoiced).await, Disposition::Done);
    assert_eq!(
        h.emitted(order_id, "payment.action_required").await.len(),
        1
    );
    assert_eq!(h.intents(order_id).await.len(), 1, "no second intent");
    assert_eq!(h.status(order_id).await, "invoiced");
}

#[tokio::test]
async fn a_3d_secure_payment_the_shopper_completes_later_is_read_as_paid_by_a_redelivered_charge() {
    let h = harness().await;
    let (invoiced, intent_id) = waiting_order(&h).await;
    h.stripe
        .authenticate(&intent_id, true)
        .await
        .expect("authenticated");

    h.forget_handled(&invoiced).await;
    assert_eq!(h.process(&h.handler(), &invoiced).await, Disposition::Done);

    assert_eq!(h.status(invoiced.order_id).await, "paid");
    assert_eq!(
        h.emitted(invoiced.order_id, "payment.succeeded")
            .await
            .len(),
        1
    );
    assert_eq!(h.intents(invoiced.order_id).await.len(), 1, "charged once");
}

#[tokio::test]
async fn an_order_that_expires_waiting_for_3d_secure_has_its_intent_cancelled_at_stripe() {
    let h = harness().await;
    let before = h.stock().await;
    let (invoiced, intent_id) = waiting_order(&h).await;
    let order_id = invoiced.order_id;

    assert_eq!(expire_now(&h).await, vec![order_id]);
    let cancelled = h.cancellation(order_id).await;
    assert_eq!(
        cancelled.payload["reason"],
        serde_json::json!(CancelReason::Expired)
    );
    assert_eq!(h.process(&h.handler(), &cancelled).await, Disposition::Done);

    assert_eq!(h.status(order_id).await, "cancelled");
    assert_eq!(h.stock().await, before, "the stock is back");
    let intent = h.stripe.payment_intent(&intent_id).await.expect("intent");
    assert_eq!(intent["status"], "canceled", "nobody can complete it now");
    let (status, _, _, refund) = h.payment(order_id).await.expect("payment");
    assert_eq!((status.as_str(), refund), ("cancelled", None));
    assert!(
        h.stripe.authenticate(&intent_id, true).await.is_err(),
        "the test bank refuses a cancelled intent"
    );
}

#[tokio::test]
async fn a_3d_secure_payment_completed_as_the_order_expired_is_refunded_once() {
    let h = harness().await;
    let (invoiced, intent_id) = waiting_order(&h).await;
    let order_id = invoiced.order_id;
    assert_eq!(expire_now(&h).await, vec![order_id]);
    // The shopper completes the authentication before billing settles the cancellation.
    h.stripe
        .authenticate(&intent_id, true)
        .await
        .expect("authenticated");

    let cancelled = h.cancellation(order_id).await;
    assert_eq!(h.process(&h.handler(), &cancelled).await, Disposition::Done);
    h.forget_handled(&cancelled).await;
    assert_eq!(h.process(&h.handler(), &cancelled).await, Disposition::Done);

    assert_eq!(h.status(order_id).await, "cancelled");
    assert_eq!(h.refunds(&intent_id).await.len(), 1, "refunded once");
    let (status, _, _, _) = h.payment(order_id).await.expect("payment");
    assert_eq!(status, "refunded");
}
