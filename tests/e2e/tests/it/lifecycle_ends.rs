//! Every order finishes: the paths to an end that are not the happy one, through the whole
//! pipeline (web-server, relay with its expiry sweeper, the four workers, the fake Stripe, the
//! partner simulator and its delivery notices, the SMTP sink). See docs/LIFECYCLE.md.

use std::time::Duration;

use partner_sim::Faults;
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{Pipeline, Workers};

const WAIT: Duration = Duration::from_secs(60);

async fn dlq_depth(app: &Pipeline, consumer: &str) -> i64 {
    testkit::queue_depth(&app.sqs, app.queues.dlq(consumer))
        .await
        .expect("DLQ depth")
}

async fn cancel(app: &Pipeline, shopper: &reqwest::Client, order_id: Uuid) -> (u16, Value) {
    let response = shopper
        .post(format!("{}/api/orders/{order_id}/cancel", app.address))
        .send()
        .await
        .expect("cancel");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

async fn mails_of_kind(app: &Pipeline, order_id: Uuid, kind: &str) -> i64 {
    app.count(&format!(
        "SELECT count(*) FROM sent_emails WHERE order_id = '{order_id}' AND kind = '{kind}'"
    ))
    .await
}

#[tokio::test]
async fn an_unknown_payment_method_ends_payment_failed_with_the_stock_back_one_email_and_no_parked_message()
 {
    let app = Pipeline::start_with(Workers::All, Faults::default()).await;
    let mug = app.add_product("E2E-MUG", "Enamel mug", 1450).await;
    let stock_sql = format!("SELECT stock::bigint FROM products WHERE id = {mug}");
    let before = app.count(&stock_sql).await;
    let shopper = app.shopper();
    let order_id = app
        .checkout_as(
            &shopper,
            "ada@example.com",
            &[(mug, 2)],
            "pm_does_not_exist",
            "GB",
        )
        .await;

    app.wait_status("payment_failed", 1, WAIT).await;
    app.wait_queues_idle().await;

    assert_eq!(app.count(&stock_sql).await, before);
    assert_eq!(mails_of_kind(&app, order_id, "payment_failed").await, 1);
    for consumer in ["invoice", "billing", "shipping", "email"] {
        assert_eq!(dlq_depth(&app, consumer).await, 0, "{consumer} DLQ");
    }
    let order: Value = shopper
        .get(format!("{}/api/orders/{order_id}", app.address))
        .send()
        .await
        .expect("order")
        .json()
        .await
        .expect("json");
    let reason = order["payment"]["failure_reason"]
        .as_str()
        .unwrap_or_default();
    assert!(
        !reason.is_empty() && !reason.contains("pm_"),
        "a reason in plain words, without the payment method's id: {order}"
    );
}

#[tokio::test]
async fn a_shipped_order_is_delivered_once_with_its_email_even_when_the_partner_repeats_the_notice()
{
    let app = Pipeline::start_with(Workers::All, Faults::default()).await;
    let mug = app.add_product("E2E-MUG", "Enamel mug", 1450).await;
    let order_id = app
        .checkout(&app.shopper(), "ada@example.com", &[(mug, 1)])
        .await;
    app.wait_status("delivered", 1, WAIT).await;
    let shipment: String =
        sqlx::query_scalar("SELECT partner_shipment_id FROM shipments WHERE order_id = $1")
            .bind(order_id)
            .fetch_one(&app.pool)
            .await
            .expect("shipment");

    // The partner sends the same notice again (a lost 2xx, as far as it knows).
    let partner = app.partner.as_ref().expect("partner");
    let again = reqwest::Client::new()
        .post(format!("{partner}/v1/_sim/shipments/{shipment}/deliver"))
        .send()
        .await
        .expect("deliver again");
    assert_eq!(again.status(), 200);
    testkit::eventually("the repeated notice to be answered", WAIT, || async {
        let stats: Value = reqwest::get(format!("{partner}/v1/_sim/stats"))
            .await
            .expect("stats")
            .json()
            .await
            .expect("json");
        stats["callbacks_sent"].as_i64().unwrap_or(0) >= 2
    })
    .await
    .expect("answered");
    app.wait_queues_idle().await;

    let delivered = app
        .count(&format!(
            "SELECT count(*) FROM outbox WHERE aggregate_id = '{order_id}' AND event_type = 'shipment.delivered'"
        ))
        .await;
    assert_eq!(delivered, 1);
    assert_eq!(mails_of_kind(&app, order_id, "delivered").await, 1);
    assert_eq!(app.status(order_id).await, "delivered");
}

#[tokio::test]
async fn the_shopper_cancels_a_placed_an_invoiced_and_a_paid_order_and_each_settles() {
    // The partner is down, so a paid order waits for its shipment (and is never refunded for it).
    let outage = Faults {
        error_rate: 1.0,
        ..Faults::default()
    };
    let app = Pipeline::start_with(Workers::AllButBilling, outage).await;
    let mug = app.add_product("E2E-MUG", "Enamel mug", 1450).await;
    let stock_sql = format!("SELECT stock::bigint FROM products WHERE id = {mug}");
    let before = app.count(&stock_sql).await;
    let shopper = app.shopper();
    let invoiced = app.checkout(&shopper, "ada@example.com", &[(mug, 1)]).await;
    let paid = app.checkout(&shopper, "ada@example.com", &[(mug, 2)]).await;
    app.wait_status("invoiced", 2, WAIT).await;
    // Billing charges both; the cancellation of the first one is in before it runs.
    let (status, body) = cancel(&app, &shopper, invoiced).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("cancelled")));
    app.start_billing().await;
    app.wait_status("paid", 1, WAIT).await;
    let (status, body) = cancel(&app, &shopper, paid).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["cancel_reason"], "shopper");
    let placed = app.checkout(&shopper, "ada@example.com", &[(mug, 3)]).await;
    let (status, body) = cancel(&app, &shopper, placed).await;
    assert_eq!(status, 200, "{body}");

    app.wait_status("refunded", 1, WAIT).await;
    testkit::eventually("both unpaid orders cancelled", WAIT, || async {
        app.count("SELECT count(*) FROM orders WHERE status = 'cancelled'")
            .await
            == 2
    })
    .await
    .expect("cancelled");
    let (again, body) = cancel(&app, &shopper, paid).await;
    assert_eq!(
        (again, body["status"].as_str()),
        (200, Some("refunded")),
        "cancelling again changes nothing"
    );

    let stripe = app.stripe.as_ref().expect("stripe");
    for unpaid in [invoiced, placed] {
        let intents = stripe
            .payment_intents_for(&unpaid.to_string())
            .await
            .expect("intents");
        assert!(
            intents.iter().all(|pi| pi["status"] != "succeeded"),
            "no charge for a cancelled order: {intents:#?}"
        );
    }
    let intents = stripe
        .payment_intents_for(&paid.to_string())
        .await
        .expect("intents");
    assert_eq!(intents.len(), 1);
    let refunds = stripe
        .refunds_for_payment_intent(intents[0]["id"].as_str().expect("id"))
        .await
        .expect("refunds");
    assert_eq!(refunds.len(), 1, "exactly one refund");
    assert_eq!(app.count(&stock_sql).await, before, "every unit back");
    assert_eq!(app.partner_shipments(paid).await, 0);
    testkit::eventually("the cancellation e-mails", WAIT, || async {
        app.count("SELECT count(*) FROM sent_emails WHERE kind = 'cancelled'")
            .await
            == 3
    })
    .await
    .expect("e-mails");
}

#[tokio::test]
async fn an_order_not_paid_in_time_expires_with_its_stock_back_and_an_email() {
    let app = Pipeline::start_expiring(Duration::from_secs(2)).await;
    let mug = app.add_product("E2E-MUG", "Enamel mug", 1450).await;
    let stock_sql = format!("SELECT stock::bigint FROM products WHERE id = {mug}");
    let before = app.count(&stock_sql).await;
    let order_id = app
        .checkout(&app.shopper(), "ada@example.com", &[(mug, 4)])
        .await;

    app.wait_status("cancelled", 1, WAIT).await;

    let reason: Option<String> =
        sqlx::query_scalar("SELECT cancel_reason FROM orders WHERE id = $1")
            .bind(order_id)
            .fetch_one(&app.pool)
            .await
            .expect("order");
    assert_eq!(reason.as_deref(), Some("expired"));
    assert_eq!(app.count(&stock_sql).await, before);
    testkit::eventually("the expiry e-mail", WAIT, || async {
        mails_of_kind(&app, order_id, "cancelled").await == 1
    })
    .await
    .expect("e-mail");
}
