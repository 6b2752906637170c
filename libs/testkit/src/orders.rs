//! Orders written straight into the tables, as checkout would have written them, for tests and
//! benchmarks of the workers that need no web-server.

use domain::{EventEnvelope, EventType};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::TestResult;

/// Writes an order of two units of demo product 1 for a new customer with a unique address at
/// `example.com`, and returns its `order.placed` envelope.
///
/// # Errors
/// When a statement fails (the schema's demo catalogue must be loaded).
pub async fn insert_order(pool: &PgPool) -> TestResult<EventEnvelope> {
    let order_id = Uuid::now_v7();
    write_order(pool, order_id).await?;
    order_placed(order_id)
}

/// Writes order `order_id` as [`insert_order`] does (for tests whose event exists before its
/// order).
///
/// # Errors
/// When a statement fails (the schema's demo catalogue must be loaded).
pub async fn write_order(pool: &PgPool, order_id: Uuid) -> TestResult<()> {
    let customer_id = Uuid::new_v4();
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO customers (id, email, name) VALUES ($1, $2, 'Ada Lovelace')")
        .bind(customer_id)
        .bind(format!("{}@example.com", customer_id.simple()))
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO orders (id, customer_id, owner_session, currency, subtotal_minor, payment_method,
                             ship_name, ship_line1, ship_city, ship_postal_code, ship_country, correlation_id)
         SELECT $1, $2, repeat('a', 64), currency, price_minor * 2, 'pm_card_visa',
                'Ada Lovelace', '12 Analytical Row', 'London', 'N1 7AA', 'GB', 'test'
         FROM products WHERE id = 1",
    )
    .bind(order_id)
    .bind(customer_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO order_items (order_id, line_no, product_id, sku, name, unit_price_minor, quantity)
         SELECT $1, 1, id, sku, name, price_minor, 2 FROM products WHERE id = 1",
    )
    .bind(order_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// An `order.placed` envelope for `order_id`, whether or not the order exists. The workers read
/// the order from the database; the payload is what checkout sends.
///
/// # Errors
/// Only if the payload cannot be encoded.
pub fn order_placed(order_id: Uuid) -> TestResult<EventEnvelope> {
    let payload = serde_json::json!({
        "customer_name": "Ada Lovelace",
        "customer_email": "ada@example.com",
        "shipping_address": {"line1": "12 Analytical Row", "city": "London", "postal_code": "N1 7AA", "country": "GB"},
        "lines": [],
        "currency": "EUR",
        "subtotal_minor": 0,
        "payment_method": "pm_card_visa"
    });
    Ok(EventEnvelope::new(
        EventType::OrderPlaced,
        order_id,
        "test",
        "",
        &payload,
    )?)
}

/// Sends raw bodies to `queue_url`, ten per call, each body in its own message group.
///
/// # Errors
/// When SQS refuses a call or an entry.
pub async fn send_bodies(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    bodies: &[String],
) -> TestResult<()> {
    for chunk in bodies.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, body)| {
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(format!("m{i}"))
                    .message_body(body)
                    .message_group_id(Uuid::new_v4().to_string())
                    .message_deduplication_id(Uuid::new_v4().to_string())
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = client
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await?;
        if !out.failed.is_empty() {
            return Err(format!("SQS refused entries: {:?}", out.failed).into());
        }
    }
    Ok(())
}

/// Locks the order's row in a transaction of its own (`FOR UPDATE`), so that a worker reaching
/// that order waits inside its transaction until the returned transaction is rolled back or
/// dropped: a handler that hangs, or one that times out and is retried.
///
/// # Errors
/// When the statement fails.
pub async fn lock_order(
    pool: &PgPool,
    order_id: Uuid,
) -> TestResult<Transaction<'static, Postgres>> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT 1 FROM orders WHERE id = $1 FOR UPDATE")
        .bind(order_id)
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// The order's status and cancel reason.
///
/// # Panics
/// When the order does not exist or the query fails.
pub async fn order_state(pool: &PgPool, order_id: Uuid) -> (String, Option<String>) {
    sqlx::query_as("SELECT status, cancel_reason FROM orders WHERE id = $1")
        .bind(order_id)
        .fetch_one(pool)
        .await
        .expect("the order exists")
}

/// How many outbox rows of type `event_type` the order has.
///
/// # Panics
/// When the query fails.
pub async fn outbox_events(pool: &PgPool, order_id: Uuid, event_type: EventType) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE aggregate_id = $1 AND event_type = $2")
        .bind(order_id)
        .bind(event_type.as_str())
        .fetch_one(pool)
        .await
        .expect("count outbox rows")
}
