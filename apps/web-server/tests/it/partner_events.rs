//! `POST /api/partner/events`: the partner's signed delivery notices.

use serde_json::{Value, json};
use uuid::Uuid;
use web_server::signature;

use crate::helpers::{TestApp, assert_error, order_body, spawn_app};

/// The callback secret the test settings use (the default).
const SECRET: &str = "partner_whsec_local";

/// A shipped order with partner shipment `shp_<order id>`; returns (order id, shipment id).
async fn shipped_order(app: &TestApp) -> (Uuid, String) {
    let product = app.add_product(1000, 5).await;
    let placed: Value = app
        .shopper()
        .checkout(&order_body(&[(product, 1)]))
        .await
        .json()
        .await
        .unwrap();
    let order_id: Uuid = placed["order_id"].as_str().unwrap().parse().unwrap();
    let shipment_id = format!("shp_{}", order_id.simple());
    sqlx::query("UPDATE orders SET status = 'shipped' WHERE id = $1")
        .bind(order_id)
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO shipments (order_id, partner_shipment_id, carrier, tracking_number)
         VALUES ($1, $2, 'ParcelNet', 'PN000000000001')",
    )
    .bind(order_id)
    .bind(&shipment_id)
    .execute(&app.pool)
    .await
    .unwrap();
    (order_id, shipment_id)
}

fn notice(event_id: &str, shipment_id: &str) -> String {
    json!({
        "id": event_id,
        "type": "shipment.delivered",
        "created_at": "2026-12-03T10:00:00Z",
        "shipment": {"id": shipment_id, "status": "delivered", "delivered_at": "2026-12-03T10:00:00Z"}
    })
    .to_string()
}

async fn post(app: &TestApp, body: &str, secret: &str) -> reqwest::Response {
    let header = signature::sign(body.as_bytes(), secret, chrono::Utc::now().timestamp());
    reqwest::Client::new()
        .post(format!("{}/api/partner/events", app.address))
        .header("Partner-Signature", header)
        .header("Content-Type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

async fn status(app: &TestApp, order_id: Uuid) -> String {
    sqlx::query_scalar("SELECT status FROM orders WHERE id = $1")
        .bind(order_id)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

async fn delivered_events(app: &TestApp, order_id: Uuid) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE aggregate_id = $1 AND event_type = 'shipment.delivered'",
    )
    .bind(order_id)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_delivery_notice_moves_a_shipped_order_to_delivered_once_even_when_sent_twice() {
    let app = spawn_app().await;
    let (order_id, shipment) = shipped_order(&app).await;
    let body = notice("evt_0001", &shipment);

    let first = post(&app, &body, SECRET).await;
    let again = post(&app, &body, SECRET).await;
    let other_id = post(&app, &notice("evt_0002", &shipment), SECRET).await;

    assert_eq!(first.status(), 200);
    assert_eq!(first.json::<Value>().await.unwrap()["handled"], "delivered");
    assert_eq!(again.json::<Value>().await.unwrap()["handled"], "duplicate");
    assert_eq!(
        other_id.json::<Value>().await.unwrap()["handled"],
        "already_delivered"
    );
    assert_eq!(status(&app, order_id).await, "delivered");
    assert_eq!(delivered_events(&app, order_id).await, 1);
    let delivered_at: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT delivered_at FROM shipments WHERE order_id = $1")
            .bind(order_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(delivered_at.is_some());
}

#[tokio::test]
async fn a_notice_with_a_forged_signature_changes_nothing() {
    let app = spawn_app().await;
    let (order_id, shipment) = shipped_order(&app).await;

    let response = post(&app, &notice("evt_0003", &shipment), "someone_elses_secret").await;

    assert_error(response, 400, "invalid_signature").await;
    assert_eq!(status(&app, order_id).await, "shipped");
    assert_eq!(delivered_events(&app, order_id).await, 0);
}

#[tokio::test]
async fn a_notice_that_overtakes_the_shipping_worker_is_refused_for_a_later_retry() {
    let app = spawn_app().await;
    let (order_id, shipment) = shipped_order(&app).await;
    sqlx::query("UPDATE orders SET status = 'paid' WHERE id = $1")
        .bind(order_id)
        .execute(&app.pool)
        .await
        .unwrap();
    let body = notice("evt_0004", &shipment);

    let early = post(&app, &body, SECRET).await;
    assert_error(early, 409, "shipment_not_recorded").await;
    sqlx::query("UPDATE orders SET status = 'shipped' WHERE id = $1")
        .bind(order_id)
        .execute(&app.pool)
        .await
        .unwrap();
    let retried = post(&app, &body, SECRET).await;

    assert_eq!(
        retried.json::<Value>().await.unwrap()["handled"],
        "delivered"
    );
    assert_eq!(status(&app, order_id).await, "delivered");
}
