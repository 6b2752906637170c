//! `order cancel`: an operator cancels an order through `orders::cancel` with reason
//! `operator`, under the rules the shopper's cancel button follows: an unpaid order ends
//! `cancelled` with its stock released; a paid one is refunded by billing (it stays `paid` until
//! then); a shipped or ended one cannot be cancelled. Either cancellation writes
//! `order.cancelled` to the outbox in the same transaction, with the correlation id
//! `admin-<uuid>`. A second cancellation changes nothing.
//!
//! Without `--yes` it only reads the order and says which of these would happen.

use ::orders::{Cancellation, OrdersError, Origin, read};
use domain::{CancelReason, OrderStatus};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::AdminError;

/// What the cancellation did (or would do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The unpaid order is `cancelled`, its stock released.
    Cancelled,
    /// The paid order will be refunded by billing.
    RefundRequested,
    /// A cancellation had been accepted before: nothing changed.
    AlreadyCancelled,
}

/// The report of `order cancel`.
#[derive(Debug, Serialize)]
pub struct CancelReport {
    /// The order.
    pub order_id: Uuid,
    /// Nothing was changed (no `--yes`).
    pub dry_run: bool,
    /// Its status before the cancellation.
    pub status: OrderStatus,
    /// What happened (or would).
    pub outcome: Outcome,
    /// The cancellation's reason: `operator`, or the earlier one when it was already cancelled.
    pub reason: CancelReason,
    /// The correlation id of the `order.cancelled` event written; `None` when none was.
    pub correlation_id: Option<String>,
}

/// Cancels the order, or only says what would happen when `dry_run`.
///
/// # Errors
/// [`AdminError::UnknownOrder`]; [`AdminError::NotCancellable`] when it is shipped or ended
/// (nothing is written); [`AdminError::Orders`] or [`AdminError::Database`] when a statement
/// fails.
pub async fn cancel(
    pool: &PgPool,
    order_id: Uuid,
    dry_run: bool,
) -> Result<CancelReport, AdminError> {
    if dry_run {
        plan(pool, order_id).await
    } else {
        apply(pool, order_id).await
    }
}

/// What [`apply`] would do, read without a lock.
async fn plan(pool: &PgPool, order_id: Uuid) -> Result<CancelReport, AdminError> {
    let order = read::find_by_id(pool, order_id)
        .await?
        .ok_or(AdminError::UnknownOrder(order_id))?;
    let status: OrderStatus = order.status.parse().map_err(OrdersError::from)?;
    let earlier: Option<CancelReason> = order
        .cancel_reason
        .map(|r| r.parse())
        .transpose()
        .map_err(OrdersError::from)?;
    report(order_id, status, predict(status, earlier), Ran::DryRun)
}

/// Whether the cancellation ran, and under which correlation id.
enum Ran {
    DryRun,
    InTransaction(String),
}

/// What `orders::cancel` does to an order in `status` with the `earlier` cancellation, if any.
fn predict(status: OrderStatus, earlier: Option<CancelReason>) -> Cancellation {
    match earlier {
        Some(reason) => Cancellation::AlreadyCancelled(reason),
        None if !status.is_cancellable() => Cancellation::NotCancellable(status),
        None if status == OrderStatus::Paid => Cancellation::RefundRequested,
        None => Cancellation::Cancelled,
    }
}

/// Cancels in one transaction, committed only when the order was cancelled.
async fn apply(pool: &PgPool, order_id: Uuid) -> Result<CancelReport, AdminError> {
    let correlation_id = format!("admin-{}", Uuid::new_v4());
    let origin = Origin {
        reason: CancelReason::Operator,
        correlation_id: &correlation_id,
        traceparent: "",
    };
    let mut tx = pool.begin().await?;
    let status = ::orders::lock_status(&mut tx, order_id)
        .await?
        .ok_or(AdminError::UnknownOrder(order_id))?;
    let cancellation = ::orders::cancel(&mut tx, order_id, &origin)
        .await?
        .ok_or(AdminError::UnknownOrder(order_id))?;
    if matches!(
        cancellation,
        Cancellation::Cancelled | Cancellation::RefundRequested
    ) {
        tx.commit().await?;
    } else {
        tx.rollback().await?;
    }
    report(
        order_id,
        status,
        cancellation,
        Ran::InTransaction(correlation_id),
    )
}

fn report(
    order_id: Uuid,
    status: OrderStatus,
    cancellation: Cancellation,
    ran: Ran,
) -> Result<CancelReport, AdminError> {
    let (outcome, reason) = match cancellation {
        Cancellation::Cancelled => (Outcome::Cancelled, CancelReason::Operator),
        Cancellation::RefundRequested => (Outcome::RefundRequested, CancelReason::Operator),
        Cancellation::AlreadyCancelled(reason) => (Outcome::AlreadyCancelled, reason),
        Cancellation::NotCancellable(status) => {
            return Err(AdminError::NotCancellable { order_id, status });
        }
    };
    let (dry_run, correlation_id) = match ran {
        Ran::DryRun => (true, None),
        Ran::InTransaction(_) if outcome == Outcome::AlreadyCancelled => (false, None),
        Ran::InTransaction(id) => (false, Some(id)),
    };
    Ok(CancelReport {
        order_id,
        dry_run,
        status,
        outcome,
        reason,
        correlation_id,
    })
}

/// The report as one line.
pub fn render(report: &CancelReport) -> String {
    let (id, status) = (report.order_id, report.status);
    let correlation = report.correlation_id.as_deref().unwrap_or_default();
    let line = match (report.dry_run, report.outcome) {
        (_, Outcome::AlreadyCancelled) => format!(
            "order {id} was already cancelled (reason {}, status {status}): nothing changed",
            report.reason
        ),
        (true, Outcome::Cancelled) => format!(
            "dry run: would cancel order {id} ({status}, not paid): it ends cancelled, its stock \
             is released and order.cancelled is emitted (add --yes to cancel)"
        ),
        (true, Outcome::RefundRequested) => format!(
            "dry run: would cancel order {id} (paid): billing refunds the payment, then the order \
             ends refunded and its stock is released (add --yes to cancel)"
        ),
        (false, Outcome::Cancelled) => format!(
            "cancelled order {id} (was {status}): its stock is released and order.cancelled is in \
             the outbox (correlation id {correlation})"
        ),
        (false, Outcome::RefundRequested) => format!(
            "cancelled order {id} (paid): billing refunds the payment; the order stays paid until \
             then (correlation id {correlation})"
        ),
    };
    line + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpaid_orders_are_cancelled_paid_ones_refunded_and_shipped_ones_refused() {
        use OrderStatus::*;
        assert_eq!(predict(Placed, None), Cancellation::Cancelled);
        assert_eq!(predict(Invoiced, None), Cancellation::Cancelled);
        assert_eq!(predict(Paid, None), Cancellation::RefundRequested);
        assert_eq!(
            predict(Shipped, None),
            Cancellation::NotCancellable(Shipped)
        );
        assert_eq!(
            predict(Refunded, Some(CancelReason::Shopper)),
            Cancellation::AlreadyCancelled(CancelReason::Shopper)
        );
    }

    #[test]
    fn a_shipped_order_is_one_clear_error() {
        let order_id = Uuid::nil();
        let shipped = predict(OrderStatus::Shipped, None);
        let refused = report(order_id, OrderStatus::Shipped, shipped, Ran::DryRun);
        assert_eq!(
            crate::one_line(&refused.expect_err("refused")),
            format!("order {order_id} cannot be cancelled: it is shipped")
        );
    }
}
