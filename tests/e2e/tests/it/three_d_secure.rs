//! A card that asks for 3-D Secure through the whole pipeline (web-server with the fake
//! Stripe's webhooks, relay with its expiry sweeper, the four workers, the fake Stripe and its
//! test bank, the SMTP sink): the order waits for the shopper with one e-mail asking for the
//! confirmation; confirmed → shipped; failed → `payment_failed` with the stock back; abandoned
//! → cancelled at its expiry with the intent cancelled at Stripe. The webhook and the shopper's
//! "I have confirmed" call race as they do in production and agree.

use std::time::Duration;

use partner_sim::Faults;
use reqwest::Client;
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{Pipeline, Workers};

const WAIT: Duration = Duration::from_secs(60);
const CARD: &str = "pm_card_authenticationRequired";

async fn mails_of_kind(app: &Pipeline, order_id: Uuid, kind: &str) -> i64 {
    app.count(&format!(
        "SELECT count(*) FROM sent_emails WHERE order_id = '{order_id}' AND kind = '{kind}'"
    ))
    .await
}

async fn payment_status(app: &Pipeline, order_id: Uuid) -> Option<String> {
    sqlx::query_scalar("SELECT status FROM payments WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(&app.pool)
        .await
        .expect("payment")
}

fn stripe(app: &Pipeline) -> &testkit::stripe::FakeStripe {
    app.stripe.as_ref().expect("the fake Stripe runs")
}

/// The pipeline with the fake Stripe's webhooks going to the web-server, as in production.
async fn pipeline_with_webhooks(extra: &[(&str, &str)]) -> Pipeline {
    let app = Pipeline::start_configured(Workers::All, Faults::default(), extra).await;
    let url = format!("{}/api/stripe/webhook", app.address);
    stripe(&app)
        .register_webhook(&url, testkit::stripe::WEBHOOK_SECRET, &[])
        .await
        .expect("webhook registered");
    app
}

/// Checks out with the 3-D Secure card and waits until the order waits for the shopper, with
/// its e-mail sent; returns the order and what its page is given to authenticate.
async fn order_waiting(app: &Pipeline, shopper: &Client, product: i64) -> (Uuid, Value) {
    let order_id = app
        .checkout_as(shopper, "ada@example.com", &[(product, 2)], CARD, "GB")
        .await;
    testkit::eventually("the payment to wait for the shopper", WAIT, || async {
        payment_status(app, order_id).await.as_deref() == Some("requires_action")
    })
    .await
    .expect("requires_action");
    testkit::eventually("the e-mail asking for the confirmation", WAIT, || async {
        mails_of_kind(app, order_id, "payment_action_required").await == 1
    })
    .await
    .expect("e-mail");
    let order = get(shopper, &format!("{}/api/orders/{order_id}", app.address)).await;
    assert_eq!(order["status"], "invoiced");
    assert_eq!(order["payment_action"]["type"], "authenticate");
    let action = get(
        shopper,
        &format!("{}/api/orders/{order_id}/payment/action", app.address),
    )
    .await;
    (order_id, action)
}

async fn get(shopper: &Client, url: &str) -> Value {
    let response = shopper.get(url).send().await.expect("GET");
    assert_eq!(response.status(), 200, "{url}");
    response.json().await.expect("json")
}

/// The shopper answers the test bank's page the order page sent them to.
async fn answer_test_bank(action: &Value, outcome: &str) {
    let url = action["redirect_url"].as_str().expect("a test bank page");
    let page = reqwest::get(url).await.expect("test bank page");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("html").contains("Complete"));
    let answered = Client::new()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("outcome={outcome}"))
        .send()
        .await
        .expect("test bank answer");
    assert_eq!(answered.status(), 200);
}

/// "I have confirmed": what the check found.
async fn check(app: &Pipeline, shopper: &Client, order_id: Uuid) -> String {
    let response = shopper
        .post(format!(
            "{}/api/orders/{order_id}/payment/check",
            app.address
        ))
        .send()
        .await
        .expect("check");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    body["checked"].as_str().expect("checked").to_owned()
}

async fn stripe_events(app: &Pipeline, event_type: &str) -> i64 {
    app.count(&format!(
        "SELECT count(*) FROM stripe_events WHERE event_type = '{event_type}'"
    ))
    .await
}

async fn emitted(app: &Pipeline, order_id: Uuid, event_type: &str) -> i64 {
    app.count(&format!(
        "SELECT count(*) FROM order_timeline WHERE order_id = '{order_id}' AND event_type = '{event_type}'"
    ))
    .await
}

