use serde_json::Value;

use crate::helpers::{assert_error, order_body, spawn_app};

#[tokio::test]
async fn the_shopper_sees_the_order_with_its_items_and_timeline() {
    let app = spawn_app().await;
    let mug = app.add_product(1450, 5).await;
    let shopper = app.shopper();
    let placed: Value = shopper
        .checkout(&order_body(&[(mug, 2)]))
        .await
        .json()
        .await
        .unwrap();
    let order_id = placed["order_id"].as_str().unwrap();

    let order: Value = shopper
        .get(&format!("/api/orders/{order_id}"))
        .await
        .json()
        .await
        .unwrap();

    assert_eq!(order["order_id"], order_id);
    assert_eq!(order["status"], "placed");
    assert_eq!(order["subtotal_minor"], 2900);
    assert_eq!(order["items"][0]["quantity"], 2);
    assert_eq!(order["items"][0]["line_total_minor"], 2900);
    assert_eq!(order["timeline"][0]["event_type"], "order.placed");
    let list: Value = shopper.get("/api/orders").await.json().await.unwrap();
    assert_eq!(list["orders"].as_array().unwrap().len(), 1);
    assert_eq!(list["orders"][0]["order_id"], order_id);
}

#[tokio::test]
async fn another_session_cannot_read_someone_elses_order() {
    let app = spawn_app().await;
    let mug = app.add_product(1450, 5).await;
    let placed: Value = app
        .shopper()
        .checkout(&order_body(&[(mug, 1)]))
        .await
        .json()
        .await
        .unwrap();
    let order_id = placed["order_id"].as_str().unwrap();
    let stranger = app.shopper();

    let response = stranger.get(&format!("/api/orders/{order_id}")).await;

    assert_error(response, 404, "order_not_found").await;
    let list: Value = stranger.get("/api/orders").await.json().await.unwrap();
    assert_eq!(list["orders"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn a_malformed_or_unknown_order_id_is_not_found() {
    let app = spawn_app().await;
    let shopper = app.shopper();

    assert_error(
        shopper.get("/api/orders/not-a-uuid").await,
        404,
        "order_not_found",
    )
    .await;
    assert_error(
        shopper
            .get(&format!("/api/orders/{}", uuid::Uuid::new_v4()))
            .await,
        404,
        "order_not_found",
    )
    .await;
}
