//! Order links (`?t=`): a signed, expiring token opens one order — its page, its live timeline,
//! its invoice and its cancellation — from any session; a forged, altered, expired or other
//! order's token gets exactly the stranger's `404`.

use chrono::{Duration, Utc};
use domain::links;
use reqwest::Response;
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{TestApp, order_body, spawn_app};

const KEY: &[u8] = testkit::LINK_SECRET.as_bytes();

/// Places an order from a session of its own; returns its id.
async fn placed_elsewhere(app: &TestApp) -> Uuid {
    let product = app.add_product(1450, 10).await;
    let placed: Value = app
        .shopper()
        .checkout(&order_body(&[(product, 1)]))
        .await
        .json()
        .await
        .unwrap();
    placed["order_id"].as_str().unwrap().parse().unwrap()
}

/// A valid token for `order_id`, expiring in an hour.
fn token(order_id: Uuid) -> String {
    links::sign(KEY, order_id, Utc::now() + Duration::hours(1))
}

/// The invoice row the invoice worker would have written.
async fn invoice(app: &TestApp, order_id: Uuid) {
    sqlx::query(
        "INSERT INTO invoices (order_id, year, seq, number, issued_on, currency, subtotal_minor,
                               shipping_minor, tax_rate_bp, tax_minor, total_minor, pdf)
         VALUES ($1, 2026, 7, 'INV-2026-000007', current_date, 'EUR', 1450, 490, 1900, 369, 2309,
                 '\\x255044462d312e34'::bytea)",
    )
    .bind(order_id)
    .execute(&app.pool)
    .await
    .unwrap();
}

/// Status and body of an answer, for comparing two answers byte for byte.
async fn status_and_body(response: Response) -> (u16, String) {
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn an_order_link_opens_the_order_its_event_stream_and_its_invoice_in_another_session() {
    let app = spawn_app().await;
    let order_id = placed_elsewhere(&app).await;
    invoice(&app, order_id).await;
    let device = app.shopper();
    let t = token(order_id);

    let order = device.get(&format!("/api/orders/{order_id}?t={t}")).await;
    let events = device
        .get(&format!("/api/orders/{order_id}/events?t={t}"))
        .await;
    let pdf = device
        .get(&format!("/api/orders/{order_id}/invoice.pdf?t={t}"))
        .await;

    assert_eq!(order.status(), 200);
    let order: Value = order.json().await.unwrap();
    assert_eq!(order["order_id"], order_id.to_string());
    assert_eq!(events.status(), 200);
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    assert_eq!(pdf.status(), 200);
    assert_eq!(pdf.headers()["content-type"], "application/pdf");
    assert!(pdf.bytes().await.unwrap().starts_with(b"%PDF-"));
    let list: Value = device.get("/api/orders").await.json().await.unwrap();
    assert_eq!(
        list["orders"].as_array().unwrap().len(),
        0,
        "a link opens one order; it signs nobody in"
    );
}

#[tokio::test]
async fn a_forged_altered_expired_or_other_orders_token_gets_exactly_the_strangers_404() {
    let app = spawn_app().await;
    let order_id = placed_elsewhere(&app).await;
    let other_order = placed_elsewhere(&app).await;
    invoice(&app, order_id).await;
    let stranger = app.shopper();
    let good = token(order_id);
    let mut altered = good.clone().into_bytes();
    let last = altered.len() - 3;
    altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    let bad_tokens = [
        (
            "forged",
            links::sign(
                b"not the shop's secret, not at all!",
                order_id,
                Utc::now() + Duration::hours(1),
            ),
        ),
        ("altered", altered),
        (
            "expired",
            links::sign(KEY, order_id, Utc::now() - Duration::seconds(1)),
        ),
        ("another order's", token(other_order)),
        ("malformed", "x".to_owned()),
        ("empty", String::new()),
    ];

    for path in ["", "/events", "/invoice.pdf"] {
        let without =
            status_and_body(stranger.get(&format!("/api/orders/{order_id}{path}")).await).await;
        assert_eq!(without.0, 404);
        assert!(without.1.contains("order_not_found"), "{}", without.1);
        for (what, t) in &bad_tokens {
            let with = stranger
                .get(&format!("/api/orders/{order_id}{path}?t={t}"))
                .await;
            assert_eq!(
                status_and_body(with).await,
                without,
                "{what} token on {path:?}"
            );
        }
    }
    let cancel = status_and_body(
        stranger
            .post(&format!("/api/orders/{order_id}/cancel"))
            .await,
    )
    .await;
    for (what, t) in &bad_tokens {
        let with = stranger
            .post(&format!("/api/orders/{order_id}/cancel?t={t}"))
            .await;
        assert_eq!(
            status_and_body(with).await,
            cancel,
            "{what} token on cancel"
        );
    }
    assert_eq!(testkit::order_status(&app.pool, order_id).await, "placed");
}

#[tokio::test]
async fn an_order_link_cancels_its_order_while_it_is_cancellable() {
    let app = spawn_app().await;
    let order_id = placed_elsewhere(&app).await;
    let device = app.shopper();
    let t = token(order_id);

    let response = device
        .post(&format!("/api/orders/{order_id}/cancel?t={t}"))
        .await;

    assert_eq!(response.status(), 200);
    let order: Value = response.json().await.unwrap();
    assert_eq!(order["status"], "cancelled");
    assert_eq!(order["cancel_reason"], "shopper");
}

#[tokio::test]
async fn an_order_link_made_by_the_email_service_opens_the_order() {
    // The email-service signs with the event's time + 90 days: the same function, the same key.
    let app = spawn_app().await;
    let order_id = placed_elsewhere(&app).await;
    let t = links::sign(KEY, order_id, Utc::now() + Duration::days(90));
    let response = app
        .shopper()
        .get(&format!("/api/orders/{order_id}?t={t}"))
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn every_answer_tells_the_browser_to_send_no_referrer() {
    let app = spawn_app().await;
    let order_id = placed_elsewhere(&app).await;
    let shopper = app.shopper();
    for path in [
        "/".to_owned(),
        "/orders/x".to_owned(),
        "/api/products".to_owned(),
        format!("/api/orders/{order_id}?t={}", token(order_id)),
        "/api/nothing".to_owned(),
    ] {
        let response = shopper.get(&path).await;
        assert_eq!(
            response.headers()["referrer-policy"],
            "no-referrer",
            "{path}"
        );
    }
}
