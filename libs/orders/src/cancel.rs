//! Cancelling an order: by the shopper, an operator or the expiry sweeper, all through
//! [`cancel`] (or [`cancel_locked`] for a caller that already holds the row lock).
//!
//! An unpaid order (`placed`, `invoiced`) ends `cancelled` at once with its stock released; a
//! paid one keeps `paid` with its `cancel_reason` set until billing has refunded it (then
//! `refunded`, stock released there). Either way `order.cancelled` is emitted: billing cancels
//! any PaymentIntent that is not yet confirmed, or refunds one that was, so a cancellation that
//! races the billing worker never ends charged and not refunded; the shipping worker books
//! nothing for an order whose cancellation was accepted. A second cancellation changes nothing.

use domain::{CancelReason, EventEnvelope, EventType, OrderCancelled, OrderStatus};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{OrdersError, lifecycle};

/// What a cancellation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancellation {
    /// The unpaid order is now `cancelled`, its stock released.
    Cancelled,
    /// The paid order will be refunded by billing (it stays `paid` until then).
    RefundRequested,
    /// The order's cancellation had already been accepted (for this reason): nothing changed.
    AlreadyCancelled(CancelReason),
    /// The order is past the point where it can be cancelled (shipped, or ended otherwise).
    NotCancellable(OrderStatus),
}

/// Where a cancellation came from, for the event it emits.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// Who or what cancels.
    pub reason: CancelReason,
    /// The request (or job) that cancels: the event's correlation id.
    pub correlation_id: &'a str,
    /// W3C trace context of that request; empty for none.
    pub traceparent: &'a str,
}

/// Cancels the order inside the caller's transaction (see the module doc). `None` when there is
/// no such order.
///
/// # Errors
/// [`OrdersError`] when a statement fails.
pub async fn cancel(
    conn: &mut PgConnection,
    order_id: Uuid,
    origin: &Origin<'_>,
) -> Result<Option<Cancellation>, OrdersError> {
    let Some(locked) = lifecycle::lock(conn, order_id).await? else {
        return Ok(None);
    };
    if let Some(reason) = locked.cancel_reason {
        return Ok(Some(Cancellation::AlreadyCancelled(reason)));
    }
    cancel_locked(conn, order_id, locked.status, origin)
        .await
        .map(Some)
}

/// [`cancel`] for an order whose row the caller has locked and found in `status`, with no
/// cancellation accepted yet.
///
/// # Errors
/// [`OrdersError`] when a statement fails.
pub async fn cancel_locked(
    conn: &mut PgConnection,
    order_id: Uuid,
    status: OrderStatus,
    origin: &Origin<'_>,
) -> Result<Cancellation, OrdersError> {
    if !status.is_cancellable() {
        return Ok(Cancellation::NotCancellable(status));
    }
    let paid = status == OrderStatus::Paid;
    let to = if paid { status } else { OrderStatus::Cancelled };
    sqlx::query(
        "UPDATE orders SET status = $2, cancel_reason = $3, cancelled_at = now(), updated_at = now()
         WHERE id = $1",
    )
    .bind(order_id)
    .bind(to.as_str())
    .bind(origin.reason.as_str())
    .execute(&mut *conn)
    .await?;
    if !paid {
        lifecycle::release_stock(conn, order_id).await?;
    }
    let payload = OrderCancelled {
        reason: origin.reason,
        paid,
    };
    let envelope = EventEnvelope::new(
        EventType::OrderCancelled,
        order_id,
        origin.correlation_id,
        origin.traceparent,
        &payload,
    )?;
    let detail = serde_json::json!({"reason": origin.reason, "refund": paid});
    lifecycle::record_event(conn, &envelope, detail).await?;
    tracing::info!(order.id = %order_id, reason = %origin.reason, paid, "order cancelled");
    Ok(if paid {
        Cancellation::RefundRequested
    } else {
        Cancellation::Cancelled
    })
}
