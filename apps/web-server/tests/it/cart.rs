use serde_json::{Value, json};

use crate::helpers::{assert_error, spawn_app};

#[tokio::test]
async fn the_cart_is_kept_in_the_session_across_requests() {
    let app = spawn_app().await;
    let mug = app.add_product(1450, 5).await;
    let knife = app.add_product(3900, 5).await;
    let shopper = app.shopper();
    let put = |id: i64, q: i64| {
        shopper
            .client
            .put(shopper.url(&format!("/api/cart/items/{id}")))
            .json(&json!({"quantity": q}))
            .send()
    };

    put(mug, 2).await.unwrap();
    put(knife, 1).await.unwrap();
    put(mug, 3).await.unwrap();

    let cart: Value = shopper.get("/api/cart").await.json().await.unwrap();
    assert_eq!(cart["items"].as_array().unwrap().len(), 2);
    assert_eq!(cart["items"][0]["quantity"], 3);
    assert_eq!(cart["subtotal_minor"], 3 * 1450 + 3900);
    assert_eq!(cart["currency"], "EUR");

    shopper
        .client
        .delete(shopper.url(&format!("/api/cart/items/{mug}")))
        .send()
        .await
        .unwrap();
    let cart: Value = shopper.get("/api/cart").await.json().await.unwrap();
    assert_eq!(cart["items"].as_array().unwrap().len(), 1);

    let other: Value = app.shopper().get("/api/cart").await.json().await.unwrap();
    assert_eq!(
        other["items"],
        json!([]),
        "another session has its own cart"
    );
}

#[tokio::test]
async fn the_session_cookie_is_http_only_and_same_site_lax() {
    let app = spawn_app().await;

    let response = app.shopper().get("/api/cart").await;

    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("cf_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"),
        "{cookie}"
    );
}

#[tokio::test]
async fn an_active_sessions_cookie_is_sent_again_once_a_day_so_it_never_dies_before_the_session() {
    let app = spawn_app().await;
    let client = reqwest::Client::new();
    let get = |cookie: Option<String>| {
        let mut request = client.get(format!("{}/api/cart", app.address));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send()
    };
    let first = get(None).await.unwrap();
    let set = first.headers()["set-cookie"].to_str().unwrap().to_owned();
    let pair = set.split(';').next().unwrap().to_owned();
    let id = pair.split_once('=').unwrap().1.to_owned();

    let soon = get(Some(pair.clone())).await.unwrap();
    assert!(
        soon.headers().get("set-cookie").is_none(),
        "not on every answer"
    );

    // The cookie was last sent two days ago.
    let mut redis = redis::Client::open(std::env::var("APP__REDIS__URL").unwrap())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let two_days_ago = chrono::Utc::now().timestamp() - 2 * 24 * 3600;
    redis::cmd("SET")
        .arg(format!("{}session:{id}", app.redis_prefix))
        .arg(two_days_ago)
        .arg("KEEPTTL")
        .query_async::<()>(&mut redis)
        .await
        .unwrap();
    let later = get(Some(pair.clone())).await.unwrap();

    let refreshed = later.headers()["set-cookie"].to_str().unwrap();
    assert!(
        refreshed.starts_with(&format!("{pair};")),
        "the same session: {refreshed}"
    );
    assert!(refreshed.contains("Max-Age=2592000"), "{refreshed}");
    let after = get(Some(pair)).await.unwrap();
    assert!(
        after.headers().get("set-cookie").is_none(),
        "then quiet again for a day"
    );
}

#[tokio::test]
async fn a_session_id_made_up_by_the_client_is_not_adopted() {
    let app = spawn_app().await;
    let forged = "A".repeat(43);
    let client = reqwest::Client::new();

    let response = client
        .get(format!("{}/api/cart", app.address))
        .header("cookie", format!("cf_session={forged}"))
        .send()
        .await
        .unwrap();

    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(
        !cookie.contains(&forged),
        "a fresh id replaces the forged one"
    );
}

#[tokio::test]
async fn cart_changes_are_validated() {
    let app = spawn_app().await;
    let mug = app.add_product(1450, 5).await;
    let shopper = app.shopper();
    let put = |path: String, body: Value| shopper.client.put(shopper.url(&path)).json(&body).send();

    assert_error(
        put("/api/cart/items/999999".into(), json!({"quantity": 1}))
            .await
            .unwrap(),
        404,
        "product_not_found",
    )
    .await;
    assert_error(
        put(format!("/api/cart/items/{mug}"), json!({"quantity": 0}))
            .await
            .unwrap(),
        422,
        "invalid_quantity",
    )
    .await;
    assert_error(
        put(format!("/api/cart/items/{mug}"), json!({"quantity": 101}))
            .await
            .unwrap(),
        422,
        "invalid_quantity",
    )
    .await;
    assert_error(
        put("/api/cart/items/abc".into(), json!({"quantity": 1}))
            .await
            .unwrap(),
        404,
        "product_not_found",
    )
    .await;
    let cart: Value = shopper.get("/api/cart").await.json().await.unwrap();
    assert_eq!(cart["items"], json!([]));
}
