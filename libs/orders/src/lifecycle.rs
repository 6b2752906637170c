//! The order row under the state machine: the status read under a row lock, a transition applied
//! to it, the event it emits recorded for the timeline and the outbox, and stock put back — all
//! inside the caller's transaction, so a state change and its announcement commit together.

use domain::{CancelReason, EventEnvelope, OrderStatus, TransitionError};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::OrdersError;

/// The result of asking for a status change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// The order moved to the new status.
    Applied,
    /// The state machine refused; nothing was written. The caller decides what that means.
    Rejected(TransitionError),
}

/// An order row as read under its lock: what decides which transition may follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locked {
    /// Where the order is.
    pub status: OrderStatus,
    /// Why it is being cancelled, once a cancellation was accepted (a paid order then keeps
    /// `paid` until billing has refunded it).
    pub cancel_reason: Option<CancelReason>,
}

/// Locks the order's row until the transaction ends and returns its status and cancel reason,
/// or `None` when there is no such order. The lock (`FOR NO KEY UPDATE`) serialises everything
/// that changes the order's status or cancels it, but still lets other transactions insert rows
/// that reference the order.
///
/// # Errors
/// [`OrdersError`] when the statement fails or a stored value is unknown.
#[tracing::instrument(level = "debug", name = "orders.lock", skip_all, fields(db.system.name = "postgresql"))]
pub async fn lock(conn: &mut PgConnection, order_id: Uuid) -> Result<Option<Locked>, OrdersError> {
    let row: Option<(String, Option<String>)> =
        sqlx::query_as("SELECT status, cancel_reason FROM orders WHERE id = $1 FOR NO KEY UPDATE")
            .bind(order_id)
            .fetch_optional(conn)
            .await?;
    let Some((status, cancel_reason)) = row else {
        return Ok(None);
    };
    Ok(Some(Locked {
        status: status.parse()?,
        cancel_reason: cancel_reason.map(|r| r.parse()).transpose()?,
    }))
}

/// [`lock`], for a caller that needs only the status.
///
/// # Errors
/// [`OrdersError`] when the statement fails or a stored value is unknown.
#[tracing::instrument(level = "debug", name = "orders.lock_status", skip_all, fields(db.system.name = "postgresql"))]
pub async fn lock_status(
    conn: &mut PgConnection,
    order_id: Uuid,
) -> Result<Option<OrderStatus>, OrdersError> {
    Ok(lock(conn, order_id).await?.map(|locked| locked.status))
}

/// Moves a locked order from `from` to `to` if the state machine allows it; a refused move is
/// logged and not applied.
///
/// # Errors
/// [`OrdersError::Database`] when the update fails.
#[tracing::instrument(level = "debug", name = "orders.transition", skip_all, fields(db.system.name = "postgresql"))]
pub async fn transition(
    conn: &mut PgConnection,
    order_id: Uuid,
    from: OrderStatus,
    to: OrderStatus,
) -> Result<Transition, OrdersError> {
    if let Err(refused) = from.transition(to) {
        tracing::warn!(order.id = %order_id, from = %from, to = %to, "transition refused by the order state machine");
        return Ok(Transition::Rejected(refused));
    }
    sqlx::query("UPDATE orders SET status = $2, updated_at = now() WHERE id = $1 AND status = $3")
        .bind(order_id)
        .bind(to.as_str())
        .bind(from.as_str())
        .execute(conn)
        .await?;
    Ok(Transition::Applied)
}

/// Records an event: a timeline entry with `detail` for the order page, and the outbox row the
/// relay will publish, in one statement (the outbox row as `outbox::enqueue` writes it, under
/// the same per-order lock).
///
/// # Errors
/// [`OrdersError`] when a write fails (a duplicate event id, for instance).
#[tracing::instrument(level = "debug", name = "orders.record_event", skip_all, fields(db.system.name = "postgresql"))]
pub async fn record_event(
    conn: &mut PgConnection,
    event: &EventEnvelope,
    detail: serde_json::Value,
) -> Result<(), OrdersError> {
    bind_event(sqlx::query(RECORD_EVENT), event, detail)?
        .execute(conn)
        .await?;
    Ok(())
}

/// [`transition`] from `from` to `to` and [`record_event`] of `event` in one statement: a
/// locked order's state change and its announcement in one round trip. A move the state machine
/// refuses is logged and nothing is written.
///
/// # Errors
/// [`OrdersError`] when a write fails.
#[tracing::instrument(level = "debug", name = "orders.advance", skip_all, fields(db.system.name = "postgresql"))]
pub async fn advance(
    conn: &mut PgConnection,
    from: OrderStatus,
    to: OrderStatus,
    event: &EventEnvelope,
    detail: serde_json::Value,
) -> Result<Transition, OrdersError> {
    Ok(
        match write_move(conn, ADVANCE, from, to, event, detail).await? {
            Ok(_) => Transition::Applied,
            Err(refused) => Transition::Rejected(refused),
        },
    )
}

