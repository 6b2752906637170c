//! `order.cancelled` → the order's money settled, whatever the cancellation raced with.
//!
//! What to do is read from the order row under its lock (the payload's `paid` said the same at
//! the time of the cancellation, and is only logged):
//!
//! - `paid`, its cancellation accepted: refunded once through `BillingHandler::refund` (the
//!   refund of a failed shipment): `paid → refunded`, stock released, `payment.refunded` with
//!   [`REFUND_REASON`].
//! - `cancelled` (it was unpaid; the cancellation released the stock): the PaymentIntent an
//!   attempt may have left, found from the `payments` row — by its id, or by the order id in its
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
//! Why that is enough: the charge path charges only an `invoiced` order, under the same row lock
//! as a cancellation. So a cancellation comes wholly before a charge (nothing is charged; an
//! intent a crashed attempt left behind is cancelled here) or wholly after it (the order is
//! `paid`: refunded here). Money can reach a cancelled order only through an attempt that was
//! abandoned after Stripe confirmed (a crash, a handler timeout): that payment's late webhook
//! changes nothing (`apply_outcome` finds the order past `invoiced`), and this handler refunds it.
//! A cancel that Stripe refuses because a confirmation overtook it is retried, and the next
//! delivery finds the intent `succeeded` and refunds it. Every Stripe call carries an
//! idempotency key from this event's id, and the refund reuses an existing one: a redelivery, or
//! the same event handled again, refunds nothing twice.

use domain::{Event, OrderCancelled, OrderStatus};
use sqlx::PgConnection;
use stripe_core::PaymentIntentStatus;
use uuid::Uuid;

use crate::{
    gateway::Intent,
    handler::{BillingError, BillingHandler, emit_refunded, lock},
    store::{self, PaymentRow},
};

/// The reason `payment.refunded` gives when the refund comes from a cancellation.
pub const REFUND_REASON: &str = "the order was cancelled";

impl BillingHandler {
    /// Settles the payment of a cancelled order (module doc).
    pub(crate) async fn settle_cancellation(
        &self,
        event: &Event,
        cancelled: &OrderCancelled,
        tx: &mut PgConnection,
    ) -> Result<(), BillingError> {
        let locked = lock(tx, event.order_id).await?;
        match (locked.status, locked.cancel_reason) {
            (OrderStatus::Paid, Some(_)) => {
                self.refund_locked(event, locked.status, REFUND_REASON, tx)
                    .await
            }
            (OrderStatus::Paid, None) => {
                tracing::warn!("the paid order's cancellation was not accepted; not refunding");
                Ok(())
            }
            (OrderStatus::Cancelled, _) => self.settle_intent(event, tx).await,
            (other, _) => {
                tracing::info!(status = %other, paid = cancelled.paid, "nothing to settle for the cancellation");
                Ok(())
            }
        }
    }

    /// Cancels or refunds whatever PaymentIntent an attempt left for the cancelled order.
    async fn settle_intent(
        &self,
        event: &Event,
        tx: &mut PgConnection,
    ) -> Result<(), BillingError> {
        let order_id = event.order_id;
        let payment = match store::payment(&mut *tx, order_id).await? {
            Some(payment) if payment.is_pending() => payment,
            other => {
                tracing::info!(payment.status = ?other.map(|p| p.status), "no payment under way: nothing to settle");
                return Ok(());
            }
        };
        let Some(intent) = self.intent_of(order_id, &payment).await? else {
            tracing::info!("no PaymentIntent was created for the order: nothing to settle");
            return Ok(());
        };
        match &intent.status {
            PaymentIntentStatus::Succeeded => {
                self.refund_intent(event, &payment, &intent, tx).await
            }
            PaymentIntentStatus::RequiresPaymentMethod
            | PaymentIntentStatus::RequiresConfirmation
            | PaymentIntentStatus::RequiresAction
            | PaymentIntentStatus::RequiresCapture => self.cancel_intent(event, &intent, tx).await,
            PaymentIntentStatus::Canceled => {
                Ok(store::record_cancelled(tx, order_id, &intent.id).await?)
            }
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
        payment: &PaymentRow,
        intent: &Intent,
        tx: &mut PgConnection,
    ) -> Result<(), BillingError> {
        let refund_id = self.refund_at_stripe(event, &intent.id, tx).await?;
        tracing::warn!(
            payment_intent.id = intent.id,
            "a payment went through for an order cancelled before it was paid: refunding it"
        );
        emit_refunded(tx, event, payment, refund_id, REFUND_REASON).await
    }

    async fn cancel_intent(
        &self,
        event: &Event,
        intent: &Intent,
        tx: &mut PgConnection,
    ) -> Result<(), BillingError> {
        self.gateway
            .cancel(&intent.id, &format!("pi-cancel-{}", event.id))
            .await?;
        store::record_cancelled(tx, event.order_id, &intent.id).await?;
        tracing::info!(
            payment_intent.id = intent.id,
            "the cancelled order's PaymentIntent was cancelled at Stripe"
        );
        Ok(())
    }
}
