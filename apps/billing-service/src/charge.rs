//! `invoice.generated` → one charge for the invoice total, and the end of the order it leads to.
//!
//! # The steps of one delivery
//!
//! No lock, transaction or connection is held across a Stripe call:
//!
//! 1. **Claim** (one short transaction): lock the order's row and read its status, its payment
//!    method and whether the event was handled; an order that is not `invoiced` gets nothing.
//!    Insert the `pending` payments row claimed by this event ([`crate::claim`]), or claim the
//!    row an earlier delivery left. Commit: the lock is gone.
//! 2. **Create** at Stripe: the intent the row records (retrieved), the one an interrupted
//!    earlier delivery created without recording it (found by the order id in its metadata), or
//!    a new one (key `pi-create-{event id}`).
//! 3. **Record** (one statement): the intent's id, under the claim, reading the order's status
//!    in the same statement. An order no longer `invoiced` gets no confirmation.
//! 4. **Confirm** at Stripe (key `pi-confirm-{event id}`), unless the intent has its answer
//!    already (an intent that asks for 3-D Secure is left waiting for the shopper).
//! 5. **Close** (one transaction, with the inbox row): [`orders::payments::apply_outcome`] locks
//!    the order and moves it only if it is still `invoiced`; the claim is given up.
//!
//! # One charge per order
//!
//! One charge per order, always, even though the local Stripe ignores `Idempotency-Key`: the
//! attempt is committed (step 1) before a PaymentIntent is created, and the intent's id is
//! committed as soon as Stripe returns it (step 3). A retry — a redelivered event or a restart
//! after `kill -9` — finds the id and confirms or reads that intent; an attempt that died between
//! Stripe's answer and recording the id is found again by the order id in the intent's metadata.
//! The claim keeps any other event's handling off the payment meanwhile, and a redelivery of this
//! event takes its own claim over at once ([`crate::claim`]).
//!
//! # Not `invoiced`, not charged; cancelled while charged, refunded once
//!
//! A cancellation (the shopper's, an operator's, the expiry's) moves an unpaid order to
//! `cancelled` under the order's row lock and emits `order.cancelled`, which billing settles
//! ([`crate::cancellation`]). Where the cancellation's commit falls against the steps above:
//!
//! - before step 1 takes the row lock: step 1 finds the order `cancelled`; nothing is claimed,
//!   created or charged;
//! - after step 1, before step 3's read: step 3 finds it `cancelled`; nothing is confirmed. The
//!   intent, if Stripe created one, stays unconfirmed with its id in the payments row;
//! - after step 3's read, while the confirmation is in flight or after it: the payment may go
//!   through. Step 5 finds the order `cancelled` and writes only the inbox row and the claim's
//!   release, leaving the payment `pending` with its intent recorded.
//!
//! In the last two cases the cancellation's handling settles the payment, and only once the
//! charge is over: step 1 committed the claim while holding the row lock the cancellation needs,
//! so the claim is there before `order.cancelled` exists; the cancellation's handling finds it,
//! fails retryably while it is held ([`crate::BillingError::PaymentBusy`]), and runs once step 5
//! gave it up (or its lease ran out, the charge's handling having been abandoned). It reads the
//! intent from Stripe: `succeeded` → refunded once (key `refund-{cancellation's event id}`, an
//! existing refund reused) and `payment.refunded` emitted; not confirmed → cancelled at Stripe,
//! so nothing can confirm it later. Nobody else refunds such a payment: this handler never does,
//! and the failed-shipment refund only refunds `paid` orders. (Under SQS the cancellation does
//! not even have to wait: `order.cancelled` comes behind `invoice.generated` in the order's
//! FIFO message group.)
//!
//! So an order is never charged once a cancellation committed before the charge's last
//! database read (step 3); a cancellation committed while Stripe is confirming can no longer
//! stop the charge, and the payment ends refunded, exactly once. No money stays taken for a
//! cancelled order. A late Stripe webhook for such a payment changes nothing
//! (`apply_outcome` finds the order past `invoiced`).
//!
//! # How the order ends
//!
//! Every charge ends the order's wait for its payment:
//!
//! - Stripe says `succeeded`: `paid`, `payment.succeeded`.
//! - The card is declined, or Stripe refuses to create or confirm the intent for a reason that is
//!   the shopper's (an unknown or expired payment method, an amount the method will not take; see
//!   [`crate::refusal`]): `payment_failed` with the stock released, and `payment.failed` with the
//!   reason in plain words, which the e-mail consumer passes on.
//! - The intent ends `requires_action` (3-D Secure / SCA): the order waits for the shopper
//!   until its expiry (below).
//! - `processing`, Stripe down, our key refused: nothing changes; the event is retried, then
//!   lands in the DLQ and the order on the stuck-order list.
//!
//! ## A payment that waits for the shopper (3-D Secure)
//!
//! An intent that ends `requires_action` ends the event's handling like any answer — the
//! message is done, neither retried nor parked — with [`await_action`]: the order stays
//! `invoiced` with its stock held, the payment becomes `requires_action` (with the intent's id)
//! and `payment.action_required` is emitted, routed to the e-mail consumer, which asks the
//! shopper to confirm the payment on the order page (the e-mail holds the order's signed link,
//! never the intent's client secret). It is emitted once: only the statement that moves the
//! payment out of `pending` emits it, in the transaction with the inbox row, so neither a
//! redelivery nor a retried closing can emit a second one.
//!
//! The shopper then authenticates on the order page (`GET /api/orders/{id}/payment/action`
//! gives the page the client secret, to its own order's viewers only: Stripe.js'
//! `handleNextAction` with a publishable key, the fake Stripe's test-bank page locally). Stripe
//! then moves the intent to `succeeded` or, when authentication fails, back to
//! `requires_payment_method`. The order learns it by two paths, both through
//! [`orders::payments::apply_outcome`], whichever comes first (the second finds the order moved
//! and writes nothing):
//!
//! - the webhook, `payment_intent.succeeded` / `payment_intent.payment_failed`;
//! - the order page's "I have confirmed" call, `POST /api/orders/{id}/payment/check`, made as
//!   soon as the shopper is back from the bank: the web-server reads the intent from Stripe and
//!   applies what it says (web-server's `stripe::check`, whose module doc says why this path
//!   and not a timed re-check here).
//!
//! So success → `paid` and on as any payment; failure → `payment_failed` with the stock back
//! and `payment.failed`. No action before the order's expiry → the sweeper cancels it
//! `expired` (stock back), and the `order.cancelled` handling ([`crate::cancellation`]) claims
//! the `requires_action` payment and cancels the intent at Stripe — or refunds it, should the
//! shopper have completed it in the last moment.
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

