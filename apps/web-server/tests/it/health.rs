use serde_json::Value;

use crate::helpers::{assert_error, spawn_app};

#[tokio::test]
async fn liveness_and_readiness_answer_ok_when_every_dependency_is_up() {
    let app = spawn_app().await;
    let shopper = app.shopper();

    assert_eq!(shopper.get("/healthz").await.status().as_u16(), 200);
    let ready = shopper.get("/readyz").await;
    assert_eq!(ready.status().as_u16(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["database"], "ok");
    assert_eq!(body["checks"]["redis"], "ok");
    assert_eq!(body["checks"]["sqs"], "ok");
}

#[tokio::test]
async fn unknown_api_paths_and_methods_get_json_errors() {
    let app = spawn_app().await;
    let shopper = app.shopper();

    assert_error(shopper.get("/api/nothing-here").await, 404, "not_found").await;
    let delete = shopper
        .client
        .delete(shopper.url("/api/products"))
        .send()
        .await
        .unwrap();
    assert_error(delete, 405, "method_not_allowed").await;
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;

    let response = app.shopper().get("/healthz").await;

    assert!(!response.headers()["x-request-id"].is_empty());
}
