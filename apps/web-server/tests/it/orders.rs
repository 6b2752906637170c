use serde_json::Value;

use std::time::Duration;

use crate::helpers::{Shopper, TestApp, assert_error, order_body, spawn_app, spawn_app_with};

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

/// Reads one Server-Sent Event (`event:` and `data:` lines up to a blank line), skipping
/// keep-alive comments.
async fn next_sse(response: &mut reqwest::Response, buffer: &mut String) -> (String, Value) {
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
            };
            if let (Some(event), Some(data)) = (field("event:"), field("data:")) {
                return (event, serde_json::from_str(&data).expect("JSON data"));
            }
            continue;
        }
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), response.chunk())
            .await
            .expect("an event within 10 s")
            .expect("stream")
            .expect("stream open");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn the_event_stream_sends_the_order_and_then_each_change() {
    let app = spawn_app().await;
    let (shopper, order_id, _) = one_order(&app).await;

    let mut stream = shopper.get(&format!("/api/orders/{order_id}/events")).await;
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let mut buffer = String::new();
    let (event, first) = next_sse(&mut stream, &mut buffer).await;
    assert_eq!(
        (event.as_str(), first["status"].as_str()),
        ("order", Some("placed"))
    );

    sqlx::query("UPDATE orders SET status = 'invoiced' WHERE id = $1")
        .bind(order_id)
        .execute(&app.pool)
        .await
        .unwrap();
    let (_, changed) = next_sse(&mut stream, &mut buffer).await;
    assert_eq!(changed["status"], "invoiced");
    assert_eq!(changed["order_id"], order_id.to_string());
}

#[tokio::test]
async fn another_session_cannot_open_the_event_stream() {
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

    let response = app
        .shopper()
        .get(&format!("/api/orders/{order_id}/events"))
        .await;
    assert_error(response, 404, "order_not_found").await;
}

/// The order page reads one snapshot. A worker's commit that lands while a page is being read
/// (here the order's status and its payment, committed while the page's payment read waits on
/// the table) shows whole on the next page, never half on this one: read apart, this page
/// showed the order still `placed` next to its succeeded payment.
#[tokio::test]
async fn a_commit_that_lands_while_the_page_is_read_shows_whole_on_the_next_page() {
    let app = spawn_app().await;
    let (shopper, order_id, _) = one_order(&app).await;
    let path = format!("/api/orders/{order_id}");

    let mut writer = app.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE payments IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *writer)
        .await
        .unwrap();
    let write_while_the_page_waits = async {
        testkit::eventually(
            "the page's read waits on the payments table",
            std::time::Duration::from_secs(10),
            || async {
                testkit::scalar(
                    &app.pool,
                    "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
                     WHERE c.relname = 'payments' AND NOT l.granted",
                )
                .await
                    == 1
            },
        )
        .await
        .expect("the page reads the payment");
        sqlx::query("UPDATE orders SET status = 'paid' WHERE id = $1")
            .bind(order_id)
            .execute(&mut *writer)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO payments (order_id, payment_intent_id, amount_minor, currency, status)
             SELECT id, 'pi_snapshot', subtotal_minor, currency, 'succeeded'
             FROM orders WHERE id = $1",
        )
        .bind(order_id)
        .execute(&mut *writer)
        .await
        .unwrap();
        writer.commit().await.unwrap();
    };
    let (page, ()) = tokio::join!(
        async { shopper.get(&path).await.json::<Value>().await.unwrap() },
        write_while_the_page_waits
    );

    assert_eq!(page["status"], "placed", "{page}");
    assert_eq!(page["payment"], Value::Null, "{page}");
    let next: Value = shopper.get(&path).await.json().await.unwrap();
    assert_eq!(next["status"], "paid", "{next}");
    assert_eq!(next["payment"]["status"], "succeeded", "{next}");
}

/// An order's stream that its client drops while the page's `BEGIN` waits for PostgreSQL leaves
/// the connection out of any transaction: the next checkout on the same (one-connection) pool
/// succeeds. With sqlx 0.9.0 the dropped `BEGIN` left the connection inside the page's read-only
/// transaction (its guard rolled back only a `BEGIN` already counted), and that checkout answered
/// 500. The app's database backend is held still with SIGSTOP while the stream is dropped.
#[tokio::test]
async fn a_stream_dropped_while_its_page_read_begins_leaves_no_transaction_behind() {
    let app = spawn_app_with(&[("APP__DATABASE__MAX_CONNECTIONS", "1")], |_| {}).await;
    let (shopper, order_id, mug) = one_order(&app).await;
    let path = format!("/api/orders/{order_id}");
    let (observer, backend) = app.app_backend().await;

    // The order's stream re-reads the page at each change of the order.
    let stream = shopper.get(&format!("{path}/events")).await;
    assert_eq!(stream.status(), 200);
    testkit::processes::signal(backend, "-STOP");
    sqlx::query("UPDATE orders SET updated_at = now()")
        .execute(&observer)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(stream);
    tokio::time::sleep(Duration::from_millis(300)).await;
    testkit::processes::signal(backend, "-CONT");

    assert_eq!(
        shopper.checkout(&order_body(&[(mug, 1)])).await.status(),
        201
    );
}

/// A shopper of `app` with one order placed, of one unit of a new product (five in stock): the
/// shopper, the order and the product.
async fn one_order(app: &TestApp) -> (Shopper, uuid::Uuid, i64) {
    let mug = app.add_product(1450, 5).await;
    let shopper = app.shopper();
    let placed: Value = shopper
        .checkout(&order_body(&[(mug, 1)]))
        .await
        .json()
        .await
        .unwrap();
    let order_id = placed["order_id"].as_str().unwrap().parse().unwrap();
    (shopper, order_id, mug)
}
