//! The billing-service's handler: which event goes where, how its failures are sorted, how one
//! event runs without holding anything while Stripe works, and the refund that a failed shipment
//! and a cancelled paid order share.
//!
//! - `invoice.generated` → one charge for the invoice total, ending `paid` or `payment_failed`,
//!   or waiting for the shopper's 3-D Secure (`payment.action_required`) ([`crate::charge`]);
//! - `order.cancelled` → the PaymentIntent cancelled at Stripe, or the payment refunded
//!   ([`crate::cancellation`]);
//! - `shipment.failed` → the payment refunded: `paid → refunded`, stock released
//!   (`BillingHandler::refund_failed_shipment`, here).
//!
//! # One event, one connection at a time, none while Stripe works
//!
//! The worker runtime calls [`BillingHandler::run`](worker::Handler::run), which runs an event in
//! two parts. First everything up to the last Stripe call (`BillingHandler::prepare`): it reads
//! the order (and the inbox: an event handled before runs nothing again), claims the order's
//! payment ([`crate::claim`]) and records what must survive a crash (the attempt, the intent's
//! id), each database step one short transaction or statement of its own on the pool; it holds
//! no transaction, no row lock and no connection while it waits on Stripe. What it found out is
//! a `Closing`: the writes that end the event, made in one transaction that begins with the
//! inbox row ([`worker::begin_with_inbox`]), locks the order, checks again that they still fit,
//! and gives the claim up. So a message never holds more than one pooled connection, and a
//! shopper's cancellation never waits for Stripe.
//!
//! [`Handler::handle`] (a caller's transaction) runs the same two parts with the first on the
//! handler's own pool: a second connection while the caller's transaction is open. The runtime
//! does not use it.
//!
//! # Failures
//!
//! Failures are sorted by [`Classify`]. Permanent — parked in the DLQ at once — are only the
//! messages that can never be handled: an event billing does not take, an order that does not
//! exist, a refund of an order that was never charged, data PostgreSQL rejects. Everything Stripe
//! does (down, slow, our key refused, an intent in a state we did not expect) is retried with the
//! queue's growing delays and, if it persists, ends in the DLQ after the last receive while the
//! order is listed as stuck; so is a payment another event's handling has claimed. The shopper's
//! own payment failing is no failure at all: the order ends `payment_failed` and the handler
//! returns `Ok`.

use std::time::Duration;

use domain::{
    Consumer, Currency, Event, EventBody, EventEnvelope, EventType, OrderStatus, PaymentRefunded,
};
use orders::{Transition, payments::ApplyError};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;
use worker::{Classify, Failure, Handled, Handler, RunError};

use crate::{
    claim,
    gateway::{Gateway, GatewayError},
    store::{self, PaymentRow},
};

