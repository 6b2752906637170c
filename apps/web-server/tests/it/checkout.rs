use futures::future::join_all;
use serde_json::{Value, json};

use crate::helpers::{Shopper, assert_error, order_body, spawn_app};

#[tokio::test]
async fn a_checkout_writes_the_order_its_lines_the_timeline_and_one_outbox_row() {
    let app = spawn_app().await;
    let mug = app.add_product(1450, 5).await;
    let knife = app.add_product(3900, 5).await;

    let response = app
        .shopper()
        .checkout(&order_body(&[(mug, 2), (knife, 1)]))
        .await;

    assert_eq!(response.status().as_u16(), 201);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "placed");
    assert_eq!(body["subtotal_minor"], 2 * 1450 + 3900);
    assert_eq!(body["currency"], "EUR");
    let order_id: uuid::Uuid = body["order_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(body["links"]["self"], format!("/api/orders/{order_id}"));
    assert_eq!((app.stock(mug).await, app.stock(knife).await), (3, 4));
    let (event_type, aggregate, envelope): (String, uuid::Uuid, Value) =
        sqlx::query_as("SELECT event_type, aggregate_id, envelope FROM outbox")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((event_type.as_str(), aggregate), ("order.placed", order_id));
    assert_eq!(envelope["payload"]["subtotal_minor"], 2 * 1450 + 3900);
    assert_eq!(envelope["payload"]["lines"].as_array().unwrap().len(), 2);
    assert!(envelope["traceparent"].as_str().unwrap().starts_with("00-"));
    assert!(!envelope["correlation_id"].as_str().unwrap().is_empty());
    assert_eq!(app.count("order_items").await, 2);
    assert_eq!(app.count("order_timeline").await, 1);
}

#[tokio::test]
async fn prices_come_from_the_database_not_from_the_client() {
    let app = spawn_app().await;
    let mug = app.add_product(1450, 5).await;
    let mut body = order_body(&[(mug, 1)]);
    body["items"][0]["unit_price_minor"] = json!(1);
    body["subtotal_minor"] = json!(1);

    let response = app.shopper().checkout(&body).await;

    let placed: Value = response.json().await.unwrap();
    assert_eq!(placed["subtotal_minor"], 1450);
}

#[tokio::test]
async fn an_order_and_its_outbox_row_are_written_together_or_not_at_all() {
    let app = spawn_app().await;
    let mug = app.add_product(1450, 5).await;
    // Make the last write of the checkout transaction fail, after the order row went in.
    sqlx::raw_sql(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'outbox refused by test'; END; $$;
         CREATE TRIGGER refuse BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION refuse();",
    )
    .execute(&app.pool)
    .await
    .unwrap();

    let response = app
        .shopper()
        .checkout_with_key(&order_body(&[(mug, 2)]), "k-1")
        .await;

    let error = assert_error(response, 500, "internal").await;
    assert!(
        !error.to_string().contains("refused"),
        "a 5xx must not leak internals: {error}"
    );
    app.assert_nothing_written().await;
    assert_eq!(app.stock(mug).await, 5);
}

#[tokio::test]
async fn a_retry_with_the_same_idempotency_key_returns_the_first_answer_and_creates_nothing() {
    let app = spawn_app().await;
    let mug = app.add_product(1450, 5).await;
    let shopper = app.shopper();
    let body = order_body(&[(mug, 1)]);

    let first = shopper.checkout_with_key(&body, "retry-me").await;
    let second = shopper.checkout_with_key(&body, "retry-me").await;

    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (201, 201)
    );
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    let (first, second): (Value, Value) =
        (first.json().await.unwrap(), second.json().await.unwrap());
    assert_eq!(first, second);
    assert_eq!(app.count("orders").await, 1);
    assert_eq!(app.count("outbox").await, 1);
    assert_eq!(app.stock(mug).await, 4);
}

