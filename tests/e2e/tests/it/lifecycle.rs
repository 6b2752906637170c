use std::time::Duration;

use partner_sim::Faults;
use serde_json::{Value, json};
use testkit::stripe::WEBHOOK_SECRET;

use crate::helpers::{Pipeline, Workers};

const WAIT: Duration = Duration::from_secs(60);

fn subjects(app: &Pipeline) -> Vec<String> {
    let mut subjects: Vec<String> = app
        .sink
        .messages()
        .expect("mails")
        .into_iter()
        .map(|m| m.subject)
        .collect();
    subjects.sort();
    subjects
}

async fn timeline(app: &Pipeline, shopper: &reqwest::Client, order_id: uuid::Uuid) -> Value {
    shopper
        .get(format!("{}/api/orders/{order_id}", app.address))
        .send()
        .await
        .expect("order")
        .json()
        .await
        .expect("json")
}

#[tokio::test]
async fn a_visa_checkout_ends_delivered_with_one_charge_one_shipment_and_five_emails() {
    let app = Pipeline::start_with(Workers::All, Faults::default()).await;
    let mug = app.add_product("E2E-MUG", "Enamel mug", 1450).await;
    let shopper = app.shopper();
    let order_id = app.checkout(&shopper, "ada@example.com", &[(mug, 2)]).await;
    app.wait_status("delivered", 1, WAIT).await;
    app.wait_mails(5, WAIT).await;
    app.wait_queues_idle().await;

    let total: i64 = sqlx::query_scalar("SELECT total_minor FROM invoices")
        .fetch_one(&app.pool)
        .await
        .expect("invoice");
    let intents = app
        .stripe
        .as_ref()
        .expect("stripe")
        .payment_intents_for(&order_id.to_string())
        .await
        .expect("intents");
    assert_eq!(intents.len(), 1);
    assert_eq!(
        (intents[0]["status"].as_str(), intents[0]["amount"].as_i64()),
        (Some("succeeded"), Some(total))
    );
    assert_eq!(app.partner_shipments(order_id).await, 1);
    assert_eq!(
        app.sink.messages().expect("mails").len(),
        5,
        "{:?}",
        subjects(&app)
    );

    let reference = domain::order_reference(order_id);
    for mail in app.sink.messages().expect("mails") {
        for part in [&mail.subject, &mail.text, &mail.html] {
            assert!(
                part.contains(&reference),
                "{reference} in every e-mail: {mail:#?}"
            );
        }
    }

    let order = timeline(&app, &shopper, order_id).await;
    assert_eq!(order["status"], "delivered");
    assert_eq!(order["reference"], reference);
    assert!(order["shipment"]["delivered_at"].is_string(), "{order}");
    assert_eq!(order["payment"]["status"], "succeeded");
    assert_eq!(order["payment"]["amount_minor"], total);
    assert!(
        order["tracking_number"]
            .as_str()
            .is_some_and(|t| t.starts_with("PN")),
        "{order}"
    );
    let types: Vec<&str> = order["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter_map(|e| e["event_type"].as_str())
        .collect();
    let events: Vec<&str> = types
        .iter()
        .copied()
        .filter(|t| !t.starts_with("email."))
        .collect();
    assert_eq!(
        events,
        [
            "order.placed",
            "invoice.generated",
            "payment.succeeded",
            "shipment.created",
            "shipment.delivered"
        ]
    );
    assert_eq!(
        types.iter().filter(|t| **t == "email.sent").count(),
        5,
        "the e-mails are on the timeline"
    );
}

#[tokio::test]
async fn a_declined_card_ends_payment_failed_with_the_stock_back_and_no_shipment() {
    let app = Pipeline::start_with(Workers::All, Faults::default()).await;
    let mug = app.add_product("E2E-MUG", "Enamel mug", 1450).await;
    let stock_sql = format!("SELECT stock::bigint FROM products WHERE id = {mug}");
    let before = app.count(&stock_sql).await;
    let order_id = app
        .checkout_as(
            &app.shopper(),
            "ada@example.com",
            &[(mug, 3)],
            "pm_card_chargeDeclined",
            "GB",
        )
        .await;
    app.wait_status("payment_failed", 1, WAIT).await;
    app.wait_mails(3, WAIT).await;
    app.wait_queues_idle().await;

    assert_eq!(app.count(&stock_sql).await, before);
    assert_eq!(app.partner_shipments(order_id).await, 0);
    assert_eq!(
        app.count("SELECT count(*) FROM sent_emails WHERE kind = 'payment_failed'")
            .await,
        1
    );
    assert_eq!(
        app.sink.messages().expect("mails").len(),
        3,
        "{:?}",
        subjects(&app)
    );
}

#[tokio::test]
async fn an_undeliverable_address_is_refunded_with_the_stock_back_and_a_refund_email() {
    let app = Pipeline::start_with(Workers::All, Faults::default()).await;
    let mug = app.add_product("E2E-MUG", "Enamel mug", 1450).await;
    let stock_sql = format!("SELECT stock::bigint FROM products WHERE id = {mug}");
    let before = app.count(&stock_sql).await;
    let order_id = app
        .checkout_as(
            &app.shopper(),
            "ada@example.com",
            &[(mug, 1)],
            "pm_card_visa",
            "ZZ",
        )
        .await;
    app.wait_status("refunded", 1, WAIT).await;
    app.wait_mails(4, WAIT).await;
    app.wait_queues_idle().await;

    let stripe = app.stripe.as_ref().expect("stripe");
    let intents = stripe
        .payment_intents_for(&order_id.to_string())
        .await
        .expect("intents");
    assert_eq!(intents.len(), 1);
    let refunds = stripe
        .refunds_for_payment_intent(intents[0]["id"].as_str().expect("id"))
        .await
        .expect("refunds");
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0]["amount"], intents[0]["amount"]);
    assert_eq!(app.count(&stock_sql).await, before);
    assert_eq!(
        app.count("SELECT count(*) FROM sent_emails WHERE kind = 'refunded'")
            .await,
        1
    );
    assert_eq!(app.partner_shipments(order_id).await, 0);
}