#[tokio::test]
async fn a_3d_secure_payment_confirmed_at_the_test_bank_is_shipped_after_one_email_asking_for_it() {
    let app = pipeline_with_webhooks(&[]).await;
    let product = app.add_product("E2E-3DS", "Enamel mug", 1450).await;
    let shopper = app.shopper();
    let (order_id, action) = order_waiting(&app, &shopper, product).await;
    assert!(
        action["client_secret"]
            .as_str()
            .is_some_and(|s| s.contains("_secret_"))
    );

    answer_test_bank(&action, "complete").await;
    let checked = check(&app, &shopper, order_id).await;

    assert!(
        ["moved", "already_done"].contains(&checked.as_str()),
        "{checked}"
    );
    app.wait_shipped(1, WAIT).await;
    testkit::eventually("Stripe's webhook", WAIT, || async {
        stripe_events(&app, "payment_intent.succeeded").await == 1
    })
    .await
    .expect("webhook");
    app.wait_queues_idle().await;
    assert_eq!(emitted(&app, order_id, "payment.succeeded").await, 1);
    assert_eq!(emitted(&app, order_id, "payment.action_required").await, 1);
    assert_eq!(
        mails_of_kind(&app, order_id, "payment_action_required").await,
        1
    );
    assert_eq!(mails_of_kind(&app, order_id, "payment_receipt").await, 1);
    let intents = stripe(&app)
        .payment_intents_for(&order_id.to_string())
        .await
        .expect("intents");
    assert_eq!(intents.len(), 1, "one PaymentIntent: {intents:#?}");
    assert_eq!(intents[0]["status"], "succeeded");
    let asking: Vec<_> = app
        .sink
        .messages()
        .expect("mails")
        .into_iter()
        .filter(|m| m.subject.starts_with("Please confirm your payment"))
        .collect();
    assert_eq!(asking.len(), 1);
    assert!(
        asking[0].text.contains(&format!("/orders/{order_id}?t=")),
        "{}",
        asking[0].text
    );
    assert!(!asking[0].text.contains("_secret_") && !asking[0].html.contains("_secret_"));
}

#[tokio::test]
async fn a_3d_secure_payment_failed_at_the_test_bank_ends_payment_failed_with_the_stock_back() {
    let app = pipeline_with_webhooks(&[]).await;
    let product = app.add_product("E2E-3DS", "Enamel mug", 1450).await;
    let stock_sql = format!("SELECT stock::bigint FROM products WHERE id = {product}");
    let before = app.count(&stock_sql).await;
    let shopper = app.shopper();
    let (order_id, action) = order_waiting(&app, &shopper, product).await;
    assert_eq!(
        app.count(&stock_sql).await,
        before - 2,
        "held while waiting"
    );

    answer_test_bank(&action, "fail").await;
    let checked = check(&app, &shopper, order_id).await;

    assert!(
        ["moved", "already_done"].contains(&checked.as_str()),
        "{checked}"
    );
    assert_eq!(app.status(order_id).await, "payment_failed");
    testkit::eventually("Stripe's webhook", WAIT, || async {
        stripe_events(&app, "payment_intent.payment_failed").await == 1
    })
    .await
    .expect("webhook");
    testkit::eventually("the payment_failed e-mail", WAIT, || async {
        mails_of_kind(&app, order_id, "payment_failed").await == 1
    })
    .await
    .expect("e-mail");
    app.wait_queues_idle().await;
    assert_eq!(app.count(&stock_sql).await, before, "the stock is back");
    assert_eq!(emitted(&app, order_id, "payment.failed").await, 1);
    assert_eq!(
        mails_of_kind(&app, order_id, "payment_action_required").await,
        1
    );
    for consumer in ["invoice", "billing", "shipping", "email"] {
        let depth = testkit::queue_depth(&app.sqs, app.queues.dlq(consumer))
            .await
            .expect("DLQ depth");
        assert_eq!(depth, 0, "{consumer} DLQ");
    }
}

#[tokio::test]
async fn a_3d_secure_payment_nobody_confirms_ends_at_the_orders_expiry_with_its_intent_cancelled() {
    // Long enough for billing to reach `requires_action` first (it takes well under a second).
    let app = pipeline_with_webhooks(&[
        ("APP__ORDERS__EXPIRE_AFTER_S", "20"),
        ("APP__ORDERS__SWEEP_INTERVAL_S", "1"),
    ])
    .await;
    let product = app.add_product("E2E-3DS", "Enamel mug", 1450).await;
    let stock_sql = format!("SELECT stock::bigint FROM products WHERE id = {product}");
    let before = app.count(&stock_sql).await;
    let shopper = app.shopper();
    let (order_id, action) = order_waiting(&app, &shopper, product).await;
    let intent_id = action["payment_intent_id"]
        .as_str()
        .expect("intent")
        .to_owned();

    app.wait_status("cancelled", 1, WAIT).await;
    testkit::eventually("the intent cancelled at Stripe", WAIT, || async {
        payment_status(&app, order_id).await.as_deref() == Some("cancelled")
    })
    .await
    .expect("payment cancelled");

    let reason: Option<String> =
        sqlx::query_scalar("SELECT cancel_reason FROM orders WHERE id = $1")
            .bind(order_id)
            .fetch_one(&app.pool)
            .await
            .expect("order");
    assert_eq!(reason.as_deref(), Some("expired"));
    assert_eq!(app.count(&stock_sql).await, before, "the stock is back");
    let intent = stripe(&app)
        .payment_intent(&intent_id)
        .await
        .expect("intent");
    assert_eq!(intent["status"], "canceled");
    assert!(
        stripe(&app).authenticate(&intent_id, true).await.is_err(),
        "too late to confirm"
    );
    assert_eq!(check(&app, &shopper, order_id).await, "not_waiting");
    testkit::eventually("the cancellation e-mail", WAIT, || async {
        mails_of_kind(&app, order_id, "cancelled").await == 1
    })
    .await
    .expect("e-mail");
    assert_eq!(
        mails_of_kind(&app, order_id, "payment_action_required").await,
        1
    );
    assert_eq!(emitted(&app, order_id, "payment.succeeded").await, 0);
}
