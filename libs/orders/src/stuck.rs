//! Orders that wait too long, and what they wait for — for the operator (`chargeflow-admin
//! orders stuck`, `order show`) and the `chargeflow_orders_stuck` gauge.
//!
//! An order is *stuck* when it is not settled (still `placed`, `invoiced` or `paid`; `shipped`
//! counts as settled) and older than a limit. What it waits for is read from its own events:
//! every event recorded for the order is routed to consumers (`domain::route`); one that a
//! consumer other than e-mail has not processed yet (no inbox row) is a step the order waits on,
//! with whether the relay has published it yet and its last publish error.

use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::{Consumer, EventType, route};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::OrdersError;

/// An order that is not settled and older than the limit.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct StuckOrder {
    /// The order.
    pub order_id: Uuid,
    /// Its status.
    pub status: String,
    /// Why it is being cancelled, if a cancellation was accepted (a paid order waits for its
    /// refund then).
    pub cancel_reason: Option<String>,
    /// When it was placed.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// The non-settled orders placed more than `older_than` ago, oldest first (at most `limit`).
///
/// # Errors
/// [`OrdersError::Database`] when the query fails.
pub async fn stuck(
    pool: &PgPool,
    older_than: Duration,
    limit: i64,
) -> Result<Vec<StuckOrder>, OrdersError> {
    Ok(sqlx::query_as(
        "SELECT id AS order_id, status, cancel_reason, created_at, updated_at FROM orders
         WHERE status IN ('placed', 'invoiced', 'paid')
           AND created_at < now() - make_interval(secs => $1)
         ORDER BY created_at LIMIT $2",
    )
    .bind(older_than.as_secs_f64())
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// How many non-settled orders were placed more than `older_than` ago.
///
/// # Errors
/// [`OrdersError::Database`] when the query fails.
pub async fn count_stuck(pool: &PgPool, older_than: Duration) -> Result<i64, OrdersError> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM orders
         WHERE status IN ('placed', 'invoiced', 'paid')
           AND created_at < now() - make_interval(secs => $1)",
    )
    .bind(older_than.as_secs_f64())
    .fetch_one(pool)
    .await?)
}

/// One event of the order that a consumer has not processed yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingStep {
    /// The event.
    pub event_id: Uuid,
    /// Its type.
    pub event_type: EventType,
    /// The consumer (queue) that has not processed it.
    pub consumer: Consumer,
    /// When the event happened.
    pub occurred_at: DateTime<Utc>,
    /// When the relay published it; `None` while it waits in the outbox (or after the outbox
    /// row was purged, see `publish_error`).
    pub published_at: Option<DateTime<Utc>>,
    /// Whether the outbox row still exists (purged rows were published long ago).
    pub in_outbox: bool,
    /// The last publish error, while publishing fails.
    pub publish_error: Option<String>,
}

impl PendingStep {
    /// The step in plain words, such as `order.placed: published, not yet processed by invoice`.
    pub fn describe(&self) -> String {
        let state = match (self.in_outbox, self.published_at, &self.publish_error) {
            (true, None, Some(error)) => format!("not yet published (last error: {error})"),
            (true, None, None) => "waiting in the outbox to be published".to_owned(),
            _ => format!("published, not yet processed by {}", self.consumer),
        };
        format!("{}: {state}", self.event_type)
    }
}

#[derive(Clone, sqlx::FromRow)]
struct EventRow {
    event_id: Uuid,
    event_type: String,
    occurred_at: DateTime<Utc>,
    published_at: Option<DateTime<Utc>>,
    in_outbox: bool,
    last_error: Option<String>,
}

/// The order's events that a consumer (other than e-mail) has not processed yet, oldest first:
/// what the order is waiting on.
///
/// # Errors
/// [`OrdersError::Database`] when a query fails.
pub async fn pending_steps(pool: &PgPool, order_id: Uuid) -> Result<Vec<PendingStep>, OrdersError> {
    let events: Vec<EventRow> = sqlx::query_as(
        "SELECT t.event_id, t.event_type, t.occurred_at, o.published_at,
                o.id IS NOT NULL AS in_outbox, o.last_error
         FROM order_timeline t LEFT JOIN outbox o ON o.event_id = t.event_id
         WHERE t.order_id = $1 ORDER BY t.occurred_at, t.event_id",
    )
    .bind(order_id)
    .fetch_all(pool)
    .await?;
    let expected: Vec<(EventRow, EventType, Consumer)> = events
        .into_iter()
        .filter_map(|row| Some((row.event_type.parse::<EventType>().ok()?, row)))
        .flat_map(|(event_type, row)| {
            route(event_type)
                .iter()
                .filter(|c| **c != Consumer::Email)
                .map(move |c| (row.clone(), event_type, *c))
                .collect::<Vec<_>>()
        })
        .collect();
    let processed = processed(pool, &expected).await?;
    Ok(expected
        .into_iter()
        .filter(|(row, _, consumer)| {
            !processed.contains(&(consumer.name().to_owned(), row.event_id))
        })
        .map(|(row, event_type, consumer)| PendingStep {
            event_id: row.event_id,
            event_type,
            consumer,
            occurred_at: row.occurred_at,
            published_at: row.published_at,
            in_outbox: row.in_outbox,
            publish_error: row.last_error,
        })
        .collect())
}

/// Which of the `(consumer, event)` pairs have an inbox row.
async fn processed(
    pool: &PgPool,
    expected: &[(EventRow, EventType, Consumer)],
) -> Result<Vec<(String, Uuid)>, OrdersError> {
    let consumers: Vec<&str> = expected.iter().map(|(_, _, c)| c.name()).collect();
    let events: Vec<Uuid> = expected.iter().map(|(row, _, _)| row.event_id).collect();
    Ok(sqlx::query_as(
        "SELECT i.consumer, i.event_id FROM inbox i
         JOIN unnest($1::text[], $2::uuid[]) AS e(consumer, event_id)
           ON i.consumer = e.consumer AND i.event_id = e.event_id",
    )
    .bind(consumers)
    .bind(events)
    .fetch_all(pool)
    .await?)
}

/// What an order in `status` waits for, in plain words (whatever its events say).
pub fn waiting_for(status: &str, cancel_reason: Option<&str>) -> &'static str {
    match (status, cancel_reason) {
        ("placed", _) => "its invoice (invoice worker)",
        ("invoiced", _) => "its payment (billing worker, or Stripe's webhook)",
        ("paid", Some(_)) => "the refund of its cancelled payment (billing worker)",
        ("paid", None) => "its shipment (shipping worker and partner)",
        ("shipped", _) => "the partner's delivery notice",
        _ => "nothing: it has ended",
    }
}
