//! One quote: the cart quoted for a country, the checkout's 201 answer, the stored order and
//! `GET /api/orders/{id}` carry the same shipping, tax and total; an order whose total differs
//! from the one the page showed is refused with nothing written.

use serde_json::{Value, json};

use crate::helpers::{Shopper, TestApp, assert_error, order_body, spawn_app};

/// The quote fields of a cart, a 201 answer or an order page.
fn quote_of(body: &Value) -> [i64; 4] {
    [
        "subtotal_minor",
        "shipping_minor",
        "tax_minor",
        "total_minor",
    ]
    .map(|k| body[k].as_i64().unwrap_or_else(|| panic!("{k} in {body}")))
}

async fn cart_for(shopper: &Shopper, country: &str) -> Value {
    let path = format!("/api/cart?country={country}");
    shopper.get(&path).await.json().await.expect("cart")
}

fn shipped_to(mut body: Value, country: &str) -> Value {
    body["customer"]["address"]["country"] = json!(country);
    body
}

async fn put_in_cart(app: &TestApp, shopper: &Shopper, lines: &[(i64, i64)]) {
    for (id, quantity) in lines {
        let response = shopper
            .client
            .put(shopper.url(&format!("/api/cart/items/{id}")))
            .json(&json!({"quantity": quantity}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", app.address);
    }
}

#[tokio::test]
async fn the_cart_is_quoted_for_the_country_it_is_given() {
    let app = spawn_app().await;
    let knife = app.add_product(3900, 5).await;
    let mug = app.add_product(1450, 5).await;
    let shopper = app.shopper();
    put_in_cart(&app, &shopper, &[(knife, 1), (mug, 2)]).await;

    // testkit::COUNTRY_RATES: AT 6.90 + 20 %, CH 14.90 + 0 %, everywhere else 4.90 + 19 %.
    let cases = [
        ("DE", [6800, 490, 1385, 8675]),
        ("AT", [6800, 690, 1498, 8988]),
        ("CH", [6800, 1490, 0, 8290]),
        ("at", [6800, 690, 1498, 8988]),
    ];
    for (country, expected) in cases {
        let cart = cart_for(&shopper, country).await;
        assert_eq!(quote_of(&cart), expected, "{country}: {cart}");
        assert_eq!(cart["country"], country.to_uppercase());
    }
    let default: Value = shopper.get("/api/cart").await.json().await.unwrap();
    assert_eq!(quote_of(&default), [6800, 490, 1385, 8675]);
    assert_eq!(default["country"], Value::Null);
    assert_eq!(default["tax_rate_bp"], 1900);

    let empty = cart_for(&app.shopper(), "CH").await;
    assert_eq!(
        quote_of(&empty),
        [0, 0, 0, 0],
        "nothing to ship, nothing to pay"
    );
}

#[tokio::test]
async fn a_country_that_is_not_two_letters_is_refused_with_a_json_error() {
    let app = spawn_app().await;
    let shopper = app.shopper();
    for bad in ["D", "DEU", "1A", "%C3%84T"] {
        let response = shopper.get(&format!("/api/cart?country={bad}")).await;
        assert_error(response, 422, "invalid_country").await;
    }
    let repeated = shopper.get("/api/cart?country=AT&country=CH").await;
    assert_eq!(
        repeated.status(),
        200,
        "a repeated key is not a non-JSON 400"
    );
}

#[tokio::test]
async fn the_checkout_answer_and_the_order_carry_the_quote_the_cart_showed() {
    let app = spawn_app().await;
    let knife = app.add_product(3900, 20).await;
    let mug = app.add_product(1450, 20).await;
    for country in ["DE", "AT", "CH"] {
        for lines in [vec![(knife, 1)], vec![(knife, 2), (mug, 3)]] {
            let shopper = app.shopper();
            put_in_cart(&app, &shopper, &lines).await;
            let cart = cart_for(&shopper, country).await;
            let mut body = shipped_to(order_body(&[]), country);
            body.as_object_mut().unwrap().remove("items");
            body["expected_total_minor"] = cart["total_minor"].clone();

            let placed = shopper.checkout(&body).await;
            assert_eq!(placed.status(), 201);
            let placed: Value = placed.json().await.unwrap();
            assert_eq!(quote_of(&placed), quote_of(&cart), "{country} {lines:?}");
            assert_eq!(placed["tax_rate_bp"], cart["tax_rate_bp"]);

            let id = placed["order_id"].as_str().unwrap();
            let order: Value = shopper
                .get(&format!("/api/orders/{id}"))
                .await
                .json()
                .await
                .unwrap();
            assert_eq!(quote_of(&order), quote_of(&cart), "{country} {lines:?}");
            let stored: (i64, i64, i32, i64, i64) = sqlx::query_as(
                "SELECT subtotal_minor, shipping_minor, tax_rate_bp, tax_minor, total_minor
                 FROM orders WHERE id = $1::uuid",
            )
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
            let cart_quote = quote_of(&cart);
            assert_eq!(
                [stored.0, stored.1, stored.3, stored.4],
                cart_quote,
                "{country} {lines:?}"
            );
        }
    }
}

#[tokio::test]
async fn an_order_whose_total_is_not_the_one_shown_is_refused_and_nothing_is_written() {
    let app = spawn_app().await;
    let knife = app.add_product(3900, 5).await;
    let shopper = app.shopper();
    let mut body = shipped_to(order_body(&[(knife, 1)]), "AT");
    // The page showed the German total (52.24), the parcel goes to Austria (55.08).
    body["expected_total_minor"] = json!(5224);

    let refused = shopper.checkout_with_key(&body, "quote-1").await;

    let error = assert_error(refused, 409, "quote_changed").await;
    assert!(
        error["message"].as_str().unwrap().contains("55.08"),
        "the message names the real total: {error}"
    );
    app.assert_nothing_written().await;
    assert_eq!(app.stock(knife).await, 5);

    // The same key with the total now shown places the order.
    body["expected_total_minor"] = json!(5508);
    let placed = shopper.checkout_with_key(&body, "quote-1").await;
    assert_eq!(placed.status(), 201);
    let placed: Value = placed.json().await.unwrap();
    assert_eq!(placed["total_minor"], 5508);
}
