//! The charge and a shopper's cancellation started at the same moment on the same order, many
//! times: whoever gets the order first, no money stays taken for an order that did not go on.

use std::{collections::BTreeMap, time::Duration};

use billing_service::BillingHandler;
use orders::Cancellation;
use uuid::Uuid;
use worker::Disposition;

use crate::helpers::{Harness, harness};

const RACES: u32 = 60;

/// One race on a fresh order: `invoice.generated` handled as the worker does and the shopper's
/// cancellation, each in its own transaction, started together (or one a few milliseconds
/// ahead, by turns, so that both orders of arrival are sure to happen); then the cancellation's
/// `order.cancelled` handled. Returns the order and how the cancellation went.
async fn race(h: &Harness, handler: &BillingHandler, round: u32) -> (Uuid, Cancellation) {
    let invoiced = h.invoiced_order("pm_card_visa").await;
    let order_id = invoiced.order_id;
    let head_start = Duration::from_millis(5);
    let (charge_delay, cancel_delay) = match round % 3 {
        0 => (Duration::ZERO, Duration::ZERO),
        1 => (Duration::ZERO, head_start),
        _ => (head_start, Duration::ZERO),
    };
    let charge = async {
        tokio::time::sleep(charge_delay).await;
        h.process(handler, &invoiced).await
    };
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
    let started = std::time::Instant::now();
    let mut ends: BTreeMap<String, u32> = BTreeMap::new();

    for round in 0..RACES {
        let (order_id, cancellation) = race(&h, &handler, round).await;
        let status = h.status(order_id).await;
        let expected = match cancellation {
            Cancellation::Cancelled => "cancelled",
            Cancellation::RefundRequested => "refunded",
            other => panic!("round {round}: {other:?}"),
        };
        assert_eq!(status, expected, "round {round}");
        assert_no_money_kept(&h, order_id).await;
        *ends.entry(status).or_default() += 1;
    }

    eprintln!("{RACES} races in {:?}: {ends:?}", started.elapsed());
    assert_eq!(h.stock().await, before, "every order put its stock back");
    assert!(
        ends.contains_key("cancelled") && ends.contains_key("refunded"),
        "both orders of arrival happened: {ends:?}"
    );
}
