//! The schema's value types (init.sql's domains, migration 20261208000001) hold the rules the
//! per-column CHECK constraints held: a bad value is refused with SQLSTATE 23514 whether a row
//! is inserted or only that column is updated, and a good one is written.

use sqlx::PgPool;
use uuid::Uuid;

/// An order with its invoice (with its PDF), payment, outbox and inbox rows, all valid.
async fn order_with_its_rows(pool: &PgPool) -> Uuid {
    let order_id = Uuid::now_v7();
    testkit::orders::write_order(pool, order_id).await.unwrap();
    let rows = [
        "INSERT INTO invoices (order_id, year, seq, number, issued_on, currency, subtotal_minor,
                               shipping_minor, tax_rate_bp, tax_minor, total_minor, pdf)
         VALUES ($1, 2026, 1, 'INV-2026-000001', current_date, 'EUR', 100, 0, 0, 0, 100,
                 '\\x255044462d312e37'::bytea)",
        "INSERT INTO payments (order_id, payment_intent_id, amount_minor, currency, status)
         VALUES ($1, 'pi_1', 100, 'EUR', 'pending')",
        "INSERT INTO outbox (event_id, event_type, aggregate_id, envelope)
         VALUES (gen_random_uuid(), 'order.placed', $1, '{}')",
        "INSERT INTO inbox (consumer, event_id) VALUES ('invoice', $1)",
    ];
    for sql in rows {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(order_id)
            .execute(pool)
            .await
            .unwrap();
    }
    order_id
}

/// The SQLSTATE `sql` (with the order id as `$1`) ends in; `None` when it succeeds.
async fn outcome(pool: &PgPool, sql: &str, order_id: Uuid) -> Option<String> {
    match sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(order_id)
        .execute(pool)
        .await
    {
        Ok(_) => None,
        Err(sqlx::Error::Database(db)) => db.code().map(|c| c.into_owned()),
        Err(other) => panic!("{sql}: not a database error: {other}"),
    }
}

#[tokio::test]
async fn every_value_type_refuses_a_bad_value_on_insert_and_on_update() {
    let url = testkit::fresh_database().await.unwrap();
    let pool = testkit::pool(&url, 2).await.unwrap();
    let order_id = order_with_its_rows(&pool).await;

    let refused = [
        "UPDATE orders SET status = 'lost' WHERE id = $1",
        "UPDATE orders SET cancel_reason = 'bored', cancelled_at = now() WHERE id = $1",
        "UPDATE orders SET currency = 'eur' WHERE id = $1",
        "UPDATE orders SET ship_country = 'G1' WHERE id = $1",
        "UPDATE orders SET payment_method = 'card_visa' WHERE id = $1",
        "UPDATE orders SET owner_session = 'abc' WHERE id = $1",
        "UPDATE orders SET subtotal_minor = -1 WHERE id = $1",
        "UPDATE products SET price_minor = -1 WHERE id = 1",
        "UPDATE products SET currency = 'Eur' WHERE id = 1",
        "UPDATE invoices SET pdf = '\\x00'::bytea WHERE order_id = $1",
        "UPDATE invoices SET number = 'INV-26-1' WHERE order_id = $1",
        "UPDATE invoices SET tax_minor = -1, total_minor = 99 WHERE order_id = $1",
        "UPDATE payments SET status = 'maybe' WHERE order_id = $1",
        "UPDATE payments SET payment_intent_id = 'ch_1' WHERE order_id = $1",
        "UPDATE payments SET refund_id = 'rf_1' WHERE order_id = $1",
        "UPDATE outbox SET event_type = 'Order.Placed' WHERE aggregate_id = $1",
        "INSERT INTO inbox (consumer, event_id) VALUES ('Invoice Service', $1)",
        "INSERT INTO outbox (event_id, event_type, aggregate_id, envelope)
         VALUES (gen_random_uuid(), 'placed', $1, '{}')",
        "INSERT INTO sent_emails (event_id, order_id, kind, message_id, status)
         VALUES (gen_random_uuid(), $1, 'Order Placed', 'a@b', 'sent')",
        "INSERT INTO sent_emails (event_id, order_id, kind, message_id, status)
         VALUES (gen_random_uuid(), $1, 'order_placed', 'c@d', 'bounced')",
        "INSERT INTO session_grants (owner_session, customer_id)
         SELECT 'not-a-hash', customer_id FROM orders WHERE id = $1",
    ];
    for sql in refused {
        assert_eq!(
            outcome(&pool, sql, order_id).await.as_deref(),
            Some("23514"),
            "refused as a check violation: {sql}"
        );
    }

    let accepted = [
        "UPDATE orders SET status = 'invoiced' WHERE id = $1",
        "UPDATE orders SET cancel_reason = 'shopper', cancelled_at = now() WHERE id = $1",
        "UPDATE payments SET status = 'refunded', refund_id = 're_1' WHERE order_id = $1",
        "INSERT INTO sent_emails (event_id, order_id, kind, message_id, status)
         VALUES (gen_random_uuid(), $1, 'order_placed', 'e@f', 'rejected')",
    ];
    for sql in accepted {
        assert_eq!(outcome(&pool, sql, order_id).await, None, "written: {sql}");
    }
    let status: String = sqlx::query_scalar("SELECT status FROM orders WHERE id = $1")
        .bind(order_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(status, "invoiced", "read back as text");
}
