//! `payment.succeeded` → a shipment at the partner, the order `shipped` and `shipment.created`
//! emitted. A partner in trouble delays the shipment; only the partner's refusal of the address
//! emits `shipment.failed` (billing then refunds).
//!
//! # One delivery of the message
//!
//! 1. Read the order without a lock: its status, whether a cancellation was accepted, its
//!    address. (The runtime's transaction is open and holds only the inbox row.) An order that
//!    is not `paid` any more, or whose cancellation was accepted, gets nothing booked.
//! 2. Book at the partner with the key `ship-{event id}` ([`PartnerClient::create_shipment`]):
//!    a few quick retries within `APP__SHIPPING__DEADLINE_MS`.
//! 3. Inside a savepoint, move the order `paid → shipped` with `shipment.created` if it is still
//!    `paid` and not being cancelled (one statement, `orders::advance_if`, which waits for a
//!    cancellation committing meanwhile), then store the shipment, commit.
//!    A cancellation was accepted while the partner call was in flight: roll back to the
//!    savepoint (with any lock the recheck took), cancel the shipment just booked
//!    (`POST /v1/shipments/{id}/cancel`, idempotent) and commit nothing but the inbox row;
//!    billing refunds the order in answer to its `order.cancelled`.
//!
//! No order row lock is held across a partner call, so a shopper's or operator's cancellation
//! never waits for the partner, and the pool and the visibility timeout need no sizing for it.
//!
//! If that cancel call fails transiently, the shipment is marked as still to be cancelled
//! ([`store::CANCEL_PENDING`], written before the call, on its own through the worker's pool:
//! [`ShippingHandler::with_pool`]) and the message is retried: the redelivery sees the mark,
//! repeats the booking with the same key — the partner answers the same shipment — and cancels
//! it. Without the mark, a redelivery that finds the order cancelled books nothing. (A handler
//! given no pool parks such a failure instead, its reason naming the shipment to cancel.)
//!
//! # Partner trouble: retried through the queue, within a budget
//!
//! A `5xx`, a `429`, a `401`/`403`, a timeout or a refused connection that outlasts the quick
//! retries is a retryable error ([`ShippingError::PartnerUnavailable`]): the transaction rolls
//! back and the message comes back through the queue after the worker's growing delay
//! (`retry_base_s × 4^(n−1)` capped at `retry_max_s`: 2, 8, 32, 128, 300, 300 … s by default),
//! or after the partner's `Retry-After` when that is longer (the error's
//! [`worker::Classify::retry_after`], at most 12 h). Each redelivery uses the same idempotency
//! key, so a shipment booked by a request whose answer was lost is found, not booked twice.
//!
//! The budget is `APP__SHIPPING__RETRY_BUDGET_S` (default 7200 s = 2 h), counted from the
//! `payment.succeeded` event's `occurred_at`. A partner failure past it is permanent
//! ([`ShippingError::RetryBudgetSpent`]): the message is parked in the shipping dead-letter
//! queue with that reason, the order stays `paid` (never refunded by an outage) and shows among
//! the stuck orders (`orders::stuck`: its `payment.succeeded` not processed by shipping). The
//! operator redrives it once the partner is back (`chargeflow-admin dlq redrive shipping`; a
//! redriven message gets one round of quick retries, then is parked again if the partner still
//! fails), or cancels the order, which billing refunds (a later redrive then books nothing).
//!
//! The queue's receive limit is a backstop, not the budget: `maxReceiveCount` 40 on the
//! shipping queue (`localstack/queues.json`, `deploy/template.yaml`). Counting only the delays,
//! 39 redeliveries span 2 + 8 + 32 + 128 + 35 × 300 = 10 670 s ≈ 2 h 58 min, and each receive
//! also spends up to `deadline_ms` (20 s) on the partner — so in an outage the 2 h budget runs
//! out after about 27 receives, well before SQS would move the message on its own.
//!
//! Why the queue and not a retry table in PostgreSQL: the message is already durable, ordered
//! per order (FIFO group) and invisible while it waits, costing no connection, lock or worker
//! slot; SQS already has the delay (per-message visibility), the bounded attempts, the
//! dead-letter queue and the operator's tools (`chargeflow-admin dlq list|redrive`), and the
//! same handler runs under the poller and under Lambda. A table would need a migration, a
//! scheduler of its own (a long-running sweeper, or a scheduled function under Lambda), its own
//! leases and parking, and a second answer to "what is this order waiting for".
//!
//! Other refusals: a `4xx` that says our request is wrong (`409 idempotency_key_reused`, a
//! `400` on a field that is not the recipient's, `404`) will fail again: parked, order `paid`.

