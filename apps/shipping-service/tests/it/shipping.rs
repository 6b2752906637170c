use std::time::Duration;

use partner_sim::Faults;

use crate::helpers::harness;

#[tokio::test]
async fn a_paid_order_is_shipped_with_the_partners_carrier_and_tracking_number() {
    let h = harness(Faults::default()).await;
    let event = h.paid_order().await;
    h.send(&[&event]).await;
    h.wait_for(
        "the shipment",
        "SELECT count(*) FROM shipments",
        1,
        Duration::from_secs(20),
    )
    .await;

    assert_eq!(h.status(event.order_id).await, "shipped");
    let (carrier, tracking, url): (String, String, Option<String>) = sqlx::query_as(
        "SELECT carrier, tracking_number, tracking_url FROM shipments WHERE order_id = $1",
    )
    .bind(event.order_id)
    .fetch_one(&h.pool)
    .await
    .expect("shipment");
    assert_eq!(carrier, "ParcelNet");
    assert!(tracking.starts_with("PN") && url.is_some_and(|u| u.contains(&tracking)));
    let payload: serde_json::Value = sqlx::query_scalar(
        "SELECT envelope->'payload' FROM outbox WHERE event_type = 'shipment.created'",
    )
    .fetch_one(&h.pool)
    .await
    .expect("event");
    assert_eq!(
        payload["tracking_number"],
        tracking.as_str(),
        "the partner's number, not one made up"
    );
    assert_eq!(h.partner_shipments(event.order_id).await, 1);
}

#[tokio::test]
async fn an_undeliverable_address_emits_shipment_failed_and_books_nothing() {
    let h = harness(Faults::default()).await;
    let event = h.paid_order().await;
    sqlx::query("UPDATE orders SET ship_country = 'ZZ' WHERE id = $1")
        .bind(event.order_id)
        .execute(&h.pool)
        .await
        .expect("undeliverable");
    h.send(&[&event]).await;
    h.wait_for(
        "shipment.failed",
        "SELECT count(*) FROM outbox WHERE event_type = 'shipment.failed'",
        1,
        Duration::from_secs(20),
    )
    .await;

    assert_eq!(
        h.status(event.order_id).await,
        "paid",
        "billing refunds next; the order waits for that"
    );
    assert_eq!(h.count("SELECT count(*) FROM shipments").await, 0);
    assert_eq!(h.partner_shipments(event.order_id).await, 0);
}

#[tokio::test]
async fn a_redelivered_payment_event_books_no_second_shipment() {
    let h = harness(Faults::default()).await;
    let event = h.paid_order().await;
    h.send(&[&event]).await;
    h.wait_for(
        "the shipment",
        "SELECT count(*) FROM shipments",
        1,
        Duration::from_secs(20),
    )
    .await;
    h.send(&[&event]).await;
    h.wait_idle().await;

    assert_eq!(h.count("SELECT count(*) FROM shipments").await, 1);
    assert_eq!(
        h.count("SELECT count(*) FROM outbox WHERE event_type = 'shipment.created'")
            .await,
        1
    );
    assert_eq!(h.partner_shipments(event.order_id).await, 1);
}

#[tokio::test]
async fn with_a_flaky_partner_every_one_of_100_orders_is_shipped_exactly_once() {
    let faults = Faults {
        error_rate: 0.5,
        rate_limit_rate: 0.1,
        retry_after_s: 1,
        hang_rate: 0.05,
        hang_ms: 2_000,
        latency_ms: 20,
        seed: Some(7),
    };
    let h = harness(faults).await;
    let mut events = Vec::new();
    for _ in 0..100 {
        events.push(h.paid_order().await);
    }
    h.send(&events.iter().collect::<Vec<_>>()).await;
    h.wait_for(
        "100 shipments",
        "SELECT count(*) FROM shipments",
        100,
        Duration::from_secs(120),
    )
    .await;
    h.wait_idle().await;

    assert_eq!(
        h.count("SELECT count(*) FROM orders WHERE status = 'shipped'")
            .await,
        100
    );
    assert_eq!(
        h.count("SELECT count(*) FROM outbox WHERE event_type = 'shipment.failed'")
            .await,
        0
    );
    for event in &events {
        assert_eq!(
            h.partner_shipments(event.order_id).await,
            1,
            "order {}",
            event.order_id
        );
    }
}
