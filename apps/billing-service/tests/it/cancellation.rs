//! `order.cancelled`: an unpaid order is never charged (an intent left behind is cancelled at
//! Stripe, or refunded if it went through after all), a paid one is refunded once; the claims
//! that keep a cancellation off a payment a charge is working on, and let a redelivered charge
//! go on with its own.

use billing_service::{
    cancellation::REFUND_REASON,
    gateway::{Charge, Confirmed, Intent},
};
use domain::{Currency, EventEnvelope};
use orders::{
    Cancellation,
    payments::{self, Applied, PaymentOutcome},
};
use worker::Disposition;

use crate::helpers::{Harness, TOTAL, harness};

/// What an attempt that died after creating the order's PaymentIntent leaves once its claim
/// ran out: the `pending` payments row (with the intent's id when `recorded`) and the
/// unconfirmed intent at Stripe.
async fn interrupted_attempt(h: &Harness, invoiced: &EventEnvelope, recorded: bool) -> Intent {
    let order_id = invoiced.order_id;
    let order = order_id.to_string();
    let charge = Charge {
        order_id: &order,
        amount_minor: TOTAL,
        currency: "EUR",
        payment_method: "pm_card_visa",
    };
    let intent = h
        .gateway()
        .create(&charge, &format!("pi-create-{}", invoiced.event_id))
        .await
        .expect("create");
    let recorded_id = recorded.then_some(intent.id.as_str());
    h.pending_payment(order_id, recorded_id, None).await;
    intent
}

#[tokio::test]
async fn an_invoiced_order_cancelled_before_billing_runs_is_never_charged() {
    let h = harness().await;
    let handler = h.handler();
    let before = h.stock().await;
    let invoiced = h.invoiced_order("pm_card_visa").await;
    let order_id = invoiced.order_id;

    assert_eq!(h.cancel(order_id).await, Some(Cancellation::Cancelled));
    assert_eq!(h.process(&handler, &invoiced).await, Disposition::Done);
    let cancelled = h.cancellation(order_id).await;
    assert_eq!(cancelled.payload["paid"], false);
    assert_eq!(h.process(&handler, &cancelled).await, Disposition::Done);

    assert_eq!(h.status(order_id).await, "cancelled");
    assert!(
        h.intents(order_id).await.is_empty(),
        "no PaymentIntent at all"
    );
    assert!(
        h.payment(order_id).await.is_none(),
        "no attempt was started"
    );
    assert_eq!(
        h.stock().await,
        before,
        "the cancellation released the stock"
    );
    assert!(h.emitted(order_id, "payment.succeeded").await.is_empty());
    assert!(h.emitted(order_id, "payment.refunded").await.is_empty());
}

#[tokio::test]
async fn a_cancelled_paid_order_is_refunded_once_even_when_the_cancellation_is_handled_twice() {
    let h = harness().await;
    let handler = h.handler();
    let before = h.stock().await;
    let invoiced = h.invoiced_order("pm_card_visa").await;
    let order_id = invoiced.order_id;
    assert_eq!(h.process(&handler, &invoiced).await, Disposition::Done);
    assert_eq!(h.status(order_id).await, "paid");

    assert_eq!(
        h.cancel(order_id).await,
        Some(Cancellation::RefundRequested)
    );
    assert_eq!(h.status(order_id).await, "paid", "paid until refunded");
    let cancelled = h.cancellation(order_id).await;
    assert_eq!(cancelled.payload["paid"], true);
    h.handle_alone(&handler, &cancelled).await;
    h.handle_alone(&handler, &cancelled).await;

    let intents = h.intents(order_id).await;
    assert_eq!(intents.len(), 1);
    let intent_id = intents[0]["id"].as_str().expect("id");
    let refunds = h.refunds(intent_id).await;
    assert_eq!(refunds.len(), 1, "{refunds:#?}");
    assert_eq!(refunds[0]["amount"].as_i64(), Some(TOTAL));
    assert_eq!(h.status(order_id).await, "refunded");
    assert_eq!(h.stock().await, before, "the refund released the stock");
    let refunded = h.emitted(order_id, "payment.refunded").await;
    assert_eq!(refunded.len(), 1, "{refunded:?}");
    assert_eq!(refunded[0]["reason"], REFUND_REASON);
    let (status, recorded_intent, _, refund_id) = h.payment(order_id).await.expect("payment");
    assert_eq!(
        (status.as_str(), recorded_intent.as_deref()),
        ("refunded", Some(intent_id))
    );
    assert_eq!(refund_id.as_deref(), refunds[0]["id"].as_str());
}

