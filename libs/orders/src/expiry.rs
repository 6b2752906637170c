//! Expiry: an order not paid within the configured time is cancelled as `expired`.
//!
//! [`expire_due`] claims due orders with `FOR NO KEY UPDATE SKIP LOCKED`, so several sweepers
//! (relay processes, overlapping scheduled Lambda runs) share the work without waiting on each
//! other, and an order the billing worker holds locked while it charges is skipped and looked at
//! again by a later sweep. Each claimed order goes through [`crate::cancel::cancel_locked`] in the
//! same transaction, which an order can pass only once: no order is cancelled twice.

use std::time::Duration;

use domain::{CancelReason, OrderStatus};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{OrdersError, cancel};

/// The correlation id of the events the sweeper emits.
pub const CORRELATION_ID: &str = "order-expiry";

/// Cancels, as `expired`, at most `batch` unpaid orders placed longer than `after` ago, in one
/// transaction; returns the ids cancelled (empty when none were due or all were locked).
///
/// # Errors
/// [`OrdersError`] when a statement fails (nothing is cancelled then).
pub async fn expire_due(
    pool: &PgPool,
    after: Duration,
    batch: i64,
) -> Result<Vec<Uuid>, OrdersError> {
    let mut tx = pool.begin().await?;
    let due: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT id, status FROM orders
         WHERE status IN ('placed', 'invoiced') AND cancel_reason IS NULL
           AND created_at < now() - make_interval(secs => $1)
         ORDER BY created_at
         LIMIT $2
         FOR NO KEY UPDATE SKIP LOCKED",
    )
    .bind(after.as_secs_f64())
    .bind(batch)
    .fetch_all(&mut *tx)
    .await?;
    let origin = cancel::Origin {
        reason: CancelReason::Expired,
        correlation_id: CORRELATION_ID,
        traceparent: "",
    };
    let mut expired = Vec::with_capacity(due.len());
    for (order_id, status) in due {
        let status: OrderStatus = status.parse()?;
        if cancel::cancel_locked(&mut tx, order_id, status, &origin).await?
            == cancel::Cancellation::Cancelled
        {
            expired.push(order_id);
        }
    }
    tx.commit().await?;
    Ok(expired)
}
