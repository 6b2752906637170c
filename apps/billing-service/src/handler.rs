//! The billing-service's handler: which event goes where, how its failures are sorted, and the
//! refund that a failed shipment and a cancelled paid order share.
//!
//! - `invoice.generated` → one charge for the invoice total, ending `paid` or `payment_failed`
//!   ([`crate::charge`]);
//! - `order.cancelled` → the PaymentIntent cancelled at Stripe, or the payment refunded
//!   ([`crate::cancellation`]);
//! - `shipment.failed` → the payment refunded: `paid → refunded`, stock released
//!   (`BillingHandler::refund`, here).
//!
//! Failures are sorted by [`Classify`]. Permanent — parked in the DLQ at once — are only the
//! messages that can never be handled: an event billing does not take, an order that does not
//! exist, a refund of an order that was never charged, data PostgreSQL rejects. Everything Stripe
//! does (down, slow, our key refused, an intent in a state we did not expect) is retried with the
//! queue's growing delays and, if it persists, ends in the DLQ after the last receive while the
//! order is listed as stuck. The shopper's own payment failing is no failure at all: the order
//! ends `payment_failed` and the handler returns `Ok`.

use domain::{
    Consumer, Currency, Event, EventBody, EventEnvelope, EventType, OrderStatus, PaymentRefunded,
};
use orders::{Transition, payments::ApplyError};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;
use worker::{Classify, Failure, Handler};

use crate::{
    gateway::{Gateway, GatewayError},
    store,
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
            BillingError::StillProcessing(_) => Failure::Retryable,
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

/// The billing-service's handler.
#[derive(Debug, Clone)]
pub struct BillingHandler {
    pub(crate) gateway: Gateway,
    pub(crate) pool: PgPool,
}

impl BillingHandler {
    /// A handler charging through `gateway`; `pool` commits the attempt records on their own.
    pub fn new(gateway: Gateway, pool: PgPool) -> Self {
        BillingHandler { gateway, pool }
    }

    /// Refunds a `paid` order in full, once (the idempotency key from the event, and an existing
    /// refund at Stripe reused): `paid → refunded`, stock released and `payment.refunded` with
    /// `reason`, all in `tx`. An order in any other state is left alone.
    pub(crate) async fn refund(
        &self,
        event: &Event,
        reason: &str,
        tx: &mut PgConnection,
    ) -> Result<(), BillingError> {
        let status = lock(tx, event.order_id).await?.status;
        self.refund_locked(event, status, reason, tx).await
    }

    /// [`BillingHandler::refund`] for an order the caller has locked and found in `status`.
    pub(crate) async fn refund_locked(
        &self,
        event: &Event,
        status: OrderStatus,
        reason: &str,
        tx: &mut PgConnection,
    ) -> Result<(), BillingError> {
        let order_id = event.order_id;
        if status.transition(OrderStatus::Refunded).is_err() {
            tracing::info!(%status, "not refunding an order in this state");
            return Ok(());
        }
        let payment = store::payment(&self.pool, order_id)
            .await?
            .ok_or(BillingError::NothingToRefund(order_id))?;
        let intent_id = payment
            .payment_intent_id
            .clone()
            .ok_or(BillingError::NothingToRefund(order_id))?;
        let refund_id = self.refund_at_stripe(event, &intent_id, tx).await?;
        if let Transition::Rejected(refused) =
            orders::transition(tx, order_id, status, OrderStatus::Refunded).await?
        {
            tracing::warn!(error = %refused, "transition refused");
            return Ok(());
        }
        orders::release_stock(tx, order_id).await?;
        emit_refunded(tx, event, &payment, refund_id, reason).await
    }
}

impl BillingHandler {
    /// Refunds the PaymentIntent at Stripe (once: the key comes from `event`, and an existing
    /// refund is reused) and marks the order's payment refunded in `tx`; returns the refund's id.
    pub(crate) async fn refund_at_stripe(
        &self,
        event: &Event,
        payment_intent_id: &str,
        tx: &mut PgConnection,
    ) -> Result<String, BillingError> {
        let refund_id = self
            .gateway
            .refund(payment_intent_id, &format!("refund-{}", event.id))
            .await?;
        store::record_refund(tx, event.order_id, payment_intent_id, &refund_id).await?;
        Ok(refund_id)
    }
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
    tracing::info!(refund.id = payload.refund_id, "payment refunded");
    Ok(())
}

impl Handler for BillingHandler {
    type Error = BillingError;

    fn consumer(&self) -> Consumer {
        Consumer::Billing
    }

    async fn handle(&self, event: &Event, tx: &mut PgConnection) -> Result<(), BillingError> {
        match &event.body {
            EventBody::InvoiceGenerated(invoice) => self.charge(event, invoice, tx).await,
            EventBody::OrderCancelled(cancelled) => {
                self.settle_cancellation(event, cancelled, tx).await
            }
            EventBody::ShipmentFailed(failed) => self.refund(event, &failed.reason, tx).await,
            other => Err(BillingError::UnexpectedEvent(other.event_type())),
        }
    }
}
