//! `POST /api/orders/{id}/cancel`: the shopper's cancellation, through the real database.

use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{Shopper, TestApp, assert_error, order_body, spawn_app};

/// Places an order of `quantity` units of a new product with 10 in stock; returns the order id
/// and the product.
async fn place(app: &TestApp, shopper: &Shopper, quantity: i64) -> (String, i64) {
    let product = app.add_product(1000, 10).await;
    let placed: Value = shopper
        .checkout(&order_body(&[(product, quantity)]))
        .await
        .json()
        .await
        .unwrap();
    (placed["order_id"].as_str().unwrap().to_owned(), product)
}

async fn set_status(app: &TestApp, order_id: &str, status: &str) {
    sqlx::query("UPDATE orders SET status = $2 WHERE id = $1")
        .bind(order_id.parse::<Uuid>().unwrap())
        .bind(status)
        .execute(&app.pool)
        .await
        .unwrap();
}

async fn cancelled_events(app: &TestApp, order_id: &str) -> Vec<Value> {
    sqlx::query_scalar(
        "SELECT envelope FROM outbox WHERE aggregate_id = $1 AND event_type = 'order.cancelled'",
    )
    .bind(order_id.parse::<Uuid>().unwrap())
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_placed_order_is_cancelled_with_its_stock_back_and_one_event() {
    let app = spawn_app().await;
    let shopper = app.shopper();
    let (order_id, product) = place(&app, &shopper, 3).await;
    assert_eq!(app.stock(product).await, 7);
    let before: Value = shopper
        .get(&format!("/api/orders/{order_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(before["cancellable"], true);

    let response = shopper
        .post(&format!("/api/orders/{order_id}/cancel"))
        .await;

    assert_eq!(response.status(), 200);
    let order: Value = response.json().await.unwrap();
    assert_eq!(order["status"], "cancelled");
    assert_eq!(order["cancel_reason"], "shopper");
    assert_eq!(order["cancellable"], false);
    assert_eq!(app.stock(product).await, 10);
    let events = cancelled_events(&app, &order_id).await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0]["payload"],
        serde_json::json!({"reason": "shopper", "paid": false})
    );
    let timeline = order["timeline"].as_array().unwrap();
    assert!(
        timeline
            .iter()
            .any(|e| e["event_type"] == "order.cancelled")
    );
}

#[tokio::test]
async fn cancelling_twice_has_one_effect() {
    let app = spawn_app().await;
    let shopper = app.shopper();
    let (order_id, product) = place(&app, &shopper, 2).await;
    set_status(&app, &order_id, "invoiced").await;

    let first = shopper
        .post(&format!("/api/orders/{order_id}/cancel"))
        .await;
    let second = shopper
        .post(&format!("/api/orders/{order_id}/cancel"))
        .await;

    assert_eq!(first.status(), 200);
    assert_eq!(second.status(), 200);
    let order: Value = second.json().await.unwrap();
    assert_eq!(order["status"], "cancelled");
    assert_eq!(app.stock(product).await, 10, "stock released once");
    assert_eq!(cancelled_events(&app, &order_id).await.len(), 1);
}

#[tokio::test]
async fn a_paid_order_stays_paid_until_billing_refunds_it_and_keeps_its_stock_until_then() {
    let app = spawn_app().await;
    let shopper = app.shopper();
    let (order_id, product) = place(&app, &shopper, 1).await;
    set_status(&app, &order_id, "paid").await;

    let response = shopper
        .post(&format!("/api/orders/{order_id}/cancel"))
        .await;

    let order: Value = response.json().await.unwrap();
    assert_eq!(order["status"], "paid");
    assert_eq!(order["cancel_reason"], "shopper");
    assert_eq!(order["cancellable"], false);
    assert_eq!(
        app.stock(product).await,
        9,
        "released with the refund, not before"
    );
    let events = cancelled_events(&app, &order_id).await;
    assert_eq!(events[0]["payload"]["paid"], true);
}

#[tokio::test]
async fn a_shipped_or_ended_order_cannot_be_cancelled() {
    let app = spawn_app().await;
    let shopper = app.shopper();
    for status in ["shipped", "delivered", "payment_failed", "refunded"] {
        let (order_id, _) = place(&app, &shopper, 1).await;
        set_status(&app, &order_id, status).await;

        let response = shopper
            .post(&format!("/api/orders/{order_id}/cancel"))
            .await;

        let body = assert_error(response, 409, "order_not_cancellable").await;
        assert!(body["message"].as_str().unwrap().len() > 10);
        assert!(
            cancelled_events(&app, &order_id).await.is_empty(),
            "{status}"
        );
    }
}

#[tokio::test]
async fn another_session_cannot_cancel_someone_elses_order() {
    let app = spawn_app().await;
    let (order_id, product) = place(&app, &app.shopper(), 1).await;
    let stranger = app.shopper();

    let response = stranger
        .post(&format!("/api/orders/{order_id}/cancel"))
        .await;

    assert_error(response, 404, "order_not_found").await;
    assert_error(
        stranger.post("/api/orders/not-a-uuid/cancel").await,
        404,
        "order_not_found",
    )
    .await;
    assert_eq!(app.stock(product).await, 9);
    assert!(cancelled_events(&app, &order_id).await.is_empty());
}
