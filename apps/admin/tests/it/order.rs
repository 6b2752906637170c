use uuid::Uuid;

use crate::helpers::{Harness, harness, insert_order};

/// The rows the workers would have written for a shipped order.
async fn ship(h: &Harness, order_id: Uuid) {
    let statements = [
        "UPDATE orders SET status = 'shipped' WHERE id = $1",
        "INSERT INTO order_timeline (event_id, order_id, event_type, occurred_at, detail) VALUES
             (gen_random_uuid(), $1, 'order.placed', now() - interval '3 minutes', '{}'),
             (gen_random_uuid(), $1, 'invoice.generated', now() - interval '2 minutes',
              '{\"invoice_number\": \"INV-2026-000042\", \"total_minor\": 4034}'),
             (gen_random_uuid(), $1, 'payment.succeeded', now() - interval '1 minute', '{}')",
        "INSERT INTO invoices (order_id, year, seq, number, issued_on, currency, subtotal_minor,
                               shipping_minor, tax_rate_bp, tax_minor, total_minor, pdf)
         VALUES ($1, 2026, 42, 'INV-2026-000042', current_date, 'EUR', 2900, 490, 1900, 644, 4034,
                 '\\x255044462d312e34'::bytea)",
        // Each event was processed by the worker it is routed to (and a few others: harmless).
        "INSERT INTO inbox (consumer, event_id)
         SELECT c.consumer, t.event_id FROM order_timeline t
         CROSS JOIN (VALUES ('invoice'), ('billing'), ('shipping')) AS c (consumer)
         WHERE t.order_id = $1",
        "INSERT INTO payments (order_id, payment_intent_id, amount_minor, currency, status)
         VALUES ($1, 'pi_admin_test', 4034, 'EUR', 'succeeded')",
        "INSERT INTO shipments (order_id, partner_shipment_id, carrier, tracking_number, tracking_url)
         VALUES ($1, 'shp_admin_test', 'DHL', '00340434161094042557', 'https://track.example/0034')",
        "INSERT INTO sent_emails (event_id, order_id, kind, message_id, status)
         VALUES (gen_random_uuid(), $1, 'order_confirmation', gen_random_uuid()::text || '@x', 'sent')",
    ];
    for sql in statements {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(order_id)
            .execute(&h.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

#[tokio::test]
async fn order_show_tells_state_timeline_payment_shipment_emails_and_invoice() {
    let h = harness().await;
    let order_id = Uuid::now_v7();
    insert_order(&h.pool, order_id).await;
    let placed = h.admin(&["order", "show", &order_id.to_string()]).await;
    let text = placed.ok();
    assert!(text.contains("status     placed\n"), "{text}");
    assert!(
        text.contains("waiting    its invoice (invoice worker)\n"),
        "{text}"
    );
    assert!(!text.contains("cancelled"), "not cancelled: {text}");
    assert!(text.contains("payment    none yet\n"), "{text}");
    assert!(text.contains("invoice    not issued yet\n"), "{text}");
    assert!(text.contains("MUG-ENAMEL"), "{text}");
    ship(&h, order_id).await;

    let shipped = h.admin(&["order", "show", &order_id.to_string()]).await;

    let text = shipped.ok();
    assert!(
        text.starts_with(&format!(
            "order      {order_id}\nreference  {}\nstatus     shipped\n",
            domain::order_reference(order_id)
        )),
        "{text}"
    );
    assert!(text.contains("subtotal   29.00 EUR\n"), "{text}");
    // Placed before quotes were stored: the quote shown is the invoice's.
    assert!(
        text.contains("quoted     40.34 EUR (shipping 4.90 EUR, tax 19% 6.44 EUR)\n"),
        "{text}"
    );
    assert!(
        text.contains("waiting    the partner's delivery notice\n"),
        "{text}"
    );
    assert!(
        text.contains("\npending\n  (nothing: every event was processed)\n"),
        "{text}"
    );
    assert!(text.contains("payment    succeeded, 40.34 EUR\n"), "{text}");
    assert!(
        text.contains("shipment   DHL 00340434161094042557 https://track.example/0034\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "invoice    INV-2026-000042, total 40.34 EUR (shipping 4.90 EUR, tax 6.44 EUR)"
        ),
        "{text}"
    );
    let placed_at = text
        .find("order.placed")
        .expect("order.placed in the timeline");
    let invoiced_at = text.find("invoice.generated").expect("invoice.generated");
    let paid_at = text.find("payment.succeeded").expect("payment.succeeded");
    assert!(
        placed_at < invoiced_at && invoiced_at < paid_at,
        "in order: {text}"
    );
    assert!(
        text.contains("invoice_number=INV-2026-000042 total_minor=4034"),
        "{text}"
    );
    assert!(text.contains("order_confirmation  sent"), "{text}");

    let json = h
        .admin(&["--json", "order", "show", &order_id.to_string()])
        .await
        .json();
    assert_eq!(json["order_id"], order_id.to_string());
    assert_eq!(json["status"], "shipped");
    assert_eq!(json["timeline"].as_array().map(Vec::len), Some(3));
    assert_eq!(json["emails"][0]["kind"], "order_confirmation");
    assert_eq!(json["invoice"]["number"], "INV-2026-000042");
    assert_eq!(json["shipment"]["tracking_number"], "00340434161094042557");
    assert_eq!(json["waiting_for"], "the partner's delivery notice");
    assert_eq!(json["pending"], serde_json::json!([]));
    assert_eq!(json["cancelled_at"], serde_json::Value::Null);
}

#[tokio::test]
async fn an_unknown_order_is_a_one_line_error() {
    let h = harness().await;
    let order_id = Uuid::now_v7();

    let run = h.admin(&["order", "show", &order_id.to_string()]).await;

    assert_eq!(
        run.error(),
        format!("error: order {order_id} does not exist")
    );
}
