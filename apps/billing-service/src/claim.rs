//! Claims on an order's payment: which event's handling may call Stripe about it, and until when.
//!
//! Billing holds no lock and no transaction while it waits on Stripe. What keeps two handlings
//! from working on the same payment at once — a charge and a cancellation's refund, say — is the
//! claim, two columns of the order's `payments` row written in short transactions:
//! `claim_event`, the event whose handling may call Stripe about the payment, and
//! `claimed_until`, when its claim ends by itself.
//!
//! - A handling takes the claim before its first Stripe call ([`start_charge`] for the charge,
//!   which also starts the attempt; [`claim`] for the cancellation and the refunds) and gives it
//!   up in its closing transaction ([`release`]), with the inbox row and the result.
//! - Another event's handling that finds an unexpired claim fails retryably
//!   ([`crate::BillingError::PaymentBusy`]) and comes back through the queue.
//! - A redelivery of the same event takes its own event's claim over at once: the message came
//!   back, so its earlier delivery died, was abandoned at the handler timeout or lost its message
//!   (the poller renews a message's visibility while its handler runs). Should two deliveries of
//!   one event ever overlap — SQS losing a visibility renewal — their Stripe calls carry the same
//!   idempotency keys, which Stripe answers with the same objects.
//! - A claim lasts the worker's handler timeout (`APP__WORKER__HANDLER_TIMEOUT_S`,
//!   [`crate::BillingHandler::with_claim_lease`]): by then the runtime has abandoned the handling
//!   that took it, so a claim left by a killed worker never blocks another event for longer.
//!
//! Claims change only these two columns, which the order page does not show: they notify no
//! open order stream (the `payments` trigger fires on the shown columns).
//!
//! Why a claim in the row rather than a lock: a row lock lives as long as a transaction, and so
//! holds a pooled connection and blocks the shopper's cancellation for as long as Stripe takes;
//! a session advisory lock would hold the connection too. A charge's claim is taken in the
//! statement that reads the order ([`start_charge`]), the others' in one statement ([`claim`]);
//! giving it up is one statement in the closing transaction ([`release`]), or for a charge whose
//! result is recorded part of the statement that records it
//! (`orders::payments::apply_claimed_outcome`).

use std::time::Duration;

use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use domain::Consumer;

use crate::store::{OrderState, PaymentRow};

/// The order's charge as [`start_charge`] found it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Attempt {
    /// The payments row, now claimed by the event.
    #[sqlx(flatten)]
    pub payment: PaymentRow,
    /// Whether an earlier delivery of the event had started it (it may have created a
    /// PaymentIntent without recording its id).
    pub resumed: bool,
}

/// How [`start_charge`] found the order, and the attempt it claimed.
#[derive(Debug, Clone)]
pub struct Start {
    /// The order as billing reads it (its row was locked for the statement).
    pub order: OrderState,
    /// The claimed attempt; `None` when nothing was claimed: the event is handled, the order is
    /// not `invoiced` or has no payment method, or another event holds an unexpired claim.
    pub attempt: Option<Attempt>,
}

/// The row of [`start_charge`]'s statement (the payment's columns are null when nothing was
/// claimed).
#[derive(sqlx::FromRow)]
struct StartRow {
    order_status: String,
    cancel_requested: bool,
    payment_method: Option<String>,
    handled: bool,
    payment_intent_id: Option<String>,
    status: Option<String>,
    refund_id: Option<String>,
    amount_minor: Option<i64>,
    currency: Option<String>,
    claim_event: Option<Uuid>,
    resumed: Option<bool>,
}

