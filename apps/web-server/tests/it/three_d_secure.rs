//! The order page's 3-D Secure step against a private fake Stripe: the order says its payment
//! waits for the shopper, the client secret goes to its shopper only, and the shopper's "I have
//! confirmed" call and Stripe's webhook agree on the end whichever comes first.

use reqwest::Response;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use testkit::stripe::FakeStripe;
use uuid::Uuid;
use web_server::signature;

use crate::helpers::{Shopper, TestApp, assert_error, order_body, spawn_app_with};

/// A web-server over a fake Stripe, and an order of its shopper waiting for 3-D Secure.
struct Waiting {
    app: TestApp,
    stripe: FakeStripe,
    shopper: Shopper,
    product: i64,
    order_id: Uuid,
    intent_id: String,
}

/// An order placed by checkout, invoiced, whose PaymentIntent at the fake Stripe was confirmed
/// with the 3-D Secure card and recorded `requires_action`, as billing leaves it.
async fn waiting() -> Waiting {
    let stripe = FakeStripe::start().await.expect("fake Stripe");
    let api_base = stripe.api_base();
    let app = spawn_app_with(&[("APP__STRIPE__API_BASE", api_base.as_str())], |_| {}).await;
    let product = app.add_product(1000, 10).await;
    let shopper = app.shopper();
    let placed: Value = shopper
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
    let total = placed["total_minor"].as_i64().expect("total");
    let intent = stripe
        .three_d_secure_intent(&order_id.to_string(), total)
        .await
        .expect("intent");
    assert_eq!(intent["status"], "requires_action");
    let intent_id = intent["id"].as_str().expect("id").to_owned();
    sqlx::query("UPDATE orders SET status = 'invoiced' WHERE id = $1")
        .bind(order_id)
        .execute(&app.pool)
        .await
        .expect("invoiced");
    sqlx::query(
        "INSERT INTO payments (order_id, payment_intent_id, amount_minor, currency, status)
         VALUES ($1, $2, $3, 'EUR', 'requires_action')",
    )
    .bind(order_id)
    .bind(&intent_id)
    .bind(total)
    .execute(&app.pool)
    .await
    .expect("payment");
    Waiting {
        app,
        stripe,
        shopper,
        product,
        order_id,
        intent_id,
    }
}

impl Waiting {
    async fn order(&self) -> Value {
        let response = self
            .shopper
            .get(&format!("/api/orders/{}", self.order_id))
            .await;
        assert_eq!(response.status(), 200);
        response.json().await.expect("json")
    }

    async fn action(&self, shopper: &Shopper) -> Response {
        shopper
            .get(&format!("/api/orders/{}/payment/action", self.order_id))
            .await
    }

    /// "I have confirmed": what the check found and the order's status.
    async fn check(&self) -> (String, String) {
        let response = self
            .shopper
            .post(&format!("/api/orders/{}/payment/check", self.order_id))
            .await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("json");
        (
            body["checked"].as_str().expect("checked").to_owned(),
            body["status"].as_str().expect("status").to_owned(),
        )
    }

    /// Delivers Stripe's `event_type` event about the intent as the fake has it now, signed as
    /// Stripe signs it; returns what the webhook did.
    async fn webhook(&self, event_type: &str) -> String {
        let intent = self
            .stripe
            .payment_intent(&self.intent_id)
            .await
            .expect("intent");
        let event = json!({
            "id": format!("evt_{}", Uuid::new_v4().simple()),
            "object": "event",
            "type": event_type,
            "data": {"object": intent},
        });
        let secret = testkit::test_settings(&[]).stripe.webhook_secret;
        let body = event.to_string();
        let signature = signature::sign(
            body.as_bytes(),
            secret.expose_secret(),
            chrono::Utc::now().timestamp(),
        );
        let response = reqwest::Client::new()
            .post(format!("{}/api/stripe/webhook", self.app.address))
            .header("content-type", "application/json")
            .header("Stripe-Signature", signature)
            .body(body)
            .send()
            .await
            .expect("webhook");
        assert_eq!(response.status(), 200);
        let answer: Value = response.json().await.expect("json");
        answer["handled"].as_str().expect("handled").to_owned()
    }

    async fn status(&self) -> String {
        testkit::order_status(&self.app.pool, self.order_id).await
    }