use domain::{
    Event, EventEnvelope, EventType, InvoiceGenerated, OrderStatus, PaymentActionRequired,
    PaymentFailed,
};
use orders::{
    Transition,
    payments::{self, Applied, PaymentOutcome},
};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::{
    claim::{self, Attempt},
    gateway::{Charge, Confirmed, Created, Intent},
    handler::{BillingError, BillingHandler, Closing, lock},
    store,
};

/// What step 1 found.
enum Start {
    /// Billing handled the event before.
    Duplicate,
    /// The order is not waiting for its payment.
    NotInvoiced(OrderStatus),
    /// The attempt is this event's: go on with the payment method chosen at checkout.
    Claimed {
        payment_method: String,
        attempt: Attempt,
    },
}

/// What steps 2 and 3 came to.
enum Prepared {
    /// An intent to confirm (or whose answer is known).
    Intent(Intent),
    /// Stripe refused to create one, for the shopper's reason.
    Refused(String),
    /// The order is no longer `invoiced`: the intent is left unconfirmed.
    OrderMovedOn(OrderStatus),
}

impl BillingHandler {
    /// Charges the invoice total of an `invoiced` order (module doc: steps 1 to 4); returns what
    /// the closing transaction writes.
    pub(crate) async fn charge(
        &self,
        event: &Event,
        invoice: &InvoiceGenerated,
        pool: &PgPool,
    ) -> Result<Closing, BillingError> {
        let (payment_method, attempt) = match self.start(event, invoice, pool).await? {
            Start::Claimed {
                payment_method,
                attempt,
            } => (payment_method, attempt),
            Start::Duplicate => return Ok(Closing::Duplicate),
            Start::NotInvoiced(status) => {
                tracing::info!(%status, "the order is no longer waiting for its payment; nothing to charge");
                return Ok(Closing::Nothing { claimed: true });
            }
        };
        let order = event.order_id.to_string();
        let charge = Charge {
            order_id: &order,
            amount_minor: invoice.total_minor,
            currency: invoice.currency.as_str(),
            payment_method: &payment_method,
        };
        let intent = match self.intent_for(event, &charge, &attempt, pool).await? {
            Prepared::Intent(intent) => intent,
            Prepared::Refused(reason) => {
                return Ok(Closing::RefusedBeforeIntent {
                    reason,
                    invoice: invoice.clone(),
                });
            }
            Prepared::OrderMovedOn(status) => {
                tracing::info!(%status, "the order moved on while its intent was created: not confirming it; the cancellation settles it");
                return Ok(Closing::Nothing { claimed: true });
            }
        };
        self.outcome(&intent, event.id, invoice).await
    }

