use reqwest::Response;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use uuid::Uuid;
use web_server::signature;

use crate::helpers::{TestApp, assert_error, order_body, spawn_app};

fn secret() -> String {
    testkit::test_settings(&[])
        .stripe
        .webhook_secret
        .expose_secret()
        .to_owned()
}

fn intent_event(event_id: &str, event_type: &str, order_id: Uuid, amount: i64) -> Value {
    json!({
        "id": event_id,
        "object": "event",
        "type": event_type,
        "data": {"object": {
            "id": "pi_test123",
            "object": "payment_intent",
            "amount": amount,
            "currency": "eur",
            "metadata": {"order_id": order_id.to_string()},
            "last_payment_error": {"message": "Your card was declined."}
        }}
    })
}

async fn post(app: &TestApp, body: &Value, signature: Option<String>) -> Response {
    let mut request = reqwest::Client::new()
        .post(format!("{}/api/stripe/webhook", app.address))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(signature) = signature {
        request = request.header("Stripe-Signature", signature);
    }
    request.send().await.expect("webhook request")
}

fn signed(body: &Value) -> Option<String> {
    Some(signature::sign(
        body.to_string().as_bytes(),
        &secret(),
        chrono::Utc::now().timestamp(),
    ))
}

/// An order placed through checkout and moved to `invoiced`, as the invoice worker would.
async fn invoiced_order(app: &TestApp, product: i64) -> Uuid {
    let placed: Value = app
        .shopper()
        .checkout(&order_body(&[(product, 2)]))
        .await
        .json()
        .await
        .expect("json");
    let order_id: Uuid = placed["order_id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    sqlx::query("UPDATE orders SET status = 'invoiced' WHERE id = $1")
        .bind(order_id)
        .execute(&app.pool)
        .await
        .expect("invoiced");
    order_id
}

async fn status(app: &TestApp, order_id: Uuid) -> String {
    sqlx::query_scalar("SELECT status FROM orders WHERE id = $1")
        .bind(order_id)
        .fetch_one(&app.pool)
        .await
        .expect("status")
}

async fn outbox_types(app: &TestApp, order_id: Uuid) -> Vec<String> {
    sqlx::query_scalar("SELECT event_type FROM outbox WHERE aggregate_id = $1 ORDER BY id")
        .bind(order_id)
        .fetch_all(&app.pool)
        .await
        .expect("outbox")
}

#[tokio::test]
async fn a_signed_payment_succeeded_event_pays_the_order_once_even_when_replayed() {
    let app = spawn_app().await;
    let product = app.add_product(1000, 10).await;
    let order_id = invoiced_order(&app, product).await;
    let event = intent_event("evt_ok_1", "payment_intent.succeeded", order_id, 2380);

    let first = post(&app, &event, signed(&event)).await;
    assert_eq!(first.status(), 200);
    let replay = post(&app, &event, signed(&event)).await;
    assert_eq!(replay.status(), 200);
    assert_eq!(
        replay.json::<Value>().await.expect("json")["handled"],
        "duplicate"
    );

    assert_eq!(status(&app, order_id).await, "paid");
    assert_eq!(
        outbox_types(&app, order_id).await,
        ["order.placed", "payment.succeeded"]
    );
    let payment: (String, String, i64) = sqlx::query_as(
        "SELECT payment_intent_id, status, amount_minor FROM payments WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_one(&app.pool)
    .await
    .expect("payment row");
    assert_eq!(
        payment,
        ("pi_test123".to_owned(), "succeeded".to_owned(), 2380)
    );
}

#[tokio::test]
async fn a_payment_failed_event_fails_the_order_and_puts_the_stock_back() {
    let app = spawn_app().await;
    let product = app.add_product(1000, 10).await;
    let order_id = invoiced_order(&app, product).await;
    assert_eq!(app.stock(product).await, 8);
    let event = intent_event(
        "evt_fail_1",
        "payment_intent.payment_failed",
        order_id,
        2380,
    );

    assert_eq!(post(&app, &event, signed(&event)).await.status(), 200);

    assert_eq!(status(&app, order_id).await, "payment_failed");
    assert_eq!(app.stock(product).await, 10);
    assert_eq!(
        outbox_types(&app, order_id).await,
        ["order.placed", "payment.failed"]
    );
}

#[tokio::test]
async fn an_event_arriving_after_the_order_moved_on_changes_nothing() {
    let app = spawn_app().await;
    let product = app.add_product(1000, 10).await;
    let order_id = invoiced_order(&app, product).await;
    let paid = intent_event("evt_a", "payment_intent.succeeded", order_id, 2380);
    assert_eq!(post(&app, &paid, signed(&paid)).await.status(), 200);

    let late = intent_event("evt_b", "payment_intent.payment_failed", order_id, 2380);
    let response = post(&app, &late, signed(&late)).await;
    assert_eq!(
        response.json::<Value>().await.expect("json")["handled"],
        "alreadyapplied"
    );
    assert_eq!(status(&app, order_id).await, "paid");
    assert_eq!(app.stock(product).await, 8);
    assert_eq!(
        outbox_types(&app, order_id).await,
        ["order.placed", "payment.succeeded"]
    );
}

#[tokio::test]
async fn a_missing_forged_or_stale_signature_gets_400_and_changes_nothing() {
    let app = spawn_app().await;
    let product = app.add_product(1000, 10).await;
    let order_id = invoiced_order(&app, product).await;
    let event = intent_event("evt_bad", "payment_intent.succeeded", order_id, 2380);
    let body = event.to_string();
    let now = chrono::Utc::now().timestamp();
    let attempts = [
        None,
        Some(signature::sign(body.as_bytes(), "whsec_forged", now)),
        Some(signature::sign(body.as_bytes(), &secret(), now - 301)),
        Some("t=1,v1=00".to_owned()),
    ];
    for header in attempts {
        assert_error(post(&app, &event, header).await, 400, "invalid_signature").await;
    }
    assert_eq!(status(&app, order_id).await, "invoiced");
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM stripe_events")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(
        seen, 0,
        "a refused event is not even recorded, so its genuine twin still counts"
    );
}