/// Why billing could not finish an event.
#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    /// The queue delivered an event this handler does not take.
    #[error("the billing service does not handle `{0}` events")]
    UnexpectedEvent(EventType),
    /// The event names an order that does not exist.
    #[error("order {0} does not exist")]
    OrderNotFound(Uuid),
    /// A refund was asked for an order without a captured payment.
    #[error("order {0} has no captured payment to refund")]
    NothingToRefund(Uuid),
    /// Stripe is still working on the payment (`processing`, or a state this version does not
    /// know): look again later.
    #[error("the PaymentIntent is still `{0}`")]
    StillProcessing(String),
    /// Another event's handling has claimed the order's payment and may be calling Stripe about
    /// it (or this handling's own claim ran out): look again later ([`crate::claim`]).
    #[error("the payment of order {0} is claimed by another event's handling")]
    PaymentBusy(Uuid),
    /// A Stripe call failed.
    #[error("Stripe call failed")]
    Gateway(#[from] GatewayError),
    /// A statement failed.
    #[error("billing statement failed")]
    Database(#[from] sqlx::Error),
    /// The order store or the outbox failed.
    #[error("order update failed")]
    Store(#[from] orders::OrdersError),
    /// Applying the payment outcome failed.
    #[error("the payment outcome could not be applied")]
    Apply(#[from] ApplyError),
    /// The emitted event could not be encoded.
    #[error("the billing event could not be encoded")]
    Encode(#[from] serde_json::Error),
}

impl Classify for BillingError {
    fn failure(&self) -> Failure {
        match self {
            BillingError::Gateway(e) => e.failure(),
            BillingError::StillProcessing(_) | BillingError::PaymentBusy(_) => Failure::Retryable,
            BillingError::Database(e) => e.failure(),
            BillingError::Store(e) => e.failure(),
            BillingError::Apply(e) => e.failure(),
            BillingError::UnexpectedEvent(_)
            | BillingError::OrderNotFound(_)
            | BillingError::NothingToRefund(_)
            | BillingError::Encode(_) => Failure::Permanent,
        }
    }
}

/// How long a claim on a payment lasts unless [`BillingHandler::with_claim_lease`] says
/// otherwise: the worker's default handler timeout.
pub const DEFAULT_CLAIM_LEASE: Duration = Duration::from_secs(30);

/// The billing-service's handler.
#[derive(Debug, Clone)]
pub struct BillingHandler {
    pub(crate) gateway: Gateway,
    pub(crate) pool: PgPool,
    pub(crate) claim_lease: Duration,
}

impl BillingHandler {
    /// A handler charging through `gateway`. `pool` serves [`Handler::handle`] only (the
    /// runtime's [`Handler::run`] works on the runtime's pool); claims last
    /// [`DEFAULT_CLAIM_LEASE`].
    pub fn new(gateway: Gateway, pool: PgPool) -> Self {
        BillingHandler {
            gateway,
            pool,
            claim_lease: DEFAULT_CLAIM_LEASE,
        }
    }

    /// The handler with claims on a payment lasting `lease`: give it the worker's handler
    /// timeout (`APP__WORKER__HANDLER_TIMEOUT_S`), after which the runtime has abandoned the
    /// handling that took a claim ([`crate::claim`]).
    pub fn with_claim_lease(mut self, lease: Duration) -> Self {
        self.claim_lease = lease;
        self
    }

    /// Everything of `event` up to its closing transaction (module doc), on `pool`.
    async fn prepare(&self, event: &Event, pool: &PgPool) -> Result<Closing, BillingError> {
        match &event.body {
            EventBody::InvoiceGenerated(invoice) => self.charge(event, invoice, pool).await,
            EventBody::OrderCancelled(cancelled) => {
                self.settle_cancellation(event, cancelled, pool).await
            }
            EventBody::ShipmentFailed(failed) => {
                self.refund_failed_shipment(event, &failed.reason, pool)
                    .await
            }
            other => Err(BillingError::UnexpectedEvent(other.event_type())),
        }
    }

    /// Writes what `closing` says in `tx`, the transaction that ends the event's handling, and
    /// gives up the event's claim on the payment.
    async fn close(
        &self,
        event: &Event,
        closing: Closing,
        tx: &mut PgConnection,
    ) -> Result<(), BillingError> {
        let mut claimed = closing.claimed();
        match closing {
            Closing::Duplicate | Closing::Nothing { .. } => {}
            Closing::Charged(outcome) => {
                // Given up with the payment's result when that was recorded.
                claimed &= !crate::charge::apply(tx, event, &outcome).await?;
            }
            Closing::AwaitingAction {
                payment_intent_id,
                invoice,
            } => crate::charge::await_action(tx, event, &payment_intent_id, &invoice).await?,
            Closing::RefusedBeforeIntent { reason, invoice } => {
                crate::charge::refused_before_intent(tx, event, &invoice, &reason).await?;
            }
            Closing::RefundedPaid { refund, reason } => {
                refunded_paid(tx, event, refund, &reason).await?;
            }
            Closing::RefundedCancelled(refund) => {
                crate::cancellation::refunded(tx, event, refund).await?;
            }
            Closing::IntentCancelled { payment_intent_id } => {
                store::record_cancelled(tx, event.order_id, &payment_intent_id).await?;
            }
        }
        if claimed {
            claim::release(tx, event.order_id, event.id).await?;
        }
        Ok(())
    }

    /// `shipment.failed`: a `paid` order is refunded in full, once; one in any other state is
    /// left alone.
    async fn refund_failed_shipment(
        &self,
        event: &Event,
        reason: &str,
        pool: &PgPool,
    ) -> Result<Closing, BillingError> {
        let order = read_order(pool, event).await?;
        if order.handled {
            return Ok(Closing::Duplicate);
        }
        if order.status.transition(OrderStatus::Refunded).is_err() {
            tracing::info!(status = %order.status, "not refunding an order in this state");
            return Ok(Closing::Nothing { claimed: false });
        }
        self.refund_paid(event, reason, pool).await
    }

    /// Refunds the order's captured payment at Stripe, once (the idempotency key from the event,
    /// and an existing refund reused), under the payment's claim; the closing transaction then
    /// moves the order `paid → refunded`, releases its stock and emits `payment.refunded` with
    /// `reason`.
    pub(crate) async fn refund_paid(
        &self,
        event: &Event,
        reason: &str,
        pool: &PgPool,
    ) -> Result<Closing, BillingError> {
        let order_id = event.order_id;
        let payment = self
            .claim(event, pool, &["succeeded", "refunded"])
            .await?
            .ok_or(BillingError::NothingToRefund(order_id))?;
        let refund = self.refund_at_stripe(event, payment).await?;
        Ok(Closing::RefundedPaid {
            refund,
            reason: reason.to_owned(),
        })
    }

    /// Refunds the payment's PaymentIntent at Stripe (once: the key comes from `event`, and an
    /// existing refund is reused).
    pub(crate) async fn refund_at_stripe(
        &self,
        event: &Event,
        payment: PaymentRow,
    ) -> Result<Refund, BillingError> {
        let payment_intent_id = payment
            .payment_intent_id
            .clone()
            .ok_or(BillingError::NothingToRefund(event.order_id))?;
        let refund_id = self
            .gateway
            .refund(&payment_intent_id, &format!("refund-{}", event.id))
            .await?;
        Ok(Refund {
            payment,
            payment_intent_id,
            refund_id,
        })
    }

    /// Claims the order's payment for `event` when its status is one of `statuses`: the payment,
    /// or `None` when there is none in such a state.
    ///
    /// # Errors
    /// [`BillingError::PaymentBusy`] when another event's handling holds its claim.
    pub(crate) async fn claim(
        &self,
        event: &Event,
        pool: &PgPool,
        statuses: &[&str],
    ) -> Result<Option<PaymentRow>, BillingError> {
        let order_id = event.order_id;
        let claimed = claim::claim(pool, order_id, event.id, statuses, self.claim_lease).await?;
        if claimed.is_some() {
            return Ok(claimed);
        }
        match store::payment(pool, order_id).await? {
            Some(payment) if statuses.contains(&payment.status.as_str()) => {
                tracing::info!(claimed_by = ?payment.claim_event, "the payment is claimed by another event's handling");
                Err(BillingError::PaymentBusy(order_id))
            }
            _ => Ok(None),
        }
    }
}

/// What is left to write once an event's Stripe calls are over: the writes that end its
/// handling, made in one transaction with the inbox row, after the order is locked and checked
/// again.
#[derive(Debug)]
pub(crate) enum Closing {
    /// Billing handled the event before (its inbox row exists): nothing runs again.
    Duplicate,
    /// Nothing to write but the inbox row (and the claim's release, if the event took one).
    Nothing {
        /// Whether the event may hold a claim on the payment.
        claimed: bool,
    },
    /// How the charge ended, applied to an order that is still `invoiced`.
    Charged(orders::payments::PaymentOutcome),
    /// The intent waits for the shopper's 3-D Secure: the order stays `invoiced`, the payment
    /// becomes `requires_action` and `payment.action_required` is emitted, once.
    AwaitingAction {
        /// The intent.
        payment_intent_id: String,
        /// The invoice the charge is for.
        invoice: domain::InvoiceGenerated,
    },
    /// Stripe refused the charge before any PaymentIntent existed.
    RefusedBeforeIntent {
        /// The shopper's reason.
        reason: String,
        /// The invoice the charge was for.
        invoice: domain::InvoiceGenerated,
    },
    /// A paid order's payment was refunded at Stripe: `paid → refunded`.
    RefundedPaid {
        /// The refund.
        refund: Refund,
        /// Why, for `payment.refunded`.
        reason: String,
    },
    /// A payment that went through for an order cancelled before it was paid was refunded at
    /// Stripe; the order stays `cancelled`.
    RefundedCancelled(Refund),
    /// A cancelled order's PaymentIntent was cancelled at Stripe (or found so).
    IntentCancelled {
        /// The intent.
        payment_intent_id: String,
    },
}

impl Closing {
    /// Whether the event may hold a claim on the payment, to be given up.
    fn claimed(&self) -> bool {
        match self {
            Closing::Duplicate => false,
            Closing::Nothing { claimed } => *claimed,
            _ => true,
        }
    }
}

/// A refund made at Stripe, to be recorded.
#[derive(Debug)]
pub(crate) struct Refund {
    /// The payment refunded, as it was claimed.
    pub(crate) payment: PaymentRow,
    /// Its PaymentIntent.
    pub(crate) payment_intent_id: String,
    /// Stripe's refund.
    pub(crate) refund_id: String,
}

/// The order as billing reads it for `event`, unlocked.
///
/// # Errors
/// [`BillingError::OrderNotFound`] when there is no such order.
pub(crate) async fn read_order(
    pool: &PgPool,
    event: &Event,
) -> Result<store::OrderState, BillingError> {
    store::read_order(pool, event.order_id, event.id)
        .await?
        .ok_or(BillingError::OrderNotFound(event.order_id))
}

/// The order's row, locked until `tx` ends.
///
/// # Errors
/// [`BillingError::OrderNotFound`] when there is no such order; [`BillingError::Store`] when the
/// read fails.
pub(crate) async fn lock(
    tx: &mut PgConnection,
    order_id: Uuid,
) -> Result<orders::Locked, BillingError> {
    orders::lock(tx, order_id)
        .await?
        .ok_or(BillingError::OrderNotFound(order_id))
}

/// The closing of a paid order's refund: if the order is still `paid`, the payment refunded,
/// `paid → refunded`, stock released and `payment.refunded` with `reason`. An order that moved
/// on meanwhile is left alone.
async fn refunded_paid(
    tx: &mut PgConnection,
    event: &Event,
    refund: Refund,
    reason: &str,
) -> Result<(), BillingError> {
    let order_id = event.order_id;
    let status = lock(tx, order_id).await?.status;
    if status.transition(OrderStatus::Refunded).is_err() {
        tracing::info!(%status, "the order moved on during the refund: nothing to record");
        return Ok(());
    }
    store::record_refund(tx, order_id, &refund.payment_intent_id, &refund.refund_id).await?;
    if let Transition::Rejected(refused) =
        orders::transition(tx, order_id, status, OrderStatus::Refunded).await?
    {
        tracing::warn!(error = %refused, "transition refused");
        return Ok(());
    }
    orders::release_stock(tx, order_id).await?;
    emit_refunded(tx, event, &refund.payment, refund.refund_id, reason).await
}

/// Records `payment.refunded` (timeline + outbox) for the refund `refund_id` of `payment`,
/// caused by `cause`.
pub(crate) async fn emit_refunded(
    tx: &mut PgConnection,
    cause: &Event,
    payment: &store::PaymentRow,
    refund_id: String,
    reason: &str,
) -> Result<(), BillingError> {
    let currency = Currency::parse(&payment.currency)
        .map_err(|_| BillingError::NothingToRefund(cause.order_id))?;
    let payload = PaymentRefunded {
        refund_id,
        amount_minor: payment.amount_minor,
        currency,
        reason: Some(reason.to_owned()),
    };
    let envelope = EventEnvelope::new(
        EventType::PaymentRefunded,
        cause.order_id,
        cause.correlation_id.clone(),
        cause.traceparent.clone(),
        &payload,
    )?;
    let detail = serde_json::json!({
        "refund_id": payload.refund_id,
        "amount_minor": payload.amount_minor,
        "reason": reason,
    });
    orders::record_event(tx, &envelope, detail).await?;
    tracing::info!("payment refunded");
    Ok(())
}

impl Handler for BillingHandler {
    type Error = BillingError;

    fn consumer(&self) -> Consumer {
        Consumer::Billing
    }

    /// The event with its last writes in `tx`, a caller's transaction, and its earlier steps
    /// committed on their own through the handler's pool (module doc).
    async fn handle(&self, event: &Event, tx: &mut PgConnection) -> Result<(), BillingError> {
        let closing = self.prepare(event, &self.pool).await?;
        self.close(event, closing, tx).await
    }

    /// The event on `pool`, one connection at a time and none while Stripe works (module doc).
    async fn run(&self, event: &Event, pool: &PgPool) -> Result<Handled, RunError<BillingError>> {
        let closing = self.prepare(event, pool).await.map_err(RunError::Handler)?;
        if matches!(closing, Closing::Duplicate) {
            return Ok(Handled::Duplicate);
        }
        let Some(mut tx) = worker::begin_with_inbox(pool, self.consumer(), event.id).await? else {
            return Ok(Handled::Duplicate);
        };
        self.close(event, closing, &mut tx)
            .await
            .map_err(RunError::Handler)?;
        tx.commit().await?;
        Ok(Handled::Done)
    }
}