#[tokio::test]
async fn concurrent_retries_with_one_idempotency_key_place_one_order() {
    let app = spawn_app().await;
    let mug = app.add_product(1450, 50).await;
    let shopper = app.shopper();
    shopper.get("/api/cart").await; // establish the session first
    let body = order_body(&[(mug, 1)]);

    let responses =
        join_all((0..10).map(|_| shopper.checkout_with_key(&body, "double-click"))).await;

    let mut order_ids = Vec::new();
    for response in responses {
        assert_eq!(response.status().as_u16(), 201);
        let body: Value = response.json().await.unwrap();
        order_ids.push(body["order_id"].as_str().unwrap().to_owned());
    }
    order_ids.dedup();
    assert_eq!(order_ids.len(), 1);
    assert_eq!(app.count("orders").await, 1);
    assert_eq!(app.stock(mug).await, 49);
}

#[tokio::test]
async fn the_same_idempotency_key_with_another_body_is_rejected() {
    let app = spawn_app().await;
    let mug = app.add_product(1450, 5).await;
    let shopper = app.shopper();
    shopper
        .checkout_with_key(&order_body(&[(mug, 1)]), "k")
        .await;

    let response = shopper
        .checkout_with_key(&order_body(&[(mug, 2)]), "k")
        .await;

    assert_error(response, 422, "idempotency_key_reused").await;
    assert_eq!(app.count("orders").await, 1);
    assert_eq!(app.stock(mug).await, 4);
}

#[tokio::test]
async fn fifty_shoppers_racing_for_ten_units_place_exactly_ten_orders() {
    let app = spawn_app().await;
    let lamp = app.add_product(3450, 10).await;
    let shoppers: Vec<_> = (0..50).map(|_| app.shopper()).collect();
    let body = order_body(&[(lamp, 1)]);

    let responses = join_all(shoppers.iter().map(|s| s.checkout(&body))).await;

    let mut placed = 0;
    for response in responses {
        match response.status().as_u16() {
            201 => placed += 1,
            _ => {
                let error = assert_error(response, 409, "out_of_stock").await;
                assert_eq!(error["product_id"], lamp);
            }
        }
    }
    assert_eq!(placed, 10);
    assert_eq!(app.stock(lamp).await, 0);
    assert_eq!(app.count("orders").await, 10);
    assert_eq!(app.count("outbox").await, 10);
}

#[tokio::test]
async fn two_shoppers_racing_for_the_last_unit_one_wins_and_the_other_is_told_it_is_out_of_stock() {
    let app = spawn_app().await;
    let kit = app.add_product(1990, 1).await;
    let (ada, bob) = (app.shopper(), app.shopper());
    let body = order_body(&[(kit, 1)]);

    let (a, b) = tokio::join!(ada.checkout(&body), bob.checkout(&body));

    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409]);
    let loser = if a.status().as_u16() == 409 { a } else { b };
    assert_error(loser, 409, "out_of_stock").await;
    assert_eq!(app.stock(kit).await, 0);
    assert_eq!(app.count("orders").await, 1);
}

/// Puts `quantity` of `product` in the shopper's cart; returns a checkout body without `items`.
async fn cart_checkout(shopper: &Shopper, product: i64, quantity: i64) -> Value {
    shopper
        .client
        .put(shopper.url(&format!("/api/cart/items/{product}")))
        .json(&json!({"quantity": quantity}))
        .send()
        .await
        .unwrap();
    let mut body = order_body(&[]);
    body.as_object_mut().unwrap().remove("items");
    body
}

#[tokio::test]
async fn checkout_without_items_takes_the_cart_and_empties_it() {
    let app = spawn_app().await;
    let mug = app.add_product(1450, 5).await;
    let shopper = app.shopper();
    let body = cart_checkout(&shopper, mug, 3).await;

    let response = shopper.checkout(&body).await;

    assert_eq!(response.status().as_u16(), 201);
    assert_eq!(app.stock(mug).await, 2);
    let cart: Value = shopper.get("/api/cart").await.json().await.unwrap();
    assert_eq!(cart["items"], json!([]));
}