    /// Step 1: the order locked and read, and the attempt claimed, in one statement
    /// ([`claim::start_charge`]).
    async fn start(
        &self,
        event: &Event,
        invoice: &InvoiceGenerated,
        pool: &PgPool,
    ) -> Result<Start, BillingError> {
        let order_id = event.order_id;
        let claim::Start { order, attempt } = claim::start_charge(
            pool,
            order_id,
            invoice.total_minor,
            invoice.currency.as_str(),
            event.id,
            self.claim_lease,
        )
        .await?
        .ok_or(BillingError::OrderNotFound(order_id))?;
        if order.handled {
            return Ok(Start::Duplicate);
        }
        if order.status != OrderStatus::Invoiced {
            return Ok(Start::NotInvoiced(order.status));
        }
        let payment_method = order
            .payment_method
            .ok_or(BillingError::OrderNotFound(order_id))?;
        let attempt = attempt.ok_or(BillingError::PaymentBusy(order_id))?;
        Ok(Start::Claimed {
            payment_method,
            attempt,
        })
    }

    /// Steps 2 and 3: the order's PaymentIntent — the recorded one, one an earlier attempt
    /// created without recording it, or a new one (or Stripe's refusal to create it).
    async fn intent_for(
        &self,
        event: &Event,
        charge: &Charge<'_>,
        attempt: &Attempt,
        pool: &PgPool,
    ) -> Result<Prepared, BillingError> {
        if let Some(id) = &attempt.payment.payment_intent_id {
            return Ok(Prepared::Intent(self.gateway.retrieve(id).await?));
        }
        if attempt.resumed
            && let Some(found) = self.gateway.find_for_order(charge.order_id).await?
        {
            tracing::warn!("found the intent an interrupted attempt created");
            return self.record(event, pool, found).await;
        }
        let created = self
            .gateway
            .create_charge(charge, &format!("pi-create-{}", event.id))
            .await?;
        match created {
            Created::Intent(intent) => self.record(event, pool, intent).await,
            Created::Refused(reason) => Ok(Prepared::Refused(reason)),
        }
    }

    /// Step 3: the intent's id committed under the claim, and the order read again.
    async fn record(
        &self,
        event: &Event,
        pool: &PgPool,
        intent: Intent,
    ) -> Result<Prepared, BillingError> {
        let status = claim::record_intent(pool, event.order_id, event.id, &intent.id)
            .await?
            .ok_or(BillingError::PaymentBusy(event.order_id))?;
        let status: OrderStatus = status.parse().map_err(orders::OrdersError::from)?;
        if status != OrderStatus::Invoiced {
            return Ok(Prepared::OrderMovedOn(status));
        }
        Ok(Prepared::Intent(intent))
    }

    /// Confirms the intent if it still needs it, and says how the charge ended: with the
    /// payment's outcome, or waiting for the shopper's 3-D Secure.
    async fn outcome(
        &self,
        intent: &Intent,
        event_id: Uuid,
        invoice: &InvoiceGenerated,
    ) -> Result<Closing, BillingError> {
        let confirmed = match Confirmed::of(intent) {
            Some(known) => known,
            None => {
                self.gateway
                    .confirm(&intent.id, &format!("pi-confirm-{event_id}"))
                    .await?
            }
        };
        let outcome = match confirmed {
            Confirmed::Succeeded => PaymentOutcome::Succeeded {
                payment_intent_id: intent.id.clone(),
                amount_minor: invoice.total_minor,
                currency: invoice.currency,
            },
            Confirmed::Declined(reason) => PaymentOutcome::Failed {
                payment_intent_id: intent.id.clone(),
                reason,
                amount_minor: invoice.total_minor,
                currency: invoice.currency,
            },
            Confirmed::NeedsAction => {
                tracing::info!("the card asks for 3-D Secure: the order waits for the shopper");
                return Ok(Closing::AwaitingAction {
                    payment_intent_id: intent.id.clone(),
                    invoice: invoice.clone(),
                });
            }
            Confirmed::Pending(status) => {
                return Err(BillingError::StillProcessing(status.as_str().to_owned()));
            }
        };
        Ok(Closing::Charged(outcome))
    }
}

