//! The invoice prints the quote stored with the order (what the shopper was shown), not today's
//! rates; a stored quote its lines do not add up to is parked, never invoiced or charged.

use std::time::Duration;

use invoice_service::InvoiceHandler;
use tokio_util::sync::CancellationToken;
use worker::Poller;

use crate::helpers::{Harness, harness};

/// Stores a quote on the order (2 × 14.50 = 29.00 of goods).
async fn store_quote(h: &Harness, order_id: uuid::Uuid, quote: (i64, i32, i64, i64)) {
    sqlx::query(
        "UPDATE orders SET shipping_minor = $2, tax_rate_bp = $3, tax_minor = $4, total_minor = $5
         WHERE id = $1",
    )
    .bind(order_id)
    .bind(quote.0)
    .bind(quote.1)
    .bind(quote.2)
    .bind(quote.3)
    .execute(&h.pool)
    .await
    .expect("quote stored");
}

#[tokio::test]
async fn the_invoice_uses_the_quote_stored_at_checkout_and_parks_one_that_does_not_add_up() {
    let h = harness().await;
    // Quoted when shipping was 5.90 and tax 7 %: 29.00 + 5.90 = 34.90, 7 % = 2.443 → 2.44.
    let quoted = h.place_order().await;
    store_quote(&h, quoted.order_id, (590, 700, 244, 3734)).await;
    // A quote whose tax is one cent off for its rate (its total still adds up).
    let broken = h.place_order().await;
    store_quote(&h, broken.order_id, (590, 700, 245, 3735)).await;
    // Placed before quotes were stored: today's rates for its country (GB: 4.90 and 19 %).
    let legacy = h.place_order().await;
    let bodies = [&quoted, &broken, &legacy].map(|e| serde_json::to_string(e).expect("json"));
    h.send(&bodies).await;

    let settings = h.settings();
    let handler = InvoiceHandler::new(&settings.invoice).expect("handler");
    let poller = Poller::connect(&settings, handler).await.expect("poller");
    let stop = CancellationToken::new();
    let running = tokio::spawn(poller.run(stop.clone()));
    h.wait_status(quoted.order_id, "invoiced", Duration::from_secs(20))
        .await;
    h.wait_status(legacy.order_id, "invoiced", Duration::from_secs(20))
        .await;
    let parked = testkit::receive_all(&h.sqs, h.queues.dlq("invoice"), 1, Duration::from_secs(20))
        .await
        .expect("dlq");
    stop.cancel();
    running.await.expect("the worker stops cleanly");

    let invoice = |order_id| {
        sqlx::query_as::<_, (i64, i32, i64, i64)>(
            "SELECT shipping_minor, tax_rate_bp, tax_minor, total_minor FROM invoices
             WHERE order_id = $1",
        )
        .bind(order_id)
        .fetch_optional(&h.pool)
    };
    assert_eq!(
        invoice(quoted.order_id).await.unwrap(),
        Some((590, 700, 244, 3734))
    );
    assert_eq!(
        invoice(legacy.order_id).await.unwrap(),
        Some((490, 1900, 644, 4034))
    );
    assert_eq!(invoice(broken.order_id).await.unwrap(), None);
    assert_eq!(h.status(broken.order_id).await, "placed");
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].body.as_deref(), Some(bodies[1].as_str()));
}