#[tokio::test]
async fn a_cart_checkout_retried_with_its_key_after_the_cart_was_emptied_replays_the_first_answer()
{
    let app = spawn_app().await;
    let mug = app.add_product(1450, 5).await;
    let shopper = app.shopper();
    let body = cart_checkout(&shopper, mug, 2).await;

    let first = shopper.checkout_with_key(&body, "cart-retry").await;
    // The answer was lost; the client retries the same request with the same key.
    let retry = shopper.checkout_with_key(&body, "cart-retry").await;

    assert_eq!(
        (first.status().as_u16(), retry.status().as_u16()),
        (201, 201)
    );
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    let (first, retry): (Value, Value) = (first.json().await.unwrap(), retry.json().await.unwrap());
    assert_eq!(first["order_id"], retry["order_id"]);
    assert_eq!(app.count("orders").await, 1);
    assert_eq!(app.stock(mug).await, 3);
    let cart: Value = shopper.get("/api/cart").await.json().await.unwrap();
    assert_eq!(cart["items"], json!([]));
    // A body naming another basket under the same key is still refused.
    let other = shopper
        .checkout_with_key(&order_body(&[(mug, 1)]), "cart-retry")
        .await;
    assert_error(other, 422, "idempotency_key_reused").await;
}

/// One bad request: what to change in a valid body, and the answer expected.
struct BadInput {
    what: &'static str,
    status: u16,
    code: &'static str,
    edit: fn(&mut Value, i64),
}

#[tokio::test]
async fn each_bad_input_gets_its_status_and_code_and_nothing_is_written() {
    let app = spawn_app().await;
    let mug = app.add_product(1450, 5).await;
    let cases = [
        BadInput {
            what: "unknown product",
            status: 422,
            code: "unknown_product",
            edit: |b, _| b["items"][0]["product_id"] = json!(999_999),
        },
        BadInput {
            what: "quantity 0",
            status: 422,
            code: "invalid_quantity",
            edit: |b, _| b["items"][0]["quantity"] = json!(0),
        },
        BadInput {
            what: "quantity 101",
            status: 422,
            code: "invalid_quantity",
            edit: |b, _| b["items"][0]["quantity"] = json!(101),
        },
        BadInput {
            what: "negative quantity",
            status: 422,
            code: "invalid_quantity",
            edit: |b, _| b["items"][0]["quantity"] = json!(-3),
        },
        BadInput {
            what: "more than stock",
            status: 409,
            code: "out_of_stock",
            edit: |b, _| b["items"][0]["quantity"] = json!(6),
        },
        BadInput {
            what: "51 lines",
            status: 422,
            code: "too_many_lines",
            edit: |b, id| {
                b["items"] = json!(
                    (0..51)
                        .map(|i| json!({"product_id": id + i, "quantity": 1}))
                        .collect::<Vec<_>>()
                )
            },
        },
        BadInput {
            what: "no items",
            status: 422,
            code: "empty_order",
            edit: |b, _| b["items"] = json!([]),
        },
        BadInput {
            what: "same product twice",
            status: 422,
            code: "duplicate_product",
            edit: |b, id| {
                b["items"] =
                    json!([{"product_id": id, "quantity": 1}, {"product_id": id, "quantity": 2}])
            },
        },
        BadInput {
            what: "malformed e-mail",
            status: 422,
            code: "invalid_email",
            edit: |b, _| b["customer"]["email"] = json!("ada.example.com"),
        },
        BadInput {
            what: "missing e-mail",
            status: 422,
            code: "invalid_email",
            edit: |b, _| remove(&mut b["customer"], "email"),
        },
        BadInput {
            what: "missing name",
            status: 422,
            code: "missing_field",
            edit: |b, _| remove(&mut b["customer"], "name"),
        },
        BadInput {
            what: "missing customer",
            status: 422,
            code: "missing_field",
            edit: |b, _| remove(b, "customer"),
        },
        BadInput {
            what: "missing address",
            status: 422,
            code: "missing_field",
            edit: |b, _| remove(&mut b["customer"], "address"),
        },
        BadInput {
            what: "missing line1",
            status: 422,
            code: "missing_field",
            edit: |b, _| remove(&mut b["customer"]["address"], "line1"),
        },
        BadInput {
            what: "blank city",
            status: 422,
            code: "missing_field",
            edit: |b, _| b["customer"]["address"]["city"] = json!("  "),
        },
        BadInput {
            what: "missing postal code",
            status: 422,
            code: "missing_field",
            edit: |b, _| remove(&mut b["customer"]["address"], "postal_code"),
        },
        BadInput {
            what: "missing country",
            status: 422,
            code: "missing_field",
            edit: |b, _| remove(&mut b["customer"]["address"], "country"),
        },
        BadInput {
            what: "country not ISO",
            status: 422,
            code: "invalid_country",
            edit: |b, _| b["customer"]["address"]["country"] = json!("Germany"),
        },
        BadInput {
            what: "missing payment method",
            status: 422,
            code: "missing_field",
            edit: |b, _| remove(b, "payment_method"),
        },
        BadInput {
            what: "bad payment method",
            status: 422,
            code: "invalid_payment_method",
            edit: |b, _| b["payment_method"] = json!("tok_visa"),
        },
        BadInput {
            what: "a card number as payment method",
            status: 422,
            code: "card_data_not_accepted",
            edit: |b, _| b["payment_method"] = json!("4242424242424242"),
        },
        BadInput {
            what: "quantity of wrong type",
            status: 422,
            code: "invalid_body",
            edit: |b, _| b["items"][0]["quantity"] = json!("two"),
        },
    ];
    let shopper = app.shopper();
    for case in cases {
        let mut body = order_body(&[(mug, 1)]);
        (case.edit)(&mut body, mug);
        let response = shopper.checkout(&body).await;
        assert_eq!(response.status().as_u16(), case.status, "{}", case.what);
        let error = assert_error(response, case.status, case.code).await;
        if case.status == 422 && case.code != "invalid_body" {
            assert!(
                error["field"].is_string(),
                "{}: the field is named: {error}",
                case.what
            );
        }
    }
    app.assert_nothing_written().await;
    assert_eq!(app.stock(mug).await, 5);
}

