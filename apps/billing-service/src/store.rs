//! The billing-service's SQL: the order's `payments` row as billing sees it.
//!
//! [`start_attempt`] and [`record_intent`] commit on their own (not in the handler's
//! transaction): the fact that a PaymentIntent is being created, and its id, must survive a crash
//! of this process, or a retry would create a second one. Every end of a payment billing writes
//! itself — refused before an intent existed, refunded, cancelled at Stripe — goes through the
//! handler's transaction, with the order's change and the event announcing it.

use sqlx::{PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

/// The payment row of an order as billing left it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PaymentRow {
    /// The PaymentIntent, once Stripe returned it.
    pub payment_intent_id: Option<String>,
    /// `pending`, `succeeded`, `failed`, `refunded` or `cancelled`.
    pub status: String,
    /// The refund, once made.
    pub refund_id: Option<String>,
    /// Amount in minor units.
    pub amount_minor: i64,
    /// Currency code.
    pub currency: String,
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
        "SELECT payment_intent_id, status, refund_id, amount_minor, currency::text AS currency
         FROM payments WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_optional(conn)
    .await
}

/// Records, committed, that a PaymentIntent is about to be created for the order.
pub async fn start_attempt(
    pool: &PgPool,
    order_id: Uuid,
    amount_minor: i64,
    currency: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO payments (order_id, amount_minor, currency) VALUES ($1, $2, $3)
         ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(order_id)
    .bind(amount_minor)
    .bind(currency)
    .execute(pool)
    .await?;
    Ok(())
}

/// Records, committed, the PaymentIntent Stripe created for the order.
pub async fn record_intent(
    pool: &PgPool,
    order_id: Uuid,
    payment_intent_id: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE payments SET payment_intent_id = $2, updated_at = now() WHERE order_id = $1",
    )
    .bind(order_id)
    .bind(payment_intent_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// The payment method chosen at checkout.
pub async fn payment_method(
    conn: &mut PgConnection,
    order_id: Uuid,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT payment_method FROM orders WHERE id = $1")
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