use std::time::Duration;

use chrono::Utc;
use domain::{
    Consumer, Event, EventBody, EventEnvelope, EventType, OrderStatus, ShipmentCreated,
    ShipmentFailed,
};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;
use worker::{Classify, Failure, Handler};

use crate::{
    partner::{Created, PartnerClient, PartnerError, Shipment, ShipmentRequest},
    store,
};

/// Why a shipment could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum ShippingError {
    /// The queue delivered an event this handler does not take.
    #[error("the shipping service does not handle `{0}` events")]
    UnexpectedEvent(EventType),
    /// The event names an order that does not exist.
    #[error("order {0} does not exist")]
    OrderNotFound(Uuid),
    /// The partner is down, slow, rate-limiting or refusing our credentials: retried through
    /// the queue (after its `Retry-After`, when it gave one).
    #[error("the shipping partner is unavailable; the shipment will be retried")]
    PartnerUnavailable(#[source] PartnerError),
    /// The partner stayed unavailable past the retry budget: parked for an operator.
    #[error(
        "the shipping partner was still unavailable {waited_s} s after the payment, past the retry budget of {budget_s} s; the order stays paid for an operator to redrive or cancel"
    )]
    RetryBudgetSpent {
        /// Seconds since the payment.
        waited_s: i64,
        /// The budget, in seconds.
        budget_s: u64,
        /// The partner's last failure.
        #[source]
        source: PartnerError,
    },
    /// The shipment booked for an order cancelled meanwhile could not be cancelled.
    #[error("shipment {shipment_id} of a cancelled order could not be cancelled at the partner")]
    CancelFailed {
        /// The partner's shipment id.
        shipment_id: String,
        /// Whether the shipment is marked as still to cancel, so a redelivery finishes the job.
        marked: bool,
        /// Why.
        #[source]
        source: PartnerError,
    },
    /// The partner refused the request itself or answered nonsense.
    #[error("the shipping partner call failed")]
    Partner(#[from] PartnerError),
    /// A statement failed.
    #[error("shipping statement failed")]
    Database(#[from] sqlx::Error),
    /// The order store or the outbox failed.
    #[error("order update failed")]
    Store(#[from] orders::OrdersError),
    /// The emitted event could not be encoded.
    #[error("the shipment event could not be encoded")]
    Encode(#[from] serde_json::Error),
}

impl Classify for ShippingError {
    fn failure(&self) -> Failure {
        match self {
            ShippingError::Database(e) => e.failure(),
            ShippingError::Store(e) => e.failure(),
            ShippingError::PartnerUnavailable(_) => Failure::Retryable,
            ShippingError::CancelFailed {
                source: e,
                marked: true,
                ..
            }
            | ShippingError::Partner(e)
                if e.is_transient() =>
            {
                Failure::Retryable
            }
            _ => Failure::Permanent,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            ShippingError::PartnerUnavailable(e)
            | ShippingError::CancelFailed { source: e, .. } => e.retry_after(),
            _ => None,
        }
    }
}

/// The shipping-service's handler.
#[derive(Debug, Clone)]
pub struct ShippingHandler {
    partner: PartnerClient,
    pool: Option<PgPool>,
}

impl ShippingHandler {
    /// A handler booking shipments through `partner`. Give it the worker's pool
    /// ([`ShippingHandler::with_pool`]) so that a failed cancellation is retried.
    pub fn new(partner: PartnerClient) -> Self {
        ShippingHandler {
            partner,
            pool: None,
        }
    }

    /// The handler with the worker's `pool`, through which it records — outside the message's
    /// transaction — a shipment that still has to be cancelled ([`store::CANCEL_PENDING`]), so
    /// that a cancel call that fails is finished by a redelivery. Without a pool such a failure
    /// is parked for an operator, its reason naming the shipment to cancel.
    pub fn with_pool(mut self, pool: PgPool) -> Self {
        self.pool = Some(pool);
        self
    }

    async fn ship(&self, event: &Event, tx: &mut PgConnection) -> Result<(), ShippingError> {
        let order_id = event.order_id;
        let order = store::order_to_ship(tx, order_id, event.id)
            .await?
            .ok_or(ShippingError::OrderNotFound(order_id))?;
        let request = ShipmentRequest {
            reference: order_id.to_string(),
            recipient: order.recipient,
        };
        if order.cancel_pending {
            return self.cancel_again(tx, event, &request).await;
        }
        if order.cancel_requested {
            tracing::info!("the order's cancellation was accepted: booking nothing");
            return Ok(());
        }
        // A shipment is stored only by the transaction that moves the order to `shipped`, so this
        // also keeps an order from getting a second one.
        if let Err(refused) = order.status.transition(OrderStatus::Shipped) {
            tracing::warn!(error = %refused, "not shipping an order in this state");
            return Ok(());
        }
        let created = self
            .partner
            .create_shipment(&request, &idempotency_key(event))
            .await
            .map_err(|e| self.sort(event, e))?;
        store::savepoint_recheck(tx).await?;
        let shipment = match created {
            Created::Shipment(shipment) => shipment,
            Created::Undeliverable(reason) => {
                if still_to_ship(tx, order_id).await? {
                    return failed(tx, event, reason).await;
                }
                store::release_recheck(tx).await?;
                tracing::info!(
                    "the order was cancelled meanwhile: its refund needs no shipment.failed"
                );
                return Ok(());
            }
        };
        if shipped(tx, event, &shipment).await? {
            return Ok(());
        }
        // A row lock the move's recheck may have taken goes with the savepoint.
        store::release_recheck(tx).await?;
        self.cancel_booked(tx, event, &shipment).await
    }

    /// A partner failure as the handler's error: retryable within the budget, parked past it,
    /// parked at once when trying again cannot help.
    fn sort(&self, event: &Event, error: PartnerError) -> ShippingError {
        if !error.is_transient() {
            return ShippingError::Partner(error);
        }
        let budget_s = self.partner.settings().retry_budget_s;
        let waited_s = (Utc::now() - event.occurred_at).num_seconds();
        if waited_s >= i64::try_from(budget_s).unwrap_or(i64::MAX) {
            return ShippingError::RetryBudgetSpent {
                waited_s,
                budget_s,
                source: error,
            };
        }
        ShippingError::PartnerUnavailable(error)
    }

    /// Cancels the shipment booked for an order whose cancellation was accepted meanwhile. The
    /// mark, committed first, lets a redelivery finish the job if the call fails or this
    /// process dies; the message's transaction removes it once the shipment is cancelled.
    async fn cancel_booked(
        &self,
        tx: &mut PgConnection,
        event: &Event,
        shipment: &Shipment,
    ) -> Result<(), ShippingError> {
        tracing::info!(
            shipment.id = shipment.id,
            "the order was cancelled during the booking: cancelling the shipment"
        );
        if let Some(pool) = &self.pool {
            store::mark_cancel_pending(pool, event.id).await?;
        }
        self.partner
            .cancel_shipment(&shipment.id)
            .await
            .map_err(|source| ShippingError::CancelFailed {
                shipment_id: shipment.id.clone(),
                marked: self.pool.is_some(),
                source,
            })?;
        store::clear_cancel_pending(tx, event.id).await?;
        tracing::info!(
            shipment.id = shipment.id,
            "shipment cancelled at the partner; billing refunds the order"
        );
        Ok(())
    }

    /// A redelivery of an event whose shipment is still to be cancelled: the same key gets the
    /// same shipment back, which is then cancelled. No budget: this ends only in a cancellation
    /// (or in the dead-letter queue after the queue's receive limit).
    async fn cancel_again(
        &self,
        tx: &mut PgConnection,
        event: &Event,
        request: &ShipmentRequest,
    ) -> Result<(), ShippingError> {
        let created = self
            .partner
            .create_shipment(request, &idempotency_key(event))
            .await
            .map_err(|e| {
                if e.is_transient() {
                    ShippingError::PartnerUnavailable(e)
                } else {
                    ShippingError::Partner(e)
                }
            })?;
        match created {
            Created::Shipment(shipment) => self.cancel_booked(tx, event, &shipment).await,
            Created::Undeliverable(_) => {
                store::clear_cancel_pending(tx, event.id).await?;
                Ok(())
            }
        }
    }
}

/// The key of every booking call for `event`, in every delivery of it.
fn idempotency_key(event: &Event) -> String {
    format!("ship-{}", event.id)
}

/// Locks the order and reads it again: whether it is still `paid` with no cancellation
/// accepted.
async fn still_to_ship(tx: &mut PgConnection, order_id: Uuid) -> Result<bool, ShippingError> {
    let locked = orders::lock(tx, order_id)
        .await?
        .ok_or(ShippingError::OrderNotFound(order_id))?;
    Ok(locked.status == OrderStatus::Paid && locked.cancel_reason.is_none())
}

/// Moves the order `paid → shipped` with `shipment.created`, if it is still `paid` with no
/// cancellation accepted (one statement, [`orders::advance_if`]), and then stores the shipment.
/// `false` when it is not to be shipped any more: nothing was written.
async fn shipped(
    tx: &mut PgConnection,
    cause: &Event,
    shipment: &Shipment,
) -> Result<bool, ShippingError> {
    let payload = ShipmentCreated {
        carrier: shipment.carrier.clone(),
        tracking_number: shipment.tracking_number.clone(),
        tracking_url: shipment.tracking_url.clone(),
    };
    let detail =
        serde_json::json!({"carrier": payload.carrier, "tracking_number": payload.tracking_number});
    let envelope = envelope(cause, EventType::ShipmentCreated, &payload)?;
    let moved = orders::advance_if(
        tx,
        OrderStatus::Paid,
        OrderStatus::Shipped,
        &envelope,
        detail,
    )
    .await?;
    if !moved {
        return Ok(false);
    }
    store::insert(tx, cause.order_id, shipment).await?;
    tracing::info!(shipment.id = shipment.id, "shipment created");
    Ok(true)
}

async fn failed(tx: &mut PgConnection, cause: &Event, reason: String) -> Result<(), ShippingError> {
    let detail = serde_json::json!({"reason": reason});
    emit(
        tx,
        cause,
        EventType::ShipmentFailed,
        &ShipmentFailed { reason },
        detail,
    )
    .await?;
    tracing::warn!("the partner refused the address: shipment failed, billing will refund");
    Ok(())
}

async fn emit<P: serde::Serialize>(
    tx: &mut PgConnection,
    cause: &Event,
    event_type: EventType,
    payload: &P,
    detail: serde_json::Value,
) -> Result<(), ShippingError> {
    orders::record_event(tx, &envelope(cause, event_type, payload)?, detail).await?;
    Ok(())
}

/// The envelope of an event of the order `cause` belongs to, in its correlation and trace.
fn envelope<P: serde::Serialize>(
    cause: &Event,
    event_type: EventType,
    payload: &P,
) -> Result<EventEnvelope, ShippingError> {
    Ok(EventEnvelope::new(
        event_type,
        cause.order_id,
        cause.correlation_id.clone(),
        cause.traceparent.clone(),
        payload,
    )?)
}

impl Handler for ShippingHandler {
    type Error = ShippingError;

    fn consumer(&self) -> Consumer {
        Consumer::Shipping
    }

    async fn handle(&self, event: &Event, tx: &mut PgConnection) -> Result<(), ShippingError> {
        match &event.body {
            EventBody::PaymentSucceeded(_) => self.ship(event, tx).await,
            other => Err(ShippingError::UnexpectedEvent(other.event_type())),
        }
    }
}
