use serde_json::Value;

use crate::helpers::{assert_error, order_body, spawn_app, spawn_app_with};

#[tokio::test]
async fn liveness_and_readiness_answer_ok_when_every_dependency_is_up() {
    let app = spawn_app().await;
    let shopper = app.shopper();

    assert_eq!(shopper.get("/healthz").await.status().as_u16(), 200);
    let ready = reqwest::get(format!("{}/readyz", app.ops_address))
        .await
        .unwrap();
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

#[tokio::test]
async fn the_web_server_refuses_to_start_without_a_link_secret_of_32_bytes() {
    for secret in ["", "thirty-one bytes are not enough"] {
        let settings = testkit::test_settings(&[
            ("APP__SHOP__LINK_SECRET", secret),
            ("APP__HTTP__ADDR", "127.0.0.1:0"),
        ]);

        let error = match web_server::Application::build(settings).await {
            Ok(_) => panic!("started with the link secret {secret:?}"),
            Err(error) => format!("{error:#}"),
        };

        assert!(error.contains("shop.link_secret"), "{error}");
        assert!(error.contains("APP__SHOP__LINK_SECRET"), "{error}");
    }
}

/// A pooled connection that PostgreSQL ended (as a restart ends them all) while it sat idle in
/// the pool costs at most the request that takes it next, answered `503 service_unavailable`
/// (the shopper may retry), never a `500`; the pool replaces it and the next request succeeds.
/// The connection was used within the pool's `test_idle_ms`, so it is handed out untested.
#[tokio::test]
async fn a_pooled_connection_ended_by_the_database_costs_at_most_one_request_a_503() {
    let app = spawn_app_with(
        &[
            ("APP__DATABASE__MAX_CONNECTIONS", "1"),
            ("APP__DATABASE__TEST_IDLE_MS", "60000"),
        ],
        |_| {},
    )
    .await;
    let mug = app.add_product(1450, 5).await;
    let shopper = app.shopper();
    assert_eq!(
        shopper.checkout(&order_body(&[(mug, 1)])).await.status(),
        201
    );

    let (observer, backend) = app.app_backend().await;
    let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1, 5000)")
        .bind(backend)
        .fetch_one(&observer)
        .await
        .unwrap();
    assert!(ended, "the app's connection is gone");

    let next = shopper.checkout(&order_body(&[(mug, 1)])).await;
    if next.status() != 201 {
        assert_error(next, 503, "service_unavailable").await;
    }
    assert_eq!(
        shopper.checkout(&order_body(&[(mug, 1)])).await.status(),
        201
    );
}
