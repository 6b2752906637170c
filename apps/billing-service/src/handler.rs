//! `invoice.generated` → one charge for the invoice total; `shipment.failed` → its refund.
//!
//! One charge per order, always, even though the local Stripe ignores `Idempotency-Key`:
//! before creating a PaymentIntent the attempt is committed (`payments` row, status `pending`),
//! and the intent's id is committed as soon as Stripe returns it. A retry — a redelivered event
//! or a restart after `kill -9` — finds the id and confirms or reads that intent; an attempt that
//! died between Stripe's answer and recording the id is found again by the order id in the
//! intent's metadata. Only then is the outcome applied, in the handler's transaction, through
//! [`orders::payments::apply_outcome`].

use domain::{
    Consumer, Currency, Event, EventBody, EventEnvelope, EventType, InvoiceGenerated, OrderStatus,
    PaymentRefunded,
};
use orders::{
    Transition,
    payments::{self, ApplyError, PaymentOutcome},
};
use sqlx::{PgConnection, PgPool};
use stripe_core::PaymentIntentStatus;
use uuid::Uuid;
use worker::{Classify, Failure, Handler};

use crate::{
    gateway::{Charge, Confirmed, Gateway, GatewayError, Intent},
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
    /// Stripe is still processing the payment: look again later.
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
    #[error("the refund event could not be encoded")]
    Encode(#[from] serde_json::Error),
}

impl Classify for BillingError {
    fn failure(&self) -> Failure {
        match self {
            BillingError::Gateway(GatewayError::Transient(_))
            | BillingError::StillProcessing(_) => Failure::Retryable,
            BillingError::Database(e) => e.failure(),
            BillingError::Store(e) => e.failure(),
            BillingError::Apply(e) => e.failure(),
            _ => Failure::Permanent,
        }
    }
}

/// The billing-service's handler.
#[derive(Debug, Clone)]
pub struct BillingHandler {
    gateway: Gateway,
    pool: PgPool,
}

impl BillingHandler {
    /// A handler charging through `gateway`; `pool` commits the attempt records on their own.
    pub fn new(gateway: Gateway, pool: PgPool) -> Self {
        BillingHandler { gateway, pool }
    }

    async fn charge(
        &self,
        event: &Event,
        invoice: &InvoiceGenerated,
        tx: &mut PgConnection,
    ) -> Result<(), BillingError> {
        let order_id = event.order_id;
        let status = orders::lock_status(tx, order_id)
            .await?
            .ok_or(BillingError::OrderNotFound(order_id))?;
        if status != OrderStatus::Invoiced {
            tracing::warn!(%status, "the order is no longer waiting for its payment; nothing to do");
            return Ok(());
        }
        let payment_method = store::payment_method(tx, order_id)
            .await?
            .ok_or(BillingError::OrderNotFound(order_id))?;
        let order = order_id.to_string();
        let currency = invoice.currency.as_str();
        let charge = Charge {
            order_id: &order,
            amount_minor: invoice.total_minor,
            currency,
            payment_method: &payment_method,
        };
        let intent = self.intent_for(order_id, &charge, event.id).await?;
        let outcome = self
            .outcome(&intent, event.id, invoice.total_minor, invoice.currency)
            .await?;
        let applied = payments::apply_outcome(
            tx,
            order_id,
            &outcome,
            &event.correlation_id,
            &event.traceparent,
        )
        .await?;
        tracing::info!(payment_intent.id = intent.id, ?applied, "payment handled");
        Ok(())
    }

    /// The order's PaymentIntent: the recorded one, one an earlier attempt created without
    /// recording it, or a new one.
    async fn intent_for(
        &self,
        order_id: Uuid,
        charge: &Charge<'_>,
        event_id: Uuid,
    ) -> Result<Intent, BillingError> {
        let row = store::payment(&self.pool, order_id).await?;
        if let Some(id) = row.as_ref().and_then(|r| r.payment_intent_id.clone()) {
            return Ok(self.gateway.retrieve(&id).await?);
        }
        if row.is_some()
            && let Some(found) = self.gateway.find_for_order(charge.order_id).await?
        {
            tracing::warn!(
                payment_intent.id = found.id,
                "found the intent an interrupted attempt created"
            );
            store::record_intent(&self.pool, order_id, &found.id).await?;
            return Ok(found);
        }
        store::start_attempt(&self.pool, order_id, charge.amount_minor, charge.currency).await?;
        let created = self
            .gateway
            .create(charge, &format!("pi-create-{event_id}"))
            .await?;
        store::record_intent(&self.pool, order_id, &created.id).await?;
        Ok(created)
    }

    /// Confirms the intent if it still needs it, and says how the payment ended.
    async fn outcome(
        &self,
        intent: &Intent,
        event_id: Uuid,
        amount_minor: i64,
        currency: Currency,
    ) -> Result<PaymentOutcome, BillingError> {
        let payment_intent_id = intent.id.clone();
        let confirmed = match (&intent.status, &intent.decline) {
            (PaymentIntentStatus::Succeeded, _) => Confirmed::Succeeded,
            (PaymentIntentStatus::RequiresPaymentMethod, Some(reason)) => {
                Confirmed::Declined(reason.clone())
            }
            (PaymentIntentStatus::Canceled, _) => {
                Confirmed::Declined("the payment was canceled".into())
            }
            (PaymentIntentStatus::Processing, _) => {
                Confirmed::Pending(PaymentIntentStatus::Processing)
            }
            _ => {
                self.gateway
                    .confirm(&intent.id, &format!("pi-confirm-{event_id}"))
                    .await?
            }
        };
        match confirmed {
            Confirmed::Succeeded => Ok(PaymentOutcome::Succeeded {
                payment_intent_id,
                amount_minor,
                currency,
            }),
            Confirmed::Declined(reason) => Ok(PaymentOutcome::Failed {
                payment_intent_id,
                reason,
                amount_minor,
                currency,
            }),
            Confirmed::Pending(status) => {
                Err(BillingError::StillProcessing(status.as_str().to_owned()))
            }
        }
    }

    async fn refund(
        &self,
        event: &Event,
        reason: &str,
        tx: &mut PgConnection,
    ) -> Result<(), BillingError> {
        let order_id = event.order_id;
        let status = orders::lock_status(tx, order_id)
            .await?
            .ok_or(BillingError::OrderNotFound(order_id))?;
        if status.transition(OrderStatus::Refunded).is_err() {
            tracing::warn!(%status, "not refunding an order in this state");
            return Ok(());
        }
        let payment = store::payment(&self.pool, order_id)
            .await?
            .ok_or(BillingError::NothingToRefund(order_id))?;
        let intent_id = payment
            .payment_intent_id
            .clone()
            .ok_or(BillingError::NothingToRefund(order_id))?;
        let refund_id = self
            .gateway
            .refund(&intent_id, &format!("refund-{}", event.id))
            .await?;
        store::record_refund(tx, order_id, &refund_id).await?;
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

async fn emit_refunded(
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
    let detail = serde_json::json!({"refund_id": payload.refund_id, "amount_minor": payload.amount_minor, "reason": reason});
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
            EventBody::ShipmentFailed(failed) => self.refund(event, &failed.reason, tx).await,
            other => Err(BillingError::UnexpectedEvent(other.event_type())),
        }
    }
}