/// Moves the order from `from` to `to` if it is still in `from` and no cancellation of it has
/// been accepted, and only then records `event` (as [`record_event`]), in one statement: for a
/// caller that does not hold the order's lock (what it read may have changed since). `false`
/// when the order was no longer in `from` or is being cancelled (or the state machine refuses
/// the move, which is logged): nothing is written. A cancellation committing meanwhile is waited
/// for and then seen.
///
/// # Errors
/// [`OrdersError`] when a write fails.
#[tracing::instrument(level = "debug", name = "orders.advance_if", skip_all, fields(db.system.name = "postgresql"))]
pub async fn advance_if(
    conn: &mut PgConnection,
    from: OrderStatus,
    to: OrderStatus,
    event: &EventEnvelope,
    detail: serde_json::Value,
) -> Result<bool, OrdersError> {
    let written = write_move(conn, ADVANCE_IF, from, to, event, detail).await?;
    Ok(written == Ok(1))
}

/// Runs `statement` ([`ADVANCE`] or [`ADVANCE_IF`]) for a move from `from` to `to` with `event`:
/// the rows it wrote to the outbox, or the state machine's refusal (logged, nothing written).
async fn write_move(
    conn: &mut PgConnection,
    statement: &'static str,
    from: OrderStatus,
    to: OrderStatus,
    event: &EventEnvelope,
    detail: serde_json::Value,
) -> Result<Result<u64, TransitionError>, OrdersError> {
    if let Err(refused) = from.transition(to) {
        tracing::warn!(order.id = %event.order_id, from = %from, to = %to, error = %refused, "transition refused by the order state machine");
        return Ok(Err(refused));
    }
    let written = bind_event(sqlx::query(statement), event, detail)?
        .bind(to.as_str())
        .bind(from.as_str())
        .execute(conn)
        .await?;
    Ok(Ok(written.rows_affected()))
}

/// [`record_event`]'s statement: `$1`–`$6` as [`bind_event`] binds them.
const RECORD_EVENT: &str = "
    WITH order_lock AS (SELECT pg_advisory_xact_lock(hashtextextended($3::text, 0))),
         noted AS (
             INSERT INTO order_timeline (event_id, order_id, event_type, occurred_at, detail)
             VALUES ($1, $3, $2, $5, $6))
    INSERT INTO outbox (event_id, event_type, aggregate_id, envelope)
    SELECT $1, $2, $3, $4 FROM order_lock";

/// [`advance`]'s statement: [`RECORD_EVENT`]'s with the status update (`$7` to, `$8` from).
const ADVANCE: &str = "
    WITH moved AS (
             UPDATE orders SET status = $7, updated_at = now() WHERE id = $3 AND status = $8),
         order_lock AS (SELECT pg_advisory_xact_lock(hashtextextended($3::text, 0))),
         noted AS (
             INSERT INTO order_timeline (event_id, order_id, event_type, occurred_at, detail)
             VALUES ($1, $3, $2, $5, $6))
    INSERT INTO outbox (event_id, event_type, aggregate_id, envelope)
    SELECT $1, $2, $3, $4 FROM order_lock";

/// [`advance_if`]'s statement: [`ADVANCE`]'s, the move only without a cancellation accepted and
/// the event written only if the order moved.
const ADVANCE_IF: &str = "
    WITH moved AS (
             UPDATE orders SET status = $7, updated_at = now()
             WHERE id = $3 AND status = $8 AND cancel_reason IS NULL
             RETURNING id),
         order_lock AS (SELECT pg_advisory_xact_lock(hashtextextended($3::text, 0)) FROM moved),
         noted AS (
             INSERT INTO order_timeline (event_id, order_id, event_type, occurred_at, detail)
             SELECT $1, $3, $2, $5, $6 FROM moved)
    INSERT INTO outbox (event_id, event_type, aggregate_id, envelope)
    SELECT $1, $2, $3, $4 FROM order_lock";

/// Binds an event's `$1` id, `$2` type, `$3` order, `$4` envelope, `$5` time and `$6` timeline
/// detail.
fn bind_event<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    event: &EventEnvelope,
    detail: serde_json::Value,
) -> Result<sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>, OrdersError> {
    Ok(query
        .bind(event.event_id)
        .bind(event.event_type.as_str())
        .bind(event.order_id)
        .bind(serde_json::to_value(event)?)
        .bind(event.occurred_at)
        .bind(detail))
}

/// Puts the order's reserved units back on the shelf (payment failed, refunded, cancelled).
/// Call it in the same transaction as the transition to that end state, which can happen only
/// once, so stock is released at most once. Returns the number of lines released.
///
/// # Errors
/// [`OrdersError::Database`] when the update fails.
#[tracing::instrument(level = "debug", name = "orders.release_stock", skip_all, fields(db.system.name = "postgresql"))]
pub async fn release_stock(conn: &mut PgConnection, order_id: Uuid) -> Result<u64, OrdersError> {
    let released = sqlx::query(
        "UPDATE products p SET stock = p.stock + i.quantity, updated_at = now()
         FROM order_items i
         WHERE i.order_id = $1 AND p.id = i.product_id",
    )
    .bind(order_id)
    .execute(conn)
    .await?;
    Ok(released.rows_affected())
}