/// Step 5 of a charge: `outcome` applied to the order if it is still `invoiced`
/// ([`payments::apply_claimed_outcome`] locks it and checks), the event's claim on the payment
/// given up in the same statement as the payment's result. A cancelled order is left to its
/// `order.cancelled` (module doc). `true` when the claim was given up.
pub(crate) async fn apply(
    tx: &mut PgConnection,
    event: &Event,
    outcome: &PaymentOutcome,
) -> Result<bool, BillingError> {
    let (applied, released) = payments::apply_claimed_outcome(
        tx,
        event.order_id,
        outcome,
        event.id,
        &event.correlation_id,
        &event.traceparent,
    )
    .await?;
    match applied {
        Applied::AlreadyDone(OrderStatus::Cancelled) => tracing::info!(
            "the order was cancelled while Stripe charged it: its order.cancelled settles the payment"
        ),
        applied => tracing::info!(?applied, "payment handled"),
    }
    Ok(released)
}

/// Stripe refused the charge before any PaymentIntent existed (an unknown payment method, an
/// amount it will not take). The order ends as [`payments::apply_outcome`] ends it for a failed
/// payment — which needs an intent id to record — through the same lifecycle steps, in `tx`:
/// `invoiced → payment_failed`, stock released, `payment.failed` on the timeline and in the
/// outbox. The payments row keeps no intent and says `failed`, with the reason — also when the
/// order moved on meanwhile (a cancellation), which is then left alone.
pub(crate) async fn refused_before_intent(
    tx: &mut PgConnection,
    event: &Event,
    invoice: &InvoiceGenerated,
    reason: &str,
) -> Result<(), BillingError> {
    let order_id = event.order_id;
    let status = lock(tx, order_id).await?.status;
    store::record_refused(tx, order_id, reason).await?;
    if status != OrderStatus::Invoiced {
        tracing::info!(%status, "Stripe refused the charge of an order that moved on meanwhile");
        return Ok(());
    }
    let to = OrderStatus::PaymentFailed;
    if let Transition::Rejected(refused) = orders::transition(tx, order_id, status, to).await? {
        tracing::warn!(error = %refused, "transition refused");
        return Ok(());
    }
    orders::release_stock(tx, order_id).await?;
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

/// Step 5 of a charge whose intent waits for the shopper's 3-D Secure: the order stays
/// `invoiced` with its stock held; the payment becomes `requires_action` and
/// `payment.action_required` is emitted (timeline and outbox) — once, by whichever handling
/// moves the payment out of `pending`. An order that moved on meanwhile (cancelled: its
/// `order.cancelled` cancels the intent) or a payment that ended already is left alone.
pub(crate) async fn await_action(
    tx: &mut PgConnection,
    event: &Event,
    payment_intent_id: &str,
    invoice: &InvoiceGenerated,
) -> Result<(), BillingError> {
    let order_id = event.order_id;
    let status = lock(tx, order_id).await?.status;
    if status != OrderStatus::Invoiced {
        tracing::info!(%status, "the order moved on while its payment asked for 3-D Secure");
        return Ok(());
    }
    if !store::record_awaiting_action(tx, order_id, payment_intent_id).await? {
        tracing::info!("the payment already waits for the shopper (or has ended): nothing to emit");
        return Ok(());
    }
    let payload = PaymentActionRequired {
        payment_intent_id: payment_intent_id.to_owned(),
        amount_minor: invoice.total_minor,
        currency: invoice.currency,
    };
    let envelope = EventEnvelope::new(
        EventType::PaymentActionRequired,
        order_id,
        event.correlation_id.clone(),
        event.traceparent.clone(),
        &payload,
    )?;
    let detail = serde_json::json!({"payment_intent_id": payment_intent_id});
    orders::record_event(tx, &envelope, detail).await?;
    Ok(())
}
