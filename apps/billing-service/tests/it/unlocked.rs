//! Nothing is held while billing waits on Stripe. The fake Stripe holds one of billing's calls;
//! meanwhile the order's row can be locked at once (`NOWAIT`: it fails instead of waiting if
//! anyone holds it) and the shopper's cancellation commits, billing's pool has no connection
//! out and no transaction is open on the database. Once the call is released, the money ends
//! where it must: charged and refunded exactly once, or never charged.

use domain::OrderStatus;
use orders::Cancellation;
use worker::Disposition;

use crate::helpers::Harness;

const CREATE: &str = "^POST /v1/payment_intents$";
const CONFIRM: &str = "^POST /v1/payment_intents/[^/]+/confirm$";
const REFUND: &str = "^POST /v1/refunds$";

/// While a call is held: nothing of billing is out of its pool, no transaction is open, and the
/// shopper's cancellation takes the order's row lock at once and commits.
async fn cancel_while_stripe_works(
    h: &Harness,
    pool: &sqlx::PgPool,
    order_id: uuid::Uuid,
) -> Cancellation {
    crate::helpers::assert_all_back(pool).await;
    assert_eq!(h.open_transactions().await, 0, "no transaction open");
    h.cancel_at_once(order_id).await
}

/// Every succeeded PaymentIntent of the order, with how many refunds each has.
async fn charges(h: &Harness, order_id: uuid::Uuid) -> Vec<usize> {
    let mut charges = Vec::new();
    for intent in h.intents(order_id).await {
        if intent["status"] == "succeeded" {
            let id = intent["id"].as_str().expect("id");
            charges.push(h.refunds(id).await.len());
        }
    }
    charges
}

#[tokio::test]
async fn a_cancellation_commits_while_stripe_confirms_and_the_charge_is_refunded_once() {
    let h = crate::helpers::harness().await;
    let pool = h.pool_of(2).await;
    let handler = h.patient_handler(pool.clone());
    let before = h.stock().await;
    let invoiced = h.invoiced_order("pm_card_visa").await;
    let order_id = invoiced.order_id;

    let (charged, cancelled) = h
        .while_held(
            CONFIRM,
            1,
            h.process_on(&handler, &pool, &invoiced),
            cancel_while_stripe_works(&h, &pool, order_id),
        )
        .await;

    assert_eq!(charged, Disposition::Done);
    assert_eq!(cancelled, Cancellation::Cancelled);
    assert_eq!(h.status(order_id).await, "cancelled");
    assert_eq!(
        charges(&h, order_id).await,
        [0],
        "Stripe charged, nobody refunded yet"
    );
    assert!(h.emitted(order_id, "payment.succeeded").await.is_empty());

    let cancellation = h.cancellation(order_id).await;
    assert_eq!(h.process(&handler, &cancellation).await, Disposition::Done);
    h.forget_handled(&cancellation).await;
    assert_eq!(h.process(&handler, &cancellation).await, Disposition::Done);

    assert_eq!(charges(&h, order_id).await, [1], "refunded exactly once");
    assert_eq!(h.status(order_id).await, "cancelled");
    assert_eq!(h.emitted(order_id, "payment.refunded").await.len(), 1);
    let (status, _, _, refund) = h.payment(order_id).await.expect("payment");
    assert_eq!(status, "refunded");
    assert!(refund.is_some());
    assert_eq!(h.stock().await, before, "the stock is back, once");
}

#[tokio::test]
async fn a_cancellation_that_commits_while_stripe_creates_the_intent_stops_the_charge() {
    let h = crate::helpers::harness().await;
    let pool = h.pool_of(2).await;
    let handler = h.patient_handler(pool.clone());
    let invoiced = h.invoiced_order("pm_card_visa").await;
    let order_id = invoiced.order_id;

    let (charged, cancelled) = h
        .while_held(
            CREATE,
            1,
            h.process_on(&handler, &pool, &invoiced),
            cancel_while_stripe_works(&h, &pool, order_id),
        )
        .await;

    assert_eq!(charged, Disposition::Done);
    assert_eq!(cancelled, Cancellation::Cancelled);
    let intents = h.intents(order_id).await;
    assert_eq!(intents.len(), 1, "{intents:#?}");
    assert_eq!(
        intents[0]["status"], "requires_confirmation",
        "never confirmed"
    );

    let cancellation = h.cancellation(order_id).await;
    assert_eq!(h.process(&handler, &cancellation).await, Disposition::Done);

    let intents = h.intents(order_id).await;
    assert_eq!(
        intents[0]["status"], "canceled",
        "nothing can confirm it any more"
    );
    let (status, _, _, _) = h.payment(order_id).await.expect("payment");
    assert_eq!(status, "cancelled");
    assert!(h.emitted(order_id, "payment.succeeded").await.is_empty());
    assert!(h.emitted(order_id, "payment.refunded").await.is_empty());
}

#[tokio::test]
async fn a_cancellation_commits_while_stripe_refunds_a_failed_shipment_and_nothing_is_refunded_twice()
 {
    let h = crate::helpers::harness().await;
    let pool = h.pool_of(2).await;
    let handler = h.patient_handler(pool.clone());
    let before = h.stock().await;
    let invoiced = h.invoiced_order("pm_card_visa").await;
    let order_id = invoiced.order_id;
    assert_eq!(h.process(&handler, &invoiced).await, Disposition::Done);
    let failed = h.shipment_failed(order_id);

    let (refunded, cancelled) = h
        .while_held(
            REFUND,
            1,
            h.process_on(&handler, &pool, &failed),
            cancel_while_stripe_works(&h, &pool, order_id),
        )
        .await;

    assert_eq!(refunded, Disposition::Done);
    assert_eq!(cancelled, Cancellation::RefundRequested, "it was paid");
    assert_eq!(h.status(order_id).await, OrderStatus::Refunded.as_str());
    let cancellation = h.cancellation(order_id).await;
    assert_eq!(h.process(&handler, &cancellation).await, Disposition::Done);

    assert_eq!(charges(&h, order_id).await, [1], "refunded exactly once");
    let refunds = h.emitted(order_id, "payment.refunded").await;
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    assert_eq!(refunds[0]["reason"], "undeliverable address");
    assert_eq!(h.stock().await, before);
}
