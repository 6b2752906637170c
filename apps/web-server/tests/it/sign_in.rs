//! "Find my orders": `POST /api/sign-in/requests` (ask for a one-time link by e-mail) and
//! `POST /api/sign-in` (use it). The e-mail itself is the email-service's business; here the
//! link's token is made from the stored request as the worker makes it.

use domain::links;
use reqwest::Response;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Shopper, TestApp, assert_error, spawn_app};

const KEY: &[u8] = testkit::LINK_SECRET.as_bytes();

async fn ask(shopper: &Shopper, email: &str) -> Response {
    shopper
        .post_json("/api/sign-in/requests", &json!({ "email": email }))
        .await
}

async fn use_link(shopper: &Shopper, token: &str) -> Response {
    shopper
        .post_json("/api/sign-in", &json!({ "token": token }))
        .await
}

/// The token of the link the e-mail for the latest request carries.
async fn latest_token(app: &TestApp) -> String {
    let request_id: Uuid =
        sqlx::query_scalar("SELECT id FROM sign_in_requests ORDER BY created_at DESC, id LIMIT 1")
            .fetch_one(&app.pool)
            .await
            .expect("a sign-in request");
    links::sign_in_token(KEY, request_id)
}

/// Asks for a link for `email` from a session of its own; returns the link's token.
async fn link_for(app: &TestApp, email: &str) -> String {
    let response = ask(&app.shopper(), email).await;
    assert_eq!(response.status(), 202);
    latest_token(app).await
}

