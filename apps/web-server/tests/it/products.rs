use serde_json::Value;

use crate::helpers::{order_body, spawn_app};

#[tokio::test]
async fn the_catalogue_lists_the_demo_products_with_price_stock_and_image() {
    let app = spawn_app().await;

    let body: Value = app
        .shopper()
        .get("/api/products")
        .await
        .json()
        .await
        .unwrap();

    let products = body["products"].as_array().unwrap();
    assert_eq!(products.len(), 12);
    for product in products {
        for field in [
            "id",
            "sku",
            "name",
            "description",
            "price_minor",
            "currency",
            "stock",
            "image_url",
        ] {
            assert!(!product[field].is_null(), "{field} missing in {product}");
        }
    }
}

#[tokio::test]
async fn the_catalogue_is_served_from_the_cache_until_a_checkout_changes_stock() {
    let app = spawn_app().await;
    let shopper = app.shopper();
    let stock_of = |body: &Value, id: i64| {
        body["products"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .unwrap()["stock"]
            .clone()
    };
    let first: Value = shopper.get("/api/products").await.json().await.unwrap();
    let id = first["products"][0]["id"].as_i64().unwrap();

    // A change behind the cache's back is not seen while the cache is warm…
    sqlx::query("UPDATE products SET stock = stock + 100 WHERE id = $1")
        .bind(id)
        .execute(&app.pool)
        .await
        .unwrap();
    let cached: Value = shopper.get("/api/products").await.json().await.unwrap();
    assert_eq!(stock_of(&cached, id), stock_of(&first, id));

    // …and a checkout invalidates it.
    assert_eq!(
        shopper
            .checkout(&order_body(&[(id, 1)]))
            .await
            .status()
            .as_u16(),
        201
    );
    let fresh: Value = shopper.get("/api/products").await.json().await.unwrap();
    assert_eq!(
        stock_of(&fresh, id).as_i64().unwrap(),
        stock_of(&first, id).as_i64().unwrap() + 99
    );
}
