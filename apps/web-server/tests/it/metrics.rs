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

#[tokio::test]
async fn a_taken_operations_port_leaves_the_shop_running_without_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port to hold");
    let addr = taken.local_addr().unwrap().to_string();
    let db_url = testkit::fresh_database().await.expect("database");
    let settings = testkit::test_settings(&[
        ("APP__DATABASE__URL", &db_url),
        ("APP__HTTP__ADDR", "127.0.0.1:0"),
        ("APP__HTTP__STATIC_DIR", "no-front-end-in-tests"),
        ("APP__METRICS__ADDR", &addr),
    ]);

    let app = web_server::Application::build(settings)
        .await
        .expect("the shop starts although its operations port is taken");

    assert_eq!(app.ops_addr().unwrap(), None);
    let shop = format!("http://{}", app.local_addr().unwrap());
    tokio::spawn(app.run(std::future::pending()));
    let products = reqwest::get(format!("{shop}/api/products")).await.unwrap();
    assert_eq!(products.status().as_u16(), 200);
    drop(taken);
}
