//! The page's payment set-up (`GET /api/config`) and what the checkout accepts as
//! `payment_method`: PaymentMethod ids only, never card data; Stripe's test shortcuts only when
//! the shop is not in live mode.

use serde_json::{Value, json};

use crate::helpers::{assert_error, order_body, spawn_app, spawn_app_with};

const TEST_KEY: &str = "pk_test_51ChargeFlowE2eKey";
const LIVE_KEY: &str = "pk_live_51ChargeFlowLiveKey";

/// A PaymentMethod id of the form Stripe gives the ones it creates (`pm_` + letters and digits).
const CREATED_ID: &str = "pm_1QbZx2ChargeFlowStub0001";

#[tokio::test]
async fn the_config_gives_the_page_the_publishable_key_cacheable_and_without_a_session() {
    let app = spawn_app_with(
        &[
            ("APP__STRIPE__PUBLISHABLE_KEY", TEST_KEY),
            ("APP__STRIPE__SECRET_KEY", "sk_test_51NeverInTheConfig"),
        ],
        |_| {},
    )
    .await;

    let response = app.shopper().get("/api/config").await;

    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["cache-control"],
        "public, max-age=300",
        "the same for everyone until a restart"
    );
    assert!(
        response.headers().get("set-cookie").is_none(),
        "no session is opened for it"
    );
    let text = response.text().await.unwrap();
    assert!(
        !text.contains("sk_") && !text.contains("whsec_"),
        "no secret: {text}"
    );
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body, json!({"stripe_publishable_key": TEST_KEY}));
}

#[tokio::test]
async fn without_a_publishable_key_the_config_says_null_for_the_local_test_methods() {
    let app = spawn_app().await;

    let body: Value = app.shopper().get("/api/config").await.json().await.unwrap();

    assert_eq!(body, json!({"stripe_publishable_key": null}));
}

#[tokio::test]
async fn card_data_is_refused_with_its_own_code_and_never_repeated_or_written() {
    let app = spawn_app().await;
    let mug = app.add_product(1450, 5).await;
    let shopper = app.shopper();
    for card in [
        "4242424242424242",
        "4242 4242 4242 4242",
        "4000-0027-6000-3184",
        "pm_4242424242424242",
        "378282246310005 12/34 123",
    ] {
        let mut body = order_body(&[(mug, 1)]);
        body["payment_method"] = json!(card);

        let response = shopper.checkout(&body).await;

        let error = assert_error(response, 422, "card_data_not_accepted").await;
        assert_eq!(error["field"], "payment_method");
        let digits: String = card.chars().filter(char::is_ascii_digit).collect();
        let message = error["message"].as_str().unwrap();
        assert!(
            !message.contains(&digits[..8]),
            "the number is not echoed: {message}"
        );
    }
    app.assert_nothing_written().await;
}

#[tokio::test]
async fn anything_but_a_payment_method_id_is_refused_as_invalid() {
    let app = spawn_app().await;
    let mug = app.add_product(1450, 5).await;
    let shopper = app.shopper();
    let too_long = format!("pm_{}", "a".repeat(98));
    for bad in [
        "tok_visa",
        "card_1Abc",
        "pi_123_secret_456",
        "pm_",
        "pm_a b",
        "pm_abc;drop",
        "pm_é",
        too_long.as_str(),
    ] {
        let mut body = order_body(&[(mug, 1)]);
        body["payment_method"] = json!(bad);

        let response = shopper.checkout(&body).await;

        let error = assert_error(response, 422, "invalid_payment_method").await;
        assert_eq!(error["field"], "payment_method", "{bad}");
    }
    let mut object = order_body(&[(mug, 1)]);
    object["payment_method"] = json!({"number": "4242424242424242", "cvc": "123"});
    assert_error(shopper.checkout(&object).await, 422, "invalid_body").await;
    app.assert_nothing_written().await;
}

#[tokio::test]
async fn in_live_mode_stripe_test_shortcuts_are_refused_and_created_ids_accepted() {
    let app = spawn_app_with(&[("APP__STRIPE__PUBLISHABLE_KEY", LIVE_KEY)], |_| {}).await;
    let mug = app.add_product(1450, 5).await;
    let shopper = app.shopper();
    for shortcut in ["pm_card_visa", "pm_card_authenticationRequired"] {
        let mut body = order_body(&[(mug, 1)]);
        body["payment_method"] = json!(shortcut);

        let error = assert_error(
            shopper.checkout(&body).await,
            422,
            "test_payment_method_in_live_mode",
        )
        .await;
        assert_eq!(error["field"], "payment_method");
    }
    app.assert_nothing_written().await;

    let mut body = order_body(&[(mug, 1)]);
    body["payment_method"] = json!(CREATED_ID);
    assert_eq!(shopper.checkout(&body).await.status(), 201);
}

#[tokio::test]
async fn in_test_mode_stripe_test_shortcuts_and_created_ids_are_both_accepted() {
    let app = spawn_app_with(&[("APP__STRIPE__PUBLISHABLE_KEY", TEST_KEY)], |_| {}).await;
    let mug = app.add_product(1450, 5).await;
    let shopper = app.shopper();
    for id in ["pm_card_visa", CREATED_ID] {
        let mut body = order_body(&[(mug, 1)]);
        body["payment_method"] = json!(id);

        assert_eq!(shopper.checkout(&body).await.status(), 201, "{id}");
    }
    assert_eq!(app.stock(mug).await, 3);
}