    async fn emitted(&self, event_type: &str) -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM outbox WHERE aggregate_id = $1 AND event_type = $2",
        )
        .bind(self.order_id)
        .bind(event_type)
        .fetch_one(&self.app.pool)
        .await
        .expect("outbox")
    }
}

#[tokio::test]
async fn an_order_waiting_for_3d_secure_says_so_and_gives_the_client_secret_to_its_shopper_only() {
    let w = waiting().await;

    let order = w.order().await;
    assert_eq!(order["status"], "invoiced");
    assert_eq!(order["payment"]["status"], "requires_action");
    assert_eq!(order["payment_action"]["type"], "authenticate");
    assert_eq!(
        order["payment_action"]["check_url"],
        format!("/api/orders/{}/payment/check", w.order_id)
    );
    assert!(
        !order.to_string().contains("_secret_"),
        "no client secret in the order"
    );

    let response = w.action(&w.shopper).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["cache-control"].to_str().unwrap(),
        "no-store"
    );
    let action: Value = response.json().await.expect("json");
    let intent = w.stripe.payment_intent(&w.intent_id).await.expect("intent");
    assert_eq!(action["payment_intent_id"], w.intent_id.as_str());
    assert_eq!(action["client_secret"], intent["client_secret"]);
    assert_eq!(
        action["redirect_url"],
        format!("{}/_test_bank/{}", w.stripe.api_base(), w.intent_id)
    );

    let stranger = w.app.shopper();
    assert_error(w.action(&stranger).await, 404, "order_not_found").await;
    let stranger_check = stranger
        .post(&format!("/api/orders/{}/payment/check", w.order_id))
        .await;
    assert_error(stranger_check, 404, "order_not_found").await;

    assert_eq!(
        w.check().await,
        ("still_waiting".to_owned(), "invoiced".to_owned())
    );
}

#[tokio::test]
async fn the_shoppers_check_after_3d_secure_pays_the_order_and_the_later_webhook_changes_nothing() {
    let w = waiting().await;
    w.stripe
        .authenticate(&w.intent_id, true)
        .await
        .expect("authenticated");

    assert_eq!(w.check().await, ("moved".to_owned(), "paid".to_owned()));
    assert_eq!(
        w.webhook("payment_intent.succeeded").await,
        "alreadyapplied"
    );
    assert_eq!(
        w.check().await,
        ("not_waiting".to_owned(), "paid".to_owned())
    );

    assert_eq!(w.status().await, "paid");
    assert_eq!(w.emitted("payment.succeeded").await, 1);
    assert_eq!(w.order().await["payment_action"], Value::Null);
    assert_error(
        w.action(&w.shopper).await,
        409,
        "payment_action_not_required",
    )
    .await;
}

#[tokio::test]
async fn the_webhook_of_a_failed_3d_secure_fails_the_order_first_and_the_shoppers_check_agrees() {
    let w = waiting().await;
    assert_eq!(w.app.stock(w.product).await, 8);
    w.stripe
        .authenticate(&w.intent_id, false)
        .await
        .expect("refused");

    assert_eq!(w.webhook("payment_intent.payment_failed").await, "applied");
    assert_eq!(
        w.check().await,
        ("not_waiting".to_owned(), "payment_failed".to_owned())
    );

    assert_eq!(w.status().await, "payment_failed");
    assert_eq!(w.app.stock(w.product).await, 10, "the stock is back");
    assert_eq!(w.emitted("payment.failed").await, 1);
    let order = w.order().await;
    assert_eq!(
        order["payment"]["failure_reason"],
        "The provided PaymentMethod has failed authentication."
    );
}

#[tokio::test]
async fn the_shoppers_check_of_a_failed_3d_secure_fails_the_order_first_and_the_webhook_agrees() {
    let w = waiting().await;
    w.stripe
        .authenticate(&w.intent_id, false)
        .await
        .expect("refused");

    assert_eq!(
        w.check().await,
        ("moved".to_owned(), "payment_failed".to_owned())
    );
    assert_eq!(
        w.webhook("payment_intent.payment_failed").await,
        "alreadyapplied"
    );

    assert_eq!(w.app.stock(w.product).await, 10, "the stock is back once");
    assert_eq!(w.emitted("payment.failed").await, 1);
}
