//! Payments Stripe refuses end the order (`payment_failed`, stock back, `payment.failed` with a
//! reason in plain words) instead of being retried and parked; a key Stripe refuses does not.

use billing_service::refusal;
use worker::Disposition;

use crate::helpers::{Harness, TOTAL, harness};

/// Runs the order's `invoice.generated` as the worker would and checks that the payment failed
/// for `reason` with everything put back; returns the order's PaymentIntents at the fake.
async fn assert_payment_failed(
    h: &Harness,
    payment_method: &str,
    total_minor: i64,
    reason: &str,
) -> Vec<serde_json::Value> {
    let before = h.stock().await;
    let invoiced = h.invoiced_order_of(payment_method, total_minor).await;
    let order_id = invoiced.order_id;
    assert_eq!(h.stock().await, before - 2, "the order reserved its stock");

    let decided = h.process(&h.handler(), &invoiced).await;

    assert_eq!(decided, Disposition::Done, "handled, not retried or parked");
    assert_eq!(h.status(order_id).await, "payment_failed");
    assert_eq!(h.stock().await, before, "the stock is back");
    let failed = h.emitted(order_id, "payment.failed").await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["reason"], reason);
    assert_eq!(failed[0]["amount_minor"], total_minor);
    assert!(h.emitted(order_id, "payment.succeeded").await.is_empty());
    let (status, _, failure_reason, _) = h.payment(order_id).await.expect("payment row");
    assert_eq!(
        (status.as_str(), failure_reason.as_deref()),
        ("failed", Some(reason))
    );
    h.intents(order_id).await
}

#[tokio::test]
async fn a_payment_method_stripe_does_not_know_fails_the_order_with_a_plain_reason() {
    let h = harness().await;

    let intents = assert_payment_failed(
        &h,
        "pm_does_not_exist",
        TOTAL,
        refusal::PAYMENT_METHOD_INVALID,
    )
    .await;

    assert!(intents.is_empty(), "Stripe created nothing: {intents:#?}");
}

#[tokio::test]
async fn an_amount_stripe_refuses_fails_the_order_with_a_plain_reason() {
    let h = harness().await;

    let intents =
        assert_payment_failed(&h, "pm_card_visa", 100_000_000, refusal::AMOUNT_REFUSED).await;

    assert!(intents.is_empty(), "{intents:#?}");
}

#[tokio::test]
async fn a_declined_card_gives_the_shopper_stripes_message() {
    let h = harness().await;

    let intents = assert_payment_failed(
        &h,
        "pm_card_chargeDeclined",
        TOTAL,
        "Your card was declined.",
    )
    .await;

    assert_eq!(intents.len(), 1);
    assert_eq!(intents[0]["status"], "requires_payment_method");
}

#[tokio::test]
async fn a_secret_key_stripe_refuses_is_retried_and_never_fails_the_order() {
    let h = harness().await;
    let before = h.stock().await;
    let invoiced = h.invoiced_order("pm_card_visa").await;

    let decided = h
        .process(&h.handler_with_key("rk_revoked_key"), &invoiced)
        .await;

    assert!(
        matches!(&decided, Disposition::Retry { reason, .. } if reason.contains("API key")),
        "{decided:?}"
    );
    assert_eq!(h.status(invoiced.order_id).await, "invoiced");
    assert_eq!(h.stock().await, before - 2, "still reserved");
    assert!(
        h.emitted(invoiced.order_id, "payment.failed")
            .await
            .is_empty()
    );

    // Once the operator fixed the key, the redelivery charges the order.
    assert_eq!(h.process(&h.handler(), &invoiced).await, Disposition::Done);
    assert_eq!(h.status(invoiced.order_id).await, "paid");
    assert_eq!(h.intents(invoiced.order_id).await.len(), 1);
}
