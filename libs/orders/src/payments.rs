//! A payment's outcome applied to the order — by the billing worker after it confirmed the
//! PaymentIntent, or by the Stripe webhook when Stripe's word arrives first. Both go through
//! [`apply_outcome`]: the order's row lock serialises them, the state machine lets only the
//! first one move the order, and the second finds nothing to do.

use domain::{Currency, EventEnvelope, EventType, OrderStatus, PaymentFailed, PaymentSucceeded};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    OrdersError,
    lifecycle::{self as orders, Transition},
};

/// What Stripe said about an order's PaymentIntent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentOutcome {
    /// The amount was captured.
    Succeeded {
        /// The PaymentIntent.
        payment_intent_id: String,
        /// The amount captured, in minor units.
        amount_minor: i64,
        /// Its currency.
        currency: Currency,
    },
    /// The card was declined; nothing was charged.
    Failed {
        /// The PaymentIntent.
        payment_intent_id: String,
        /// Why, fit to show the shopper (never card data).
        reason: String,
        /// The amount attempted, in minor units.
        amount_minor: i64,
        /// Its currency.
        currency: Currency,
    },
}

/// What [`apply_outcome`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The order moved and the event was emitted.
    Moved(OrderStatus),
    /// The order was already past this point (the other path got there first): nothing written.
    AlreadyDone(OrderStatus),
}

/// Why an outcome could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// No such order.
    #[error("order {0} does not exist")]
    OrderNotFound(Uuid),
    /// A write failed or the event could not be encoded.
    #[error("the payment outcome could not be recorded")]
    Store(#[from] OrdersError),
}

/// Applies `outcome` to the order inside the caller's transaction: payment row, status
/// (`invoiced → paid` or `invoiced → payment_failed` with the stock released), timeline entry
/// and outbox event. An order no longer `invoiced` (cancelled meanwhile, for instance) is left
/// alone: billing's `order.cancelled` handling settles a payment that arrives after the end.
///
/// # Errors
/// [`ApplyError`] when the order does not exist or a write fails.
pub async fn apply_outcome(
    conn: &mut PgConnection,
    order_id: Uuid,
    outcome: &PaymentOutcome,
    correlation_id: &str,
    traceparent: &str,
) -> Result<Applied, ApplyError> {
    let (applied, _) = apply(conn, order_id, outcome, None, correlation_id, traceparent).await?;
    Ok(applied)
}

/// [`apply_outcome`] by the handling that holds the payment's claim `claim` (the billing
/// worker's charge): the statement that records the outcome also gives the claim up. With the
/// result, `true` when it did; `false` when the order had moved on and nothing was recorded
/// (the caller gives the claim up itself).
///
/// # Errors
/// As [`apply_outcome`].
pub async fn apply_claimed_outcome(
    conn: &mut PgConnection,
    order_id: Uuid,
    outcome: &PaymentOutcome,
    claim: Uuid,
    correlation_id: &str,
    traceparent: &str,
) -> Result<(Applied, bool), ApplyError> {
    apply(
        conn,
        order_id,
        outcome,
        Some(claim),
        correlation_id,
        traceparent,
    )
    .await
}

/// [`apply_claimed_outcome`], the claim optional: whether the outcome was recorded (and any
/// claim `claim` holds given up with it).
#[tracing::instrument(level = "debug", name = "orders.apply_payment_outcome", skip_all, fields(db.system.name = "postgresql"))]
async fn apply(
    conn: &mut PgConnection,
    order_id: Uuid,
    outcome: &PaymentOutcome,
    claim: Option<Uuid>,
    correlation_id: &str,
    traceparent: &str,
) -> Result<(Applied, bool), ApplyError> {
    let status = orders::lock_status(conn, order_id)
        .await?
        .ok_or(ApplyError::OrderNotFound(order_id))?;
    let to = match outcome {
        PaymentOutcome::Succeeded { .. } => OrderStatus::Paid,
        PaymentOutcome::Failed { .. } => OrderStatus::PaymentFailed,
    };
    if status.transition(to).is_err() {
        return Ok((Applied::AlreadyDone(status), false));
    }
    record_payment(conn, order_id, outcome, claim).await?;
    let envelope =
        envelope(order_id, outcome, correlation_id, traceparent).map_err(OrdersError::from)?;
    let detail = match outcome {
        PaymentOutcome::Succeeded {
            payment_intent_id,
            amount_minor,
            ..
        } => {
            serde_json::json!({"payment_intent_id": payment_intent_id, "amount_minor": amount_minor})
        }
        PaymentOutcome::Failed { reason, .. } => serde_json::json!({"reason": reason}),
    };
    if let Transition::Rejected(_) = orders::advance(conn, status, to, &envelope, detail).await? {
        return Ok((Applied::AlreadyDone(status), true));
    }
    if to == OrderStatus::PaymentFailed {
        orders::release_stock(conn, order_id).await?;
    }
    Ok((Applied::Moved(to), true))
}

fn envelope(
    order_id: Uuid,
    outcome: &PaymentOutcome,
    correlation_id: &str,
    traceparent: &str,
) -> Result<EventEnvelope, serde_json::Error> {
    match outcome {
        PaymentOutcome::Succeeded {
            payment_intent_id,
            amount_minor,
            currency,
        } => {
            let payload = PaymentSucceeded {
                payment_intent_id: payment_intent_id.clone(),
                amount_minor: *amount_minor,
                currency: *currency,
            };
            EventEnvelope::new(
                EventType::PaymentSucceeded,
                order_id,
                correlation_id,
                traceparent,
                &payload,
            )
        }
        PaymentOutcome::Failed {
            reason,
            amount_minor,
            currency,
            ..
        } => {
            let payload = PaymentFailed {
                reason: reason.clone(),
                amount_minor: *amount_minor,
                currency: *currency,
            };
            EventEnvelope::new(
                EventType::PaymentFailed,
                order_id,
                correlation_id,
                traceparent,
                &payload,
            )
        }
    }
}

/// Writes the payment row's final state (inserting it if the worker never got to), and gives
/// up the payment's claim if `claim` holds it (the billing worker's claim columns; `None`
/// leaves any claim alone).
async fn record_payment(
    conn: &mut PgConnection,
    order_id: Uuid,
    outcome: &PaymentOutcome,
    claim: Option<Uuid>,
) -> Result<(), OrdersError> {
    let (intent, status, reason, amount, currency) = match outcome {
        PaymentOutcome::Succeeded {
            payment_intent_id,
            amount_minor,
            currency,
        } => (payment_intent_id, "succeeded", None, amount_minor, currency),
        PaymentOutcome::Failed {
            payment_intent_id,
            reason,
            amount_minor,
            currency,
        } => (
            payment_intent_id,
            "failed",
            Some(reason),
            amount_minor,
            currency,
        ),
    };
    sqlx::query(
        "INSERT INTO payments (order_id, payment_intent_id, amount_minor, currency, status, failure_reason)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (order_id) DO UPDATE SET
             payment_intent_id = EXCLUDED.payment_intent_id, status = EXCLUDED.status,
             failure_reason = EXCLUDED.failure_reason, updated_at = now(),
             claim_event = CASE WHEN payments.claim_event = $7 THEN NULL
                                ELSE payments.claim_event END,
             claimed_until = CASE WHEN payments.claim_event = $7 THEN NULL
                                  ELSE payments.claimed_until END",
    )
    .bind(order_id)
    .bind(intent)
    .bind(amount)
    .bind(currency.as_str())
    .bind(status)
    .bind(reason)
    .bind(claim)
    .execute(conn)
    .await?;
    Ok(())
}