#[tokio::test]
async fn unreadable_bodies_get_their_status_and_code_and_nothing_is_written() {
    let app = spawn_app().await;
    let mug = app.add_product(1450, 5).await;
    let shopper = app.shopper();
    let url = shopper.url("/api/orders");
    let valid = order_body(&[(mug, 1)]).to_string();

    let malformed = shopper
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"customer\": ")
        .send()
        .await
        .unwrap();
    assert_error(malformed, 400, "invalid_json").await;

    let wrong_type = shopper
        .client
        .post(&url)
        .header("content-type", "text/plain")
        .body(valid.clone())
        .send()
        .await
        .unwrap();
    assert_error(wrong_type, 415, "unsupported_media_type").await;

    let no_type = shopper.client.post(&url).body(valid).send().await.unwrap();
    assert_error(no_type, 415, "unsupported_media_type").await;

    let mut huge = order_body(&[(mug, 1)]);
    huge["customer"]["name"] = json!("x".repeat(70 * 1024));
    let too_large = shopper.checkout(&huge).await;
    assert_error(too_large, 413, "payload_too_large").await;

    let bad_key = shopper
        .client
        .post(&url)
        .header("Idempotency-Key", "")
        .json(&order_body(&[(mug, 1)]))
        .send()
        .await
        .unwrap();
    assert_error(bad_key, 400, "invalid_idempotency_key").await;

    app.assert_nothing_written().await;
    assert_eq!(app.stock(mug).await, 5);
}

fn remove(value: &mut Value, key: &str) {
    value.as_object_mut().expect("object").remove(key);
}

#[tokio::test]
async fn first_orders_of_a_new_address_at_once_share_one_customer() {
    let app = spawn_app().await;
    let mug = app.add_product(1450, 100).await;
    let shoppers: Vec<_> = (0..8).map(|_| app.shopper()).collect();
    let placed = join_all(
        shoppers
            .iter()
            .map(|shopper| shopper.place_order_for(mug, "grace@example.com")),
    )
    .await;

    let customers: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM customers")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(customers.len(), 1, "one customer for the address");
    let theirs: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE customer_id = $1")
        .bind(customers[0])
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(theirs, placed.len() as i64, "every order is the customer's");
}

