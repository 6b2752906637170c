//! The charge and a shopper's cancellation started on the same order, many times, the
//! cancellation now together with the charge, now up to two charges' time later, so that it
//! commits before the charge claims the attempt, while Stripe creates or confirms the intent, or
//! after the charge ended: whenever it lands, no money stays taken for an order that did not go
//! on, a charge is refunded exactly once, and the order ends as the cancellation said.

use std::{collections::BTreeMap, time::Duration};

use billing_service::BillingHandler;
use orders::Cancellation;
use uuid::Uuid;
use worker::Disposition;

use crate::helpers::{Harness, harness};

const RACES: u32 = 60;

/// One race on a fresh order: `invoice.generated` handled as the worker does and the shopper's
/// cancellation, each in its own transaction, the cancellation started `cancel_delay` after the
/// charge; then the cancellation's `order.cancelled` handled. Returns the order and how the
/// cancellation went.
async fn race(
    h: &Harness,
    handler: &BillingHandler,
    round: u32,
    cancel_delay: Duration,
) -> (Uuid, Cancellation) {
    let invoiced = h.invoiced_order("pm_card_visa").await;
    let order_id = invoiced.order_id;
    let charge = h.process(handler, &invoiced);
    let cancel = async {
        tokio::time::sleep(cancel_delay).await;
        h.cancel(order_id).await
    };
    let (charged, cancelled) = tokio::join!(charge, cancel);
    assert_eq!(charged, Disposition::Done, "round {round}");
    let cancelled = cancelled.expect("the order exists");
    let event = h.cancellation(order_id).await;
    assert_eq!(
        h.process(handler, &event).await,
        Disposition::Done,
        "round {round}"
    );
    (order_id, cancelled)
}

/// Where the cancellation landed, told by what is left at Stripe and in the database, with the
/// events each case must have emitted (and no other).
async fn landed(h: &Harness, order_id: Uuid, round: u32) -> &'static str {
    let intents = h.intents(order_id).await;
    let statuses: Vec<_> = intents.iter().map(|pi| pi["status"].clone()).collect();
    let payment = h.payment(order_id).await.map(|(status, ..)| status);
    let succeeded = h.emitted(order_id, "payment.succeeded").await.len();
    let refunded = h.emitted(order_id, "payment.refunded").await.len();
    let case = match (h.status(order_id).await.as_str(), payment.as_deref()) {
        ("cancelled", None) if intents.is_empty() => "before the charge",
        ("cancelled", Some("cancelled")) if statuses == ["canceled"] => "before the confirmation",
        ("cancelled", Some("refunded")) if statuses == ["succeeded"] => "during the confirmation",
        ("refunded", Some("refunded")) if statuses == ["succeeded"] => "after the charge",
        other => panic!("round {round}: {other:?} with intents {statuses:?}"),
    };
    let (want_succeeded, want_refunded) = match case {
        "after the charge" => (1, 1),
        "during the confirmation" => (0, 1),
        _ => (0, 0),
    };
    assert_eq!(
        (succeeded, refunded),
        (want_succeeded, want_refunded),
        "round {round}, {case}: payment.succeeded and payment.refunded emitted"
    );
    case
}

/// Every succeeded PaymentIntent of the order has exactly one refund, and no intent is left
/// that could still be confirmed.
async fn assert_no_money_kept(h: &Harness, order_id: Uuid) {
    for intent in h.intents(order_id).await {
        let id = intent["id"].as_str().expect("id");
        match intent["status"].as_str() {
            Some("succeeded") => assert_eq!(h.refunds(id).await.len(), 1, "{intent:#}"),
            Some("canceled" | "requires_payment_method") => {}
            other => panic!("order {order_id}: intent {id} left {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_cancellation_racing_the_charge_never_leaves_a_charge_without_a_refund() {
    let h = harness().await;
    let handler = h.handler();
    let before = h.stock().await;
    // How long one charge takes here, to spread the cancellations over it and past it.
    let warm_up = h.invoiced_order("pm_card_visa").await;
    let started = std::time::Instant::now();
    assert_eq!(h.process(&handler, &warm_up).await, Disposition::Done);
    let one_charge = started.elapsed();
    let before = before - 2;
    let started = std::time::Instant::now();
    let mut ends: BTreeMap<&str, u32> = BTreeMap::new();

    for round in 0..RACES {
        let cancel_delay = one_charge * (round % 7) / 3;
        let (order_id, cancellation) = race(&h, &handler, round, cancel_delay).await;
        let status = h.status(order_id).await;
        let expected = match cancellation {
            Cancellation::Cancelled => "cancelled",
            Cancellation::RefundRequested => "refunded",
            other => panic!("round {round}: {other:?}"),
        };
        assert_eq!(status, expected, "round {round}");
        assert_no_money_kept(&h, order_id).await;
        *ends.entry(landed(&h, order_id, round).await).or_default() += 1;
    }

    eprintln!(
        "{RACES} races in {:?} (one charge took {one_charge:?}): the cancellation landed {ends:?}",
        started.elapsed()
    );
    assert_eq!(h.stock().await, before, "every order put its stock back");
    assert_eq!(
        h.count("SELECT count(*) FROM payments WHERE claim_event IS NOT NULL")
            .await,
        0,
        "no claim left behind"
    );
    assert!(
        ends.contains_key("after the charge") && ends.len() >= 2,
        "the cancellation came both before the charge ended and after it: {ends:?}"
    );
}