fn order_ids(list: &Value) -> Vec<String> {
    let mut ids: Vec<String> = list["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .map(|o| o["order_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// Status, body and every header but the per-request ones (and a new session's cookie) of an
/// answer.
async fn answer_shape(response: Response) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let status = response.status().as_u16();
    let mut headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .filter(|(name, _)| {
            !["date", "x-request-id", "traceparent", "set-cookie"].contains(&name.as_str())
        })
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
        .collect();
    headers.sort();
    (status, headers, response.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn a_sign_in_link_shows_the_addresss_orders_in_another_session() {
    let app = spawn_app().await;
    let product = app.add_product(1450, 10).await;
    let laptop = app.shopper();
    let first = laptop.place_order_for(product, "ada@example.com").await;
    let second = laptop.place_order_for(product, "ada@example.com").await;
    let not_hers = laptop.place_order_for(product, "bob@example.com").await;
    let phone = app.shopper();
    let token = link_for(&app, "Ada@Example.COM").await;

    let response = use_link(&phone, &token).await;

    assert_eq!(response.status(), 200);
    let signed_in: Value = response.json().await.unwrap();
    let mut expected = vec![first.clone(), second];
    expected.sort();
    assert_eq!(order_ids(&signed_in), expected);
    let list: Value = phone.get("/api/orders").await.json().await.unwrap();
    assert_eq!(order_ids(&list), expected);
    assert_eq!(
        phone.get(&format!("/api/orders/{first}")).await.status(),
        200
    );
    assert_eq!(
        phone
            .get(&format!("/api/orders/{first}/events"))
            .await
            .status(),
        200
    );
    assert_error(
        phone.get(&format!("/api/orders/{not_hers}")).await,
        404,
        "order_not_found",
    )
    .await;
    let later = laptop.place_order_for(product, "ada@example.com").await;
    let list: Value = phone.get("/api/orders").await.json().await.unwrap();
    assert!(
        order_ids(&list).contains(&later),
        "her later orders show too"
    );
}

#[tokio::test]
async fn a_sign_in_link_works_once() {
    let app = spawn_app().await;
    let product = app.add_product(1450, 10).await;
    app.shopper()
        .place_order_for(product, "ada@example.com")
        .await;
    let token = link_for(&app, "ada@example.com").await;
    let phone = app.shopper();
    assert_eq!(use_link(&phone, &token).await.status(), 200);

    let again = use_link(&phone, &token).await;
    let elsewhere = use_link(&app.shopper(), &token).await;

    assert_error(again, 410, "sign_in_link_invalid").await;
    assert_error(elsewhere, 410, "sign_in_link_invalid").await;
}

#[tokio::test]
async fn an_expired_sign_in_link_is_refused_and_grants_nothing() {
    let app = spawn_app().await;
    let product = app.add_product(1450, 10).await;
    app.shopper()
        .place_order_for(product, "ada@example.com")
        .await;
    let token = link_for(&app, "ada@example.com").await;
    sqlx::query(
        "UPDATE sign_in_requests SET created_at = now() - interval '20 minutes',
                                     expires_at = now() - interval '1 second'",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let phone = app.shopper();

    assert_error(use_link(&phone, &token).await, 410, "sign_in_link_invalid").await;
    let list: Value = phone.get("/api/orders").await.json().await.unwrap();
    assert!(order_ids(&list).is_empty());
    assert_eq!(app.count("session_grants").await, 0);
}

#[tokio::test]
async fn forged_altered_used_and_expired_links_all_get_the_same_answer() {
    let app = spawn_app().await;
    let product = app.add_product(1450, 10).await;
    app.shopper()
        .place_order_for(product, "ada@example.com")
        .await;
    let used = link_for(&app, "ada@example.com").await;
    assert_eq!(use_link(&app.shopper(), &used).await.status(), 200);
    let expired = link_for(&app, "ada@example.com").await;
    sqlx::query(
        "UPDATE sign_in_requests SET created_at = now() - interval '1 hour',
                                     expires_at = now() - interval '1 minute'
         WHERE used_at IS NULL",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let fresh = link_for(&app, "ada@example.com").await;
    let request_id: Uuid = fresh.split('.').next().unwrap().parse().unwrap();
    let forged = links::sign_in_token(b"a secret that is not the shop's!", request_id);
    let mut altered = fresh.clone().into_bytes();
    let i = altered.len() - 5;
    altered[i] = if altered[i] == b'x' { b'y' } else { b'x' };
    let altered = String::from_utf8(altered).unwrap();
    let phone = app.shopper();

    let reference = answer_shape(use_link(&phone, &used).await).await;
    assert_eq!(reference.0, 410);
    for (what, token) in [
        ("expired", expired.as_str()),
        ("forged", &forged),
        ("altered", &altered),
        ("unknown", &links::sign_in_token(KEY, Uuid::new_v4())),
        ("malformed", "nonsense"),
    ] {
        let answer = answer_shape(use_link(&phone, token).await).await;
        assert_eq!(answer, reference, "{what}");
    }
    assert_eq!(
        use_link(&phone, &fresh).await.status(),
        200,
        "the fresh link still works"
    );
}

#[tokio::test]
async fn the_answer_for_an_address_with_and_without_orders_is_byte_identical() {
    let app = spawn_app().await;
    let product = app.add_product(1450, 10).await;
    app.shopper()
        .place_order_for(product, "ada@example.com")
        .await;
    let asker = app.shopper();

    let with_orders = answer_shape(ask(&asker, "ada@example.com").await).await;
    let without = answer_shape(ask(&asker, "nobody@example.com").await).await;

    assert_eq!(with_orders.0, 202);
    assert_eq!(with_orders, without);
    let body: Value = serde_json::from_slice(&with_orders.2).unwrap();
    assert_eq!(body["status"], "accepted");
    // Both were recorded alike: a request row and its event, the worker decides.
    assert_eq!(app.count("sign_in_requests").await, 2);
    let events: Vec<(Uuid, Value)> = sqlx::query_as(
        "SELECT aggregate_id, envelope FROM outbox WHERE event_type = 'customer.sign_in_requested'",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(events.len(), 2);
    for (aggregate, envelope) in events {
        let request: i64 =
            sqlx::query_scalar("SELECT count(*) FROM sign_in_requests WHERE id = $1")
                .bind(aggregate)
                .fetch_one(&app.pool)
                .await
                .unwrap();
        assert_eq!(request, 1, "the event's aggregate is its request");
        assert_eq!(envelope["order_id"], aggregate.to_string());
        assert!(
            !envelope.to_string().contains("example.com"),
            "no address in the event: {envelope}"
        );
    }
}

#[tokio::test]
async fn too_many_links_for_one_address_are_refused_with_retry_after() {
    let app = spawn_app().await;
    let asker = app.shopper();
    for _ in 0..3 {
        assert_eq!(ask(&asker, "ada@example.com").await.status(), 202);
    }

    let fourth = ask(&asker, "ADA@example.com").await;

    assert_eq!(fourth.status(), 429);
    let retry_after: u64 = fourth.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    assert_error(fourth, 429, "rate_limited").await;
    assert_eq!(app.count("sign_in_requests").await, 3, "nothing written");
    assert_eq!(ask(&asker, "bob@example.com").await.status(), 202);
}

#[tokio::test]
async fn too_many_links_from_one_client_are_refused() {
    let app = spawn_app().await;
    let asker = app.shopper();
    for n in 0..10 {
        let response = ask(&asker, &format!("shopper{n}@example.com")).await;
        assert_eq!(response.status(), 202);
    }

    let eleventh = ask(&app.shopper(), "someone-else@example.com").await;

    assert!(eleventh.headers().contains_key("retry-after"));
    assert_error(eleventh, 429, "rate_limited").await;
    assert_eq!(app.count("sign_in_requests").await, 10);
}

#[tokio::test]
async fn a_malformed_address_is_refused_and_nothing_is_written() {
    let app = spawn_app().await;
    let asker = app.shopper();
    for email in ["", "ada", "ada@example", "a b@example.com"] {
        let error = assert_error(ask(&asker, email).await, 422, "invalid_email").await;
        assert_eq!(error["field"], "email");
    }
    assert_eq!(app.count("sign_in_requests").await, 0);
    assert_eq!(app.count("outbox").await, 0);
}

#[tokio::test]
async fn redis_holds_no_email_address() {
    let app = spawn_app().await;
    let asker = app.shopper();
    assert_eq!(ask(&asker, "ada.lovelace@example.com").await.status(), 202);

    let settings = testkit::test_settings(&[]);
    let url = secrecy::ExposeSecret::expose_secret(&settings.redis.url).to_owned();
    let mut redis = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", app.redis_prefix))
        .query_async(&mut redis)
        .await
        .unwrap();

    assert!(
        keys.iter().any(|k| k.contains("sign_in:address:")),
        "{keys:?}"
    );
    assert!(
        keys.iter()
            .all(|k| !k.contains('@') && !k.contains("lovelace")),
        "{keys:?}"
    );
}
