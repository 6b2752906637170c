//! The billing-service's SQL, besides the claims ([`crate::claim`]): the order as billing reads it
//! before deciding, and the ends of a payment that billing writes itself — refused before an
//! intent existed, refunded, cancelled at Stripe — each in the transaction that ends the event's
//! handling, with the order's change and the event announcing it.

use domain::{Consumer, OrderStatus};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

/// The order as billing reads it before deciding what an event asks of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderState {
    /// Where the order is.
    pub status: OrderStatus,
    /// Whether a cancellation was accepted (a paid order keeps `paid` until it is refunded).
    pub cancel_requested: bool,
    /// The payment method chosen at checkout.
    pub payment_method: Option<String>,
    /// Whether billing has handled the event already (its inbox row exists): nothing runs again.
    pub handled: bool,
}

type OrderColumns = (String, bool, Option<String>, bool);

/// The order's [`OrderState`] for `event_id`, read without a lock, for a decision the closing
/// transaction checks again (the charge reads it under the lock: `claim::start_charge`); `None`
/// when there is no such order.
///
/// # Errors
/// [`orders::OrdersError`] when the statement fails or the stored status is unknown.
#[tracing::instrument(level = "debug", name = "billing.read_order", skip_all, fields(db.system.name = "postgresql"))]
pub async fn read_order<'e>(
    conn: impl PgExecutor<'e>,
    order_id: Uuid,
    event_id: Uuid,
) -> Result<Option<OrderState>, orders::OrdersError> {
    let row: Option<OrderColumns> = sqlx::query_as(
        "SELECT status, cancel_reason IS NOT NULL, payment_method,
             EXISTS (SELECT 1 FROM inbox WHERE consumer = $2 AND event_id = $3)
         FROM orders WHERE id = $1",
    )
    .bind(order_id)
    .bind(Consumer::Billing.name())
    .bind(event_id)
    .fetch_optional(conn)
    .await?;
    row.map(order_state).transpose()
}

fn order_state(
    (status, cancel_requested, payment_method, handled): OrderColumns,
) -> Result<OrderState, orders::OrdersError> {
    Ok(OrderState {
        status: status.parse()?,
        cancel_requested,
        payment_method,
        handled,
    })
}

/// The payment row of an order as billing left it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PaymentRow {
    /// The PaymentIntent, once Stripe returned it.
    pub payment_intent_id: Option<String>,
    /// `pending`, `requires_action`, `succeeded`, `failed`, `refunded` or `cancelled`.
    pub status: String,
    /// The refund, once made.
    pub refund_id: Option<String>,
    /// Amount in minor units.
    pub amount_minor: i64,
    /// Currency code.
    pub currency: String,
    /// The event whose handling holds the payment's claim, if any ([`crate::claim`]).
    pub claim_event: Option<Uuid>,
}

impl PaymentRow {
    /// Whether the payment has not reached an end yet (an attempt under way or interrupted).
    pub fn is_pending(&self) -> bool {
        self.status == "pending"
    }
}

/// The order's payment row, if any, through the pool or the handler's transaction.
pub async fn payment<'e>(
    conn: impl PgExecutor<'e>,
    order_id: Uuid,
) -> sqlx::Result<Option<PaymentRow>> {
    sqlx::query_as(
        "SELECT payment_intent_id, status, refund_id, amount_minor, currency::text AS currency,
             claim_event
         FROM payments WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_optional(conn)
    .await
}

/// Marks the attempt failed, with the shopper's reason, when Stripe refused it before any
/// PaymentIntent existed; in the handler's transaction.
pub async fn record_refused(
    conn: &mut PgConnection,
    order_id: Uuid,
    reason: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE payments SET status = 'failed', failure_reason = $2, updated_at = now()
         WHERE order_id = $1",
    )
    .bind(order_id)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks the `pending` payment `requires_action`: its PaymentIntent waits for the shopper's
/// 3-D Secure; in the handler's transaction. False when the payment had left `pending` already
/// (an earlier handling recorded it, or it ended): nothing was written.
pub async fn record_awaiting_action(
    conn: &mut PgConnection,
    order_id: Uuid,
    payment_intent_id: &str,
) -> sqlx::Result<bool> {
    let updated = sqlx::query(
        "UPDATE payments SET status = 'requires_action', payment_intent_id = $2, updated_at = now()
         WHERE order_id = $1 AND status = 'pending'",
    )
    .bind(order_id)
    .bind(payment_intent_id)
    .execute(conn)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Marks the payment of `payment_intent_id` refunded, in the handler's transaction.
pub async fn record_refund(
    conn: &mut PgConnection,
    order_id: Uuid,
    payment_intent_id: &str,
    refund_id: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE payments SET status = 'refunded', payment_intent_id = $2, refund_id = $3,
             updated_at = now()
         WHERE order_id = $1",
    )
    .bind(order_id)
    .bind(payment_intent_id)
    .bind(refund_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks the payment cancelled: its PaymentIntent was cancelled at Stripe (or found so) because
/// the order was cancelled before it was paid; in the handler's transaction.
pub async fn record_cancelled(
    conn: &mut PgConnection,
    order_id: Uuid,
    payment_intent_id: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE payments SET status = 'cancelled', payment_intent_id = $2, updated_at = now()
         WHERE order_id = $1",
    )
    .bind(order_id)
    .bind(payment_intent_id)
    .execute(conn)
    .await?;
    Ok(())
}
