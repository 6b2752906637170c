//! `GET /metrics` on the operations listener: the checkout and order series move as orders are
//! placed; the shop's port does not serve them.
//!
//! Every test of this binary shares one recorder and checks out in parallel, so the checkout
//! series are compared before and after (they moved by at least this test's requests); the
//! orders gauge is set from this app's own database during the scrape, so it is exact.

use serde_json::json;
use telemetry::metrics::sample;
use web_server::metrics::{CHECKOUT_DURATION, CHECKOUT_REQUESTS_TOTAL, ORDERS};

use crate::helpers::{TestApp, assert_error, order_body, spawn_app};

async fn scrape(app: &TestApp) -> String {
    let response = reqwest::get(format!("{}/metrics", app.ops_address))
        .await
        .expect("GET /metrics");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    response.text().await.expect("body")
}

/// How far `name{labels}` moved from `before` to `after` (a missing series reads 0).
fn moved(before: &str, after: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(after, name, labels).unwrap_or(0.0) - sample(before, name, labels).unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_count_checkouts_by_outcome_time_them_and_count_orders_by_status() {
    let app = spawn_app().await;
    let mug = app.add_product(1450, 10).await;
    let shopper = app.shopper();
    let before = scrape(&app).await;

    for _ in 0..3 {
        let placed = shopper.checkout(&order_body(&[(mug, 1)])).await;
        assert_eq!(placed.status().as_u16(), 201);
    }
    let keyed = order_body(&[(mug, 1)]);
    for _ in 0..2 {
        let answer = shopper.checkout_with_key(&keyed, "metrics-key-1").await;
        assert_eq!(answer.status().as_u16(), 201);
    }
    let mut bad_email = order_body(&[(mug, 1)]);
    bad_email["customer"]["email"] = json!("not an address");
    assert_error(shopper.checkout(&bad_email).await, 422, "invalid_email").await;
    let too_many = shopper.checkout(&order_body(&[(mug, 100)])).await;
    assert_error(too_many, 409, "out_of_stock").await;

    let after = scrape(&app).await;
    let checkouts =
        |labels: &[(&str, &str)]| moved(&before, &after, CHECKOUT_REQUESTS_TOTAL, labels);
    assert!(checkouts(&[("outcome", "created")]) >= 4.0, "{after}");
    assert!(checkouts(&[("outcome", "replayed")]) >= 1.0, "{after}");
    assert!(
        checkouts(&[("outcome", "invalid"), ("code", "invalid_email")]) >= 1.0,
        "{after}"
    );
    assert!(checkouts(&[("outcome", "out_of_stock")]) >= 1.0, "{after}");
    let timed = moved(&before, &after, &format!("{CHECKOUT_DURATION}_count"), &[]);
    assert!(timed >= 7.0, "every checkout request is timed: {after}");
    assert_eq!(
        sample(&after, ORDERS, &[("status", "placed")]),
        Some(4.0),
        "{after}"
    );
    assert_eq!(
        sample(&after, ORDERS, &[("status", "shipped")]),
        Some(0.0),
        "{after}"
    );
}

#[tokio::test]
async fn metrics_and_readiness_are_served_on_the_operations_listener_only() {
    let app = spawn_app().await;
    let shopper = app.shopper();
    for path in ["/metrics", "/readyz"] {
        assert_error(shopper.get(path).await, 404, "not_found").await;
        let ops = reqwest::get(format!("{}{path}", app.ops_address))
            .await
            .expect("ops");
        assert_eq!(ops.status().as_u16(), 200, "{path}");
    }
    assert_eq!(shopper.get("/healthz").await.status().as_u16(), 200);
}
