//! `invoice.generated` → one charge for the invoice total, and the end of the order it leads to.
//!
//! One charge per order, always, even though the local Stripe ignores `Idempotency-Key`:
//! before creating a PaymentIntent the attempt is committed (`payments` row, status `pending`),
//! and the intent's id is committed as soon as Stripe returns it. A retry — a redelivered event
//! or a restart after `kill -9` — finds the id and confirms or reads that intent; an attempt that
//! died between Stripe's answer and recording the id is found again by the order id in the
//! intent's metadata. Only then is the outcome applied, in the handler's transaction, through
//! [`orders::payments::apply_outcome`].
//!
//! Every charge ends the order's wait for its payment:
//!
//! - Stripe says `succeeded`: `paid`, `payment.succeeded`.
//! - The card is declined, or Stripe refuses to create or confirm the intent for a reason that is
//!   the shopper's (an unknown or expired payment method, an amount the method will not take; see
//!   [`crate::refusal`]): `payment_failed` with the stock released, and `payment.failed` with the
//!   reason in plain words, which the e-mail consumer passes on.
//! - The intent ends `requires_action` (3-D Secure, which the shop cannot run yet): it is
//!   cancelled at Stripe, then the order fails as above.
//! - `processing`, Stripe down, our key refused: nothing changes; the event is retried, then
//!   lands in the DLQ and the order on the stuck-order list.
//!
//! A refusal ends the order `payment_failed`, not `cancelled` with reason `payment_unusable`:
//! the state machine's `invoiced → payment_failed` edge is the one for "Stripe refused the
//! payment", the webhook's `payment_intent.payment_failed` ends the same order the same way
//! (both through `apply_outcome`, whichever comes first), and `payment.failed` tells the shopper
//! what happened and why. A cancellation is an act — of the shopper, an operator or the expiry —
//! that emits `order.cancelled`, which billing itself consumes to settle a payment; a refusal
//! has no payment left to settle.
//!
//! A refusal at creation leaves no PaymentIntent, and `apply_outcome` records the intent's id
//! with the outcome; that one case ends the order with the same lifecycle steps
//! (`refused_before_intent`).
//!
//! An order that is not `invoiced` is never charged: its status is read under the row lock, held
//! until the handler's transaction ends. A cancellation takes the same lock, so it comes either
//! wholly before the charge (nothing is charged) or wholly after it (the order is `paid`, and
//! `order.cancelled` refunds it).

use domain::{Event, EventEnvelope, EventType, InvoiceGenerated, OrderStatus, PaymentFailed};
use orders::{
    Transition,
    payments::{self, PaymentOutcome},
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    gateway::{Charge, Confirmed, Created, Intent},
    handler::{BillingError, BillingHandler, lock},
    refusal, store,
};

