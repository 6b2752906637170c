//! `order.cancelled` → the order's money settled, whatever the cancellation raced with.
//!
//! What to do is read from the order row, unlocked (the payload's `paid` said the same at the
//! time of the cancellation, and is only logged); every Stripe call is made under the payment's
//! claim ([`crate::claim`]), and the result is written in the closing transaction:
//!
//! - `paid`, its cancellation accepted: refunded once through `BillingHandler::refund_paid`
//!   (the refund of a failed shipment): `paid → refunded` if it is still `paid` when the closing
//!   transaction locks it, stock released, `payment.refunded` with [`REFUND_REASON`].
//! - `cancelled` (it was unpaid; the cancellation released the stock): the PaymentIntent an
//!   attempt left, found from the `pending` (or `requires_action`: waiting for the shopper's
//!   3-D Secure) payments row — by its id, or by the order id in its
//!   metadata when the attempt died before recording the id — is settled by its status:
//!   - `succeeded`: refunded; the payment `refunded`, the order stays `cancelled`,
//!     `payment.refunded` with [`REFUND_REASON`];
//!   - `requires_payment_method`, `requires_confirmation`, `requires_action`,
//!     `requires_capture`: cancelled at Stripe, so that nothing can confirm it any more; the
//!     payment `cancelled`;
//!   - `canceled`: the payment `cancelled`;
//!   - `processing`: retried, to look again later;
//!   - no intent, or a payment already settled: nothing to do.
//! - any other state: nothing to do.
//!
//! Why that is enough: a charge claims the payment while holding the order's row lock, so a
//! cancellation commits either before the claim — the charge then never starts — or after it,
//! and then this handling finds the payment claimed and waits (retryably) until the charge is
//! over: whatever the charge did at Stripe is recorded by then, and settled here (the argument
//! in full: [`crate::charge`]). Money reaches a cancelled order only through a confirmation that
//! was in flight when the cancellation committed, or one an abandoned attempt made: that
//! payment's late webhook changes nothing (`apply_outcome` finds the order past `invoiced`), and
//! this handler refunds it. A cancel that Stripe refuses because a confirmation overtook it is
//! retried, and the next delivery finds the intent `succeeded` and refunds it. Every Stripe call
//! carries an idempotency key from this event's id, and the refund reuses an existing one: a
//! redelivery, or the same event handled again, refunds nothing twice.

use domain::{Event, OrderCancelled, OrderStatus};
use sqlx::{PgConnection, PgPool};
use stripe_core::PaymentIntentStatus;
use uuid::Uuid;

use crate::{
    gateway::Intent,
    handler::{BillingError, BillingHandler, Closing, Refund, emit_refunded, read_order},
    store::{self, PaymentRow},
};

/// The reason `payment.refunded` gives when the refund comes from a cancellation.
pub const REFUND_REASON: &str = "the order was cancelled";

impl BillingHandler {
    /// Settles the payment of a cancelled order (module doc); returns what the closing
    /// transaction writes.
    pub(crate) async fn settle_cancellation(
        &self,
        event: &Event,
        cancelled: &OrderCancelled,
        pool: &PgPool,
    ) -> Result<Closing, BillingError> {
        let order = read_order(pool, event).await?;
        if order.handled {
            return Ok(Closing::Duplicate);
        }
        match (order.status, order.cancel_requested) {
            (OrderStatus::Paid, true) => self.refund_paid(event, REFUND_REASON, pool).await,
            (OrderStatus::Paid, false) => {
                tracing::warn!("the paid order's cancellation was not accepted; not refunding");
                Ok(Closing::Nothing { claimed: false })
            }
            (OrderStatus::Cancelled, _) => self.settle_intent(event, pool).await,
            (other, _) => {
                tracing::info!(status = %other, paid = cancelled.paid, "nothing to settle for the cancellation");
                Ok(Closing::Nothing { claimed: false })
            }
        }
    }

    /// Cancels or refunds whatever PaymentIntent an attempt left for the cancelled order.
    async fn settle_intent(&self, event: &Event, pool: &PgPool) -> Result<Closing, BillingError> {
        let order_id = event.order_id;
        let Some(payment) = self
            .claim(event, pool, &["pending", "requires_action"])
            .await?
        else {
            tracing::info!("no payment under way: nothing to settle");
            return Ok(Closing::Nothing { claimed: false });
        };
        let Some(intent) = self.intent_of(order_id, &payment).await? else {
            tracing::info!("no PaymentIntent was created for the order: nothing to settle");
            return Ok(Closing::Nothing { claimed: true });
        };
        match &intent.status {
            PaymentIntentStatus::Succeeded => self.refund_intent(event, payment, intent).await,
            PaymentIntentStatus::RequiresPaymentMethod
            | PaymentIntentStatus::RequiresConfirmation
            | PaymentIntentStatus::RequiresAction
            | PaymentIntentStatus::RequiresCapture => self.cancel_intent(event, intent).await,
            PaymentIntentStatus::Canceled => Ok(Closing::IntentCancelled {
                payment_intent_id: intent.id,
            }),
            // `processing`, or a state this version does not know: look again later.
            other => Err(BillingError::StillProcessing(other.as_str().to_owned())),
        }
    }

    /// The recorded PaymentIntent, or the one an interrupted attempt created, if any.
    async fn intent_of(
        &self,
        order_id: Uuid,
        payment: &PaymentRow,
    ) -> Result<Option<Intent>, BillingError> {
        Ok(match &payment.payment_intent_id {
            Some(id) => Some(self.gateway.retrieve(id).await?),
            None => self.gateway.find_for_order(&order_id.to_string()).await?,
        })
    }

    async fn refund_intent(
        &self,
        event: &Event,
        mut payment: PaymentRow,
        intent: Intent,
    ) -> Result<Closing, BillingError> {
        tracing::warn!(
            "a payment went through for an order cancelled before it was paid: refunding it"
        );
        // An intent found by its metadata is not recorded yet.
        payment.payment_intent_id = Some(intent.id);
        let refund = self.refund_at_stripe(event, payment).await?;
        Ok(Closing::RefundedCancelled(refund))
    }

    async fn cancel_intent(&self, event: &Event, intent: Intent) -> Result<Closing, BillingError> {
        self.gateway
            .cancel(&intent.id, &format!("pi-cancel-{}", event.id))
            .await?;
        tracing::info!("the cancelled order's PaymentIntent was cancelled at Stripe");
        Ok(Closing::IntentCancelled {
            payment_intent_id: intent.id,
        })
    }
}

/// The closing of a refund of a payment that went through for an order cancelled before it was
/// paid: the payment `refunded` and `payment.refunded`; the order stays `cancelled`.
pub(crate) async fn refunded(
    tx: &mut PgConnection,
    event: &Event,
    refund: Refund,
) -> Result<(), BillingError> {
    store::record_refund(
        tx,
        event.order_id,
        &refund.payment_intent_id,
        &refund.refund_id,
    )
    .await?;
    emit_refunded(tx, event, &refund.payment, refund.refund_id, REFUND_REASON).await
}