#[tokio::test]
async fn an_intent_that_went_through_for_an_order_cancelled_meanwhile_is_refunded_once() {
    let h = harness().await;
    let handler = h.handler();
    let before = h.stock().await;
    let invoiced = h.invoiced_order("pm_card_visa").await;
    let order_id = invoiced.order_id;
    // An attempt created and confirmed the intent, then died before recording anything more.
    let intent = interrupted_attempt(&h, &invoiced, false).await;
    let confirmed = h
        .gateway()
        .confirm(&intent.id, &format!("pi-confirm-{}", invoiced.event_id))
        .await
        .expect("confirm");
    assert_eq!(confirmed, Confirmed::Succeeded);
    assert_eq!(h.cancel(order_id).await, Some(Cancellation::Cancelled));

    // Stripe's webhook for the payment arrives late: it changes nothing.
    let late = PaymentOutcome::Succeeded {
        payment_intent_id: intent.id.clone(),
        amount_minor: TOTAL,
        currency: Currency::parse("EUR").expect("EUR"),
    };
    let mut tx = h.pool.begin().await.expect("tx");
    let applied = payments::apply_outcome(&mut tx, order_id, &late, "evt_late", "")
        .await
        .expect("apply");
    tx.commit().await.expect("commit");
    assert!(
        matches!(
            applied,
            Applied::AlreadyDone(domain::OrderStatus::Cancelled)
        ),
        "{applied:?}"
    );
    assert_eq!(h.status(order_id).await, "cancelled");

    let cancelled = h.cancellation(order_id).await;
    assert_eq!(h.process(&handler, &cancelled).await, Disposition::Done);
    h.handle_alone(&handler, &cancelled).await;

    let refunds = h.refunds(&intent.id).await;
    assert_eq!(refunds.len(), 1, "{refunds:#?}");
    assert_eq!(refunds[0]["amount"].as_i64(), Some(TOTAL));
    assert_eq!(h.status(order_id).await, "cancelled", "it stays cancelled");
    assert_eq!(
        h.stock().await,
        before,
        "released once, by the cancellation"
    );
    let (status, recorded_intent, _, _) = h.payment(order_id).await.expect("payment");
    assert_eq!(
        (status.as_str(), recorded_intent.as_deref()),
        ("refunded", Some(intent.id.as_str()))
    );
    let refunded = h.emitted(order_id, "payment.refunded").await;
    assert_eq!(refunded.len(), 1, "{refunded:?}");
    assert_eq!(refunded[0]["reason"], REFUND_REASON);
    assert!(h.emitted(order_id, "payment.succeeded").await.is_empty());
}

#[tokio::test]
async fn an_unconfirmed_intent_of_a_cancelled_order_is_cancelled_at_stripe_and_never_charged() {
    let h = harness().await;
    let handler = h.handler();
    let invoiced = h.invoiced_order("pm_card_visa").await;
    let order_id = invoiced.order_id;
    let intent = interrupted_attempt(&h, &invoiced, true).await;
    assert_eq!(h.cancel(order_id).await, Some(Cancellation::Cancelled));

    let cancelled = h.cancellation(order_id).await;
    assert_eq!(h.process(&handler, &cancelled).await, Disposition::Done);
    // The interrupted attempt's event comes back: the order is no longer waiting for it.
    assert_eq!(h.process(&handler, &invoiced).await, Disposition::Done);

    let intents = h.intents(order_id).await;
    assert_eq!(intents.len(), 1, "{intents:#?}");
    assert_eq!(intents[0]["id"], intent.id.as_str());
    assert_eq!(intents[0]["status"], "canceled");
    let (status, _, _, _) = h.payment(order_id).await.expect("payment");
    assert_eq!(status, "cancelled");
    assert_eq!(h.status(order_id).await, "cancelled");
    assert!(h.emitted(order_id, "payment.refunded").await.is_empty());
}

#[tokio::test]
async fn a_cancellation_waits_while_a_charge_holds_the_payments_claim_and_settles_it_after() {
    let h = harness().await;
    let handler = h.handler();
    let invoiced = h.invoiced_order("pm_card_visa").await;
    let order_id = invoiced.order_id;
    let intent = interrupted_attempt(&h, &invoiced, true).await;
    // The charge is still at work: its claim has not run out.
    sqlx::query("UPDATE payments SET claim_event = $2, claimed_until = now() + interval '30 s' WHERE order_id = $1")
        .bind(order_id)
        .bind(invoiced.event_id)
        .execute(&h.pool)
        .await
        .expect("claim");
    assert_eq!(h.cancel(order_id).await, Some(Cancellation::Cancelled));
    let cancelled = h.cancellation(order_id).await;

    let decided = h.process(&handler, &cancelled).await;

    assert!(
        matches!(&decided, Disposition::Retry { reason, .. } if reason.contains("claimed")),
        "{decided:?}"
    );
    assert_eq!(
        h.intents(order_id).await[0]["status"],
        "requires_confirmation"
    );

    // The charge's claim ran out (its handling was abandoned): the cancellation settles.
    sqlx::query("UPDATE payments SET claimed_until = now() - interval '1 s' WHERE order_id = $1")
        .bind(order_id)
        .execute(&h.pool)
        .await
        .expect("expire");
    assert_eq!(h.process(&handler, &cancelled).await, Disposition::Done);
    assert_eq!(h.intents(order_id).await[0]["id"], intent.id.as_str());
    assert_eq!(h.intents(order_id).await[0]["status"], "canceled");
    assert_eq!(
        h.count("SELECT count(*) FROM payments WHERE status = 'cancelled' AND claim_event IS NULL")
            .await,
        1,
        "settled, and the claim given up"
    );
}

#[tokio::test]
async fn a_redelivered_charge_takes_over_the_claim_its_killed_delivery_left() {
    let h = harness().await;
    let handler = h.handler();
    let invoiced = h.invoiced_order("pm_card_visa").await;
    let order_id = invoiced.order_id;
    // A delivery claimed the attempt, created the intent and was killed before recording it.
    let intent = interrupted_attempt(&h, &invoiced, false).await;
    sqlx::query("UPDATE payments SET claim_event = $2, claimed_until = now() + interval '30 s' WHERE order_id = $1")
        .bind(order_id)
        .bind(invoiced.event_id)
        .execute(&h.pool)
        .await
        .expect("claim");

    assert_eq!(h.process(&handler, &invoiced).await, Disposition::Done);

    assert_eq!(h.status(order_id).await, "paid");
    let intents = h.intents(order_id).await;
    assert_eq!(
        intents.len(),
        1,
        "the intent found by its metadata: {intents:#?}"
    );
    assert_eq!(intents[0]["id"], intent.id.as_str());
    assert_eq!(
        h.count("SELECT count(*) FROM payments WHERE status = 'succeeded' AND claim_event IS NULL")
            .await,
        1
    );
}
