//! Quote = charge: for baskets to three countries with different rates (testkit::COUNTRY_RATES),
//! the total the cart showed, the checkout's 201 answer, the invoice (its row and its PDF) and the
//! fake Stripe's PaymentIntent are the same amount.

use std::time::Duration;

use partner_sim::Faults;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Pipeline, Workers, pdf_text};

const WAIT: Duration = Duration::from_secs(90);

/// What one basket was quoted and answered.
struct Placed {
    order_id: Uuid,
    quoted: i64,
    answered: i64,
    tax_rate_bp: i64,
}

/// Puts `lines` in a new shopper's cart, reads the cart's quote for `country`, and checks the cart
/// out with the total shown (as the checkout page does).
async fn quote_and_place(app: &Pipeline, lines: &[(i64, i64)], country: &str) -> Placed {
    let shopper = app.shopper();
    for (id, quantity) in lines {
        let put = shopper
            .put(format!("{}/api/cart/items/{id}", app.address))
            .json(&json!({"quantity": quantity}))
            .send()
            .await
            .expect("cart");
        assert_eq!(put.status(), 200);
    }
    let cart: Value = shopper
        .get(format!("{}/api/cart?country={country}", app.address))
        .send()
        .await
        .expect("cart")
        .json()
        .await
        .expect("json");
    let body = json!({
        "customer": {
            "name": "Ada Lovelace",
            "email": format!("quote-{country}-{}@example.com", lines.len()),
            "address": {"line1": "Ring 1", "city": "Town", "postal_code": "1010", "country": country}
        },
        "payment_method": "pm_card_visa",
        "expected_total_minor": cart["total_minor"],
    });
    let response = shopper
        .post(format!("{}/api/orders", app.address))
        .json(&body)
        .send()
        .await
        .expect("checkout");
    assert_eq!(response.status(), 201);
    let placed: Value = response.json().await.expect("json");
    Placed {
        order_id: placed["order_id"].as_str().unwrap().parse().unwrap(),
        quoted: cart["total_minor"].as_i64().expect("cart total"),
        answered: placed["total_minor"].as_i64().expect("201 total"),
        tax_rate_bp: placed["tax_rate_bp"].as_i64().expect("201 tax rate"),
    }
}

#[tokio::test]
async fn the_total_quoted_in_three_countries_is_the_total_answered_invoiced_and_charged() {
    let app = Pipeline::start_with(Workers::All, Faults::default()).await;
    let knife = app
        .add_product("Q-KNIFE", "Folding pocket knife", 3900)
        .await;
    let mug = app.add_product("Q-MUG", "Enamel camp mug", 1450).await;
    let spork = app.add_product("Q-SPORK", "Titanium spork", 990).await;
    let baskets: [&[(i64, i64)]; 2] = [&[(knife, 1)], &[(knife, 2), (mug, 3), (spork, 7)]];

    let mut placed = Vec::new();
    for country in ["DE", "AT", "CH"] {
        for basket in baskets {
            placed.push((country, quote_and_place(&app, basket, country).await));
        }
    }
    let n = i64::try_from(placed.len()).unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while app
        .count("SELECT count(*) FROM payments WHERE status = 'succeeded'")
        .await
        < n
    {
        assert!(tokio::time::Instant::now() < deadline, "all paid in time");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let stripe = app.stripe.as_ref().expect("stripe");
    let mut totals = Vec::new();
    for (country, order) in &placed {
        let (invoiced, pdf): (i64, Vec<u8>) =
            sqlx::query_as("SELECT total_minor, pdf FROM invoices WHERE order_id = $1")
                .bind(order.order_id)
                .fetch_one(&app.pool)
                .await
                .expect("invoice");
        let intents = stripe
            .payment_intents_for(&order.order_id.to_string())
            .await
            .expect("intents");
        assert_eq!(intents.len(), 1, "one charge for {country}");
        let charged = intents[0]["amount"].as_i64().expect("amount");
        assert_eq!(
            [order.answered, invoiced, charged],
            [order.quoted; 3],
            "{country}: quoted = answered = invoiced = charged"
        );
        let (_, text) = pdf_text(&pdf);
        let printed = format!("{}.{:02} EUR", invoiced / 100, invoiced % 100);
        assert!(text.contains(&printed), "{country}: {printed} on the PDF");
        totals.push((*country, order.tax_rate_bp, order.quoted));
    }
    // The three countries really were priced differently: 52.24 (DE), 55.08 (AT), 53.90 (CH)
    // for the knife alone.
    assert_eq!(
        totals.iter().step_by(2).map(|t| t.2).collect::<Vec<_>>(),
        [5224, 5508, 5390]
    );
    assert_eq!(
        totals.iter().map(|t| t.1).collect::<Vec<_>>(),
        [1900, 1900, 2000, 2000, 0, 0]
    );
}