impl BillingHandler {
    /// Charges the invoice total of an `invoiced` order and applies how it ended (module doc).
    pub(crate) async fn charge(
        &self,
        event: &Event,
        invoice: &InvoiceGenerated,
        tx: &mut PgConnection,
    ) -> Result<(), BillingError> {
        let order_id = event.order_id;
        let status = lock(tx, order_id).await?.status;
        if status != OrderStatus::Invoiced {
            tracing::info!(%status, "the order is no longer waiting for its payment; nothing to charge");
            return Ok(());
        }
        let payment_method = store::payment_method(tx, order_id)
            .await?
            .ok_or(BillingError::OrderNotFound(order_id))?;
        let order = order_id.to_string();
        let charge = Charge {
            order_id: &order,
            amount_minor: invoice.total_minor,
            currency: invoice.currency.as_str(),
            payment_method: &payment_method,
        };
        let intent = match self.intent_for(order_id, &charge, event.id).await? {
            Created::Intent(intent) => intent,
            Created::Refused(reason) => {
                return refused_before_intent(tx, event, invoice, &reason).await;
            }
        };
        let outcome = self.outcome(&intent, event.id, invoice).await?;
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
    /// recording it, or a new one (or Stripe's refusal to create it).
    async fn intent_for(
        &self,
        order_id: Uuid,
        charge: &Charge<'_>,
        event_id: Uuid,
    ) -> Result<Created, BillingError> {
        let row = store::payment(&self.pool, order_id).await?;
        if let Some(id) = row.as_ref().and_then(|r| r.payment_intent_id.clone()) {
            return Ok(Created::Intent(self.gateway.retrieve(&id).await?));
        }
        if row.is_some()
            && let Some(found) = self.gateway.find_for_order(charge.order_id).await?
        {
            tracing::warn!(
                payment_intent.id = found.id,
                "found the intent an interrupted attempt created"
            );
            store::record_intent(&self.pool, order_id, &found.id).await?;
            return Ok(Created::Intent(found));
        }
        store::start_attempt(&self.pool, order_id, charge.amount_minor, charge.currency).await?;
        let created = self
            .gateway
            .create_charge(charge, &format!("pi-create-{event_id}"))
            .await?;
        if let Created::Intent(intent) = &created {
            store::record_intent(&self.pool, order_id, &intent.id).await?;
        }
        Ok(created)
    }

    /// Confirms the intent if it still needs it, and says how the payment ended. An intent that
    /// asks for 3-D Secure is cancelled at Stripe (nobody can complete it) and ends as a failure.
    async fn outcome(
        &self,
        intent: &Intent,
        event_id: Uuid,
        invoice: &InvoiceGenerated,
    ) -> Result<PaymentOutcome, BillingError> {
        let confirmed = match Confirmed::of(intent) {
            Some(known) => known,
            None => {
                self.gateway
                    .confirm(&intent.id, &format!("pi-confirm-{event_id}"))
                    .await?
            }
        };
        let failed = |reason: String| PaymentOutcome::Failed {
            payment_intent_id: intent.id.clone(),
            reason,
            amount_minor: invoice.total_minor,
            currency: invoice.currency,
        };
        match confirmed {
            Confirmed::Succeeded => Ok(PaymentOutcome::Succeeded {
                payment_intent_id: intent.id.clone(),
                amount_minor: invoice.total_minor,
                currency: invoice.currency,
            }),
            Confirmed::Declined(reason) => Ok(failed(reason)),
            Confirmed::NeedsAction => {
                self.gateway
                    .cancel(&intent.id, &format!("pi-cancel-{event_id}"))
                    .await?;
                tracing::info!(
                    payment_intent.id = intent.id,
                    "the card asks for 3-D Secure, which this shop cannot run: intent cancelled"
                );
                Ok(failed(refusal::AUTHENTICATION_NEEDED.to_owned()))
            }
            Confirmed::Pending(status) => {
                Err(BillingError::StillProcessing(status.as_str().to_owned()))
            }
        }
    }
}

/// Stripe refused the charge before any PaymentIntent existed (an unknown payment method, an
/// amount it will not take). The order ends as [`payments::apply_outcome`] ends it for a failed
/// payment — which needs an intent id to record — through the same lifecycle steps, in `tx`:
/// `invoiced → payment_failed`, stock released, `payment.failed` on the timeline and in the
/// outbox. The payments row keeps no intent and says `failed`, with the reason.
async fn refused_before_intent(
    tx: &mut PgConnection,
    event: &Event,
    invoice: &InvoiceGenerated,
    reason: &str,
) -> Result<(), BillingError> {
    let order_id = event.order_id;
    let to = OrderStatus::PaymentFailed;
    if let Transition::Rejected(refused) =
        orders::transition(tx, order_id, OrderStatus::Invoiced, to).await?
    {
        tracing::warn!(error = %refused, "transition refused");
        return Ok(());
    }
    orders::release_stock(tx, order_id).await?;
    store::record_refused(tx, order_id, reason).await?;
    let payload = PaymentFailed {
        reason: reason.to_owned(),
        amount_minor: invoice.total_minor,
        currency: invoice.currency,
    };
    let envelope = EventEnvelope::new(
        EventType::PaymentFailed,
        order_id,
        event.correlation_id.clone(),
        event.traceparent.clone(),
        &payload,
    )?;
    orders::record_event(tx, &envelope, serde_json::json!({"reason": reason})).await?;
    tracing::info!(
        reason,
        "Stripe refused the charge before creating a PaymentIntent"
    );
    Ok(())
}