/// Step 1 of a charge in one statement (one round trip, no transaction around it): locks the
/// order's row and reads it as [`crate::store::read_order`] does; when the event is not handled
/// and the order is `invoiced` with a payment method, starts the order's charge claimed by
/// `event_id` for `lease`: inserts its `pending` payments row, or claims the row an earlier
/// delivery of the event left (or one whose claim expired) — not one another event's handling
/// holds an unexpired claim on. The lock is held to the statement's commit, so a cancellation
/// comes before it (and nothing is claimed) or after it (and finds the claim). `None` when
/// there is no such order.
///
/// # Errors
/// [`orders::OrdersError`] when the statement fails or the stored status is unknown.
#[tracing::instrument(level = "debug", name = "billing.start_charge", skip_all, fields(db.system.name = "postgresql"))]
pub async fn start_charge<'e>(
    conn: impl PgExecutor<'e>,
    order_id: Uuid,
    amount_minor: i64,
    currency: &str,
    event_id: Uuid,
    lease: Duration,
) -> Result<Option<Start>, orders::OrdersError> {
    // `created_at` is the inserting statement's `now()`: earlier only for a row already there.
    let row: Option<StartRow> = sqlx::query_as(
        "WITH o AS (
             SELECT status, cancel_reason IS NOT NULL AS cancel_requested, payment_method,
                    EXISTS (SELECT 1 FROM inbox WHERE consumer = $6 AND event_id = $4) AS handled
             FROM orders WHERE id = $1 FOR NO KEY UPDATE
         ), claimed AS (
             INSERT INTO payments AS p (order_id, amount_minor, currency, claim_event, claimed_until)
             SELECT $1, $2, $3, $4, now() + make_interval(secs => $5) FROM o
             WHERE NOT o.handled AND o.status = 'invoiced' AND o.payment_method IS NOT NULL
             ON CONFLICT (order_id) DO UPDATE
                 SET claim_event = EXCLUDED.claim_event, claimed_until = EXCLUDED.claimed_until
                 WHERE p.claim_event IS NULL OR p.claim_event = EXCLUDED.claim_event
                     OR p.claimed_until < now()
             RETURNING payment_intent_id, status, refund_id, amount_minor,
                 currency::text AS currency, claim_event, created_at < now() AS resumed
         )
         SELECT o.status AS order_status, o.cancel_requested, o.payment_method, o.handled,
                claimed.*
         FROM o LEFT JOIN claimed ON true",
    )
    .bind(order_id)
    .bind(amount_minor)
    .bind(currency)
    .bind(event_id)
    .bind(lease.as_secs_f64())
    .bind(Consumer::Billing.name())
    .fetch_optional(conn)
    .await?;
    row.map(StartRow::into_start).transpose()
}

impl StartRow {
    fn into_start(self) -> Result<Start, orders::OrdersError> {
        let order = OrderState {
            status: self.order_status.parse()?,
            cancel_requested: self.cancel_requested,
            payment_method: self.payment_method,
            handled: self.handled,
        };
        let attempt = self.status.map(|status| Attempt {
            payment: PaymentRow {
                payment_intent_id: self.payment_intent_id,
                status,
                refund_id: self.refund_id,
                amount_minor: self.amount_minor.unwrap_or_default(),
                currency: self.currency.unwrap_or_default(),
                claim_event: self.claim_event,
            },
            resumed: self.resumed.unwrap_or_default(),
        });
        Ok(Start { order, attempt })
    }
}

/// Claims the order's payment for `event_id` for `lease` when its status is one of `statuses`
/// and no other event's handling holds an unexpired claim on it; the payment, or `None` when it
/// was not claimed (see [`crate::store::payment`] for why).
#[tracing::instrument(level = "debug", name = "billing.claim", skip_all, fields(db.system.name = "postgresql"))]
pub async fn claim<'e>(
    conn: impl PgExecutor<'e>,
    order_id: Uuid,
    event_id: Uuid,
    statuses: &[&str],
    lease: Duration,
) -> sqlx::Result<Option<PaymentRow>> {
    sqlx::query_as(
        "UPDATE payments SET claim_event = $2, claimed_until = now() + make_interval(secs => $4)
         WHERE order_id = $1 AND status = ANY($3)
             AND (claim_event IS NULL OR claim_event = $2 OR claimed_until < now())
         RETURNING payment_intent_id, status, refund_id, amount_minor,
             currency::text AS currency, claim_event",
    )
    .bind(order_id)
    .bind(event_id)
    .bind(statuses)
    .bind(lease.as_secs_f64())
    .fetch_optional(conn)
    .await
}

/// Records, committed, the PaymentIntent Stripe created for the order under `event_id`'s
/// claim, and reads the order's status as it is now (only an order still `invoiced` gets its
/// intent confirmed). `None` when the claim is no longer the event's: nothing was written.
#[tracing::instrument(level = "debug", name = "billing.record_intent", skip_all, fields(db.system.name = "postgresql"))]
pub async fn record_intent<'e>(
    conn: impl PgExecutor<'e>,
    order_id: Uuid,
    event_id: Uuid,
    payment_intent_id: &str,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "UPDATE payments SET payment_intent_id = $3, updated_at = now()
         WHERE order_id = $1 AND claim_event = $2
         RETURNING (SELECT status FROM orders WHERE id = $1)",
    )
    .bind(order_id)
    .bind(event_id)
    .bind(payment_intent_id)
    .fetch_optional(conn)
    .await
}

/// Gives up `event_id`'s claim on the order's payment, in the transaction that ends the event's
/// handling (nothing happens when the event holds none).
#[tracing::instrument(level = "debug", name = "billing.release", skip_all, fields(db.system.name = "postgresql"))]
pub async fn release(conn: &mut PgConnection, order_id: Uuid, event_id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE payments SET claim_event = NULL, claimed_until = NULL
         WHERE order_id = $1 AND claim_event = $2",
    )
    .bind(order_id)
    .bind(event_id)
    .execute(conn)
    .await?;
    Ok(())
}