#[tokio::test]
async fn with_a_flaky_partner_all_100_orders_are_shipped_once_each() {
    let faults = Faults {
        error_rate: 0.5,
        rate_limit_rate: 0.1,
        retry_after_s: 1,
        hang_rate: 0.05,
        hang_ms: 1_000,
        seed: Some(11),
        ..Faults::default()
    };
    let app = Pipeline::start_with(Workers::All, faults).await;
    let mug = app.add_product("E2E-MUG", "Enamel mug", 1450).await;
    let mut orders = Vec::new();
    for i in 0..100 {
        orders.push(
            app.checkout(&app.shopper(), &format!("s{i}@example.com"), &[(mug, 1)])
                .await,
        );
    }
    app.wait_shipped(100, Duration::from_secs(240)).await;
    for order_id in orders {
        assert_eq!(app.partner_shipments(order_id).await, 1, "order {order_id}");
    }
}

#[tokio::test]
async fn a_webhook_arriving_before_the_billing_worker_leaves_the_same_final_state() {
    let app = Pipeline::start_with(Workers::AllButBilling, Faults::default()).await;
    let mug = app.add_product("E2E-MUG", "Enamel mug", 1450).await;
    let order_id = app
        .checkout(&app.shopper(), "ada@example.com", &[(mug, 1)])
        .await;
    app.wait_status("invoiced", 1, WAIT).await;
    let total: i64 = sqlx::query_scalar("SELECT total_minor FROM invoices")
        .fetch_one(&app.pool)
        .await
        .expect("invoice");

    let event = json!({
        "id": "evt_early_1", "object": "event", "type": "payment_intent.succeeded",
        "data": {"object": {"id": "pi_from_webhook", "object": "payment_intent", "amount": total,
                             "currency": "eur", "metadata": {"order_id": order_id.to_string()}}}
    });
    let body = event.to_string();
    let signature = web_server::signature::sign(
        body.as_bytes(),
        WEBHOOK_SECRET,
        chrono::Utc::now().timestamp(),
    );
    let response = reqwest::Client::new()
        .post(format!("{}/api/stripe/webhook", app.address))
        .header("Stripe-Signature", signature)
        .body(body)
        .send()
        .await
        .expect("webhook");
    assert_eq!(response.status(), 200);
    app.wait_shipped(1, WAIT).await;

    app.start_billing().await;
    app.wait_queues_idle().await;
    assert_eq!(
        app.count("SELECT count(*) FROM orders WHERE status IN ('shipped', 'delivered')")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT count(*) FROM outbox WHERE event_type = 'payment.succeeded'")
            .await,
        1
    );
    let intents = app
        .stripe
        .as_ref()
        .expect("stripe")
        .payment_intents_for(&order_id.to_string())
        .await
        .expect("intents");
    assert!(
        intents.is_empty(),
        "the worker found the order paid and charged nothing: {intents:#?}"
    );
}