#[tokio::test]
async fn a_checkout_with_someone_elses_address_does_not_rename_them() {
    let app = spawn_app().await;
    let mug = app.add_product(1450, 10).await;
    let first = app.shopper().checkout(&order_body(&[(mug, 1)])).await;
    assert_eq!(first.status(), 201);
    let mut stranger = order_body(&[(mug, 1)]);
    stranger["customer"]["name"] = json!("Mallory Impostor");
    let second = app.shopper().checkout(&stranger).await;
    assert_eq!(second.status(), 201);

    let customers: Vec<(String, String)> = sqlx::query_as("SELECT email, name FROM customers")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        customers,
        [("ada@example.com".to_owned(), "Ada Lovelace".to_owned())],
        "one customer per address, named as it first ordered"
    );
    let names: Vec<String> = sqlx::query_scalar("SELECT ship_name FROM orders ORDER BY created_at")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        names,
        ["Ada Lovelace", "Mallory Impostor"],
        "each order its own"
    );
}

/// Checks out one `product` while the test holds the product's row and, once the checkout waits
/// for it (its order written, its stock reservation last), applies `change` to the product and
/// lets go: the checkout's reservation then sees the changed row.
async fn checkout_while_the_product_changes(
    app: &crate::helpers::TestApp,
    product: i64,
    change: &'static str,
) -> reqwest::Response {
    let mut holder = app.pool.begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM products WHERE id = $1 FOR UPDATE")
        .bind(product)
        .execute(&mut *holder)
        .await
        .expect("lock the product");
    let shopper = app.shopper();
    let body = order_body(&[(product, 1)]);
    let pending = tokio::spawn(async move { shopper.checkout(&body).await });
    testkit::eventually(
        "the checkout to wait for the product's row",
        std::time::Duration::from_secs(20),
        || async {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(&app.pool)
            .await
            .expect("activity");
            waiting > 0
        },
    )
    .await
    .expect("checkout waiting");
    sqlx::query(change)
        .bind(product)
        .execute(&mut *holder)
        .await
        .expect("change the product");
    holder.commit().await.expect("commit");
    pending.await.expect("checkout task")
}

#[tokio::test]
async fn stock_taken_after_the_checkout_read_the_product_is_out_of_stock_and_nothing_is_written() {
    let app = spawn_app().await;
    let kit = app.add_product(1990, 1).await;
    let response = checkout_while_the_product_changes(
        &app,
        kit,
        "UPDATE products SET stock = 0 WHERE id = $1",
    )
    .await;
    assert_error(response, 409, "out_of_stock").await;
    app.assert_nothing_written().await;
    assert_eq!(app.stock(kit).await, 0);
}

#[tokio::test]
async fn a_price_changed_after_the_checkout_read_the_product_is_a_changed_quote_and_nothing_is_written()
 {
    let app = spawn_app().await;
    let kit = app.add_product(1990, 3).await;
    let response = checkout_while_the_product_changes(
        &app,
        kit,
        "UPDATE products SET price_minor = 2490 WHERE id = $1",
    )
    .await;
    let error = assert_error(response, 409, "quote_changed").await;
    assert_eq!(error["product_id"], kit, "{error}");
    app.assert_nothing_written().await;
    assert_eq!(app.stock(kit).await, 3, "no stock taken");
}

#[tokio::test]
async fn checkout_statements_are_planned_once_per_connection_not_at_every_order() {
    // The app's sessions count their planning in `pg_stat_statements` (`plans`).
    let app = crate::helpers::spawn_app_with(&[], |settings| {
        use secrecy::ExposeSecret;
        let url = testkit::statements::tracking_planning(settings.database.url.expose_secret());
        settings.database.url = url.into();
    })
    .await;
    testkit::statements::start_counting(&app.pool)
        .await
        .unwrap();
    let mug = app.add_product(1450, 100).await;
    let shopper = app.shopper();
    let orders = 20;
    for _ in 0..orders {
        let placed = shopper.checkout(&order_body(&[(mug, 1)])).await;
        assert_eq!(placed.status(), 201);
    }

    let counted = testkit::statements::counts(&app.pool, "WITH locked AS MATERIALIZED%")
        .await
        .unwrap();
    assert_eq!(
        counted.calls, orders,
        "the stock reservation ran once per order"
    );
    // One plan per connection that ran it (one after another: a few at most); PostgreSQL's own
    // choice planned it at every call.
    assert!(
        counted.plans <= 3,
        "planned {} times for {} calls",
        counted.plans,
        counted.calls
    );
}
