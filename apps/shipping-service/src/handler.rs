//! `payment.succeeded` → a shipment at the partner, the order `shipped` and `shipment.created`
//! emitted; an undeliverable address or a partner that never answers in time →
//! `shipment.failed` (billing then refunds). One transaction with the inbox row; the partner call
//! inside it is made idempotent by a key derived from the event id.

use domain::{
    Consumer, Event, EventBody, EventEnvelope, EventType, OrderStatus, ShipmentCreated,
    ShipmentFailed,
};
use orders::Transition;
use sqlx::PgConnection;
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
    /// The partner refused the request or answered nonsense.
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
            ShippingError::Partner(PartnerError::Client(_)) => Failure::Retryable,
            _ => Failure::Permanent,
        }
    }
}

/// The shipping-service's handler.
#[derive(Debug, Clone)]
pub struct ShippingHandler {
    partner: PartnerClient,
}

impl ShippingHandler {
    /// A handler booking shipments through `partner`.
    pub fn new(partner: PartnerClient) -> Self {
        ShippingHandler { partner }
    }

    async fn ship(&self, event: &Event, tx: &mut PgConnection) -> Result<(), ShippingError> {
        let order_id = event.order_id;
        let status = orders::lock_status(tx, order_id)
            .await?
            .ok_or(ShippingError::OrderNotFound(order_id))?;
        // A shipment is stored only by the transaction that moves the order to `shipped`, so this
        // also keeps an order from getting a second one.
        if let Err(refused) = status.transition(OrderStatus::Shipped) {
            tracing::warn!(error = %refused, "not shipping an order in this state");
            return Ok(());
        }
        let recipient = store::recipient(tx, order_id)
            .await?
            .ok_or(ShippingError::OrderNotFound(order_id))?;
        let request = ShipmentRequest {
            reference: order_id.to_string(),
            recipient,
        };
        let key = format!("ship-{}", event.id);
        match self.partner.create_shipment(&request, &key).await {
            Ok(Created::Shipment(shipment)) => shipped(tx, event, status, &shipment).await,
            Ok(Created::Undeliverable(reason)) => failed(tx, event, reason).await,
            Err(PartnerError::DeadlineExceeded { attempts, last }) => {
                tracing::warn!(attempts, last, "the partner did not answer in time");
                failed(
                    tx,
                    event,
                    "the shipping partner did not answer in time".into(),
                )
                .await
            }
            Err(other) => Err(other.into()),
        }
    }
}

async fn shipped(
    tx: &mut PgConnection,
    cause: &Event,
    status: OrderStatus,
    shipment: &Shipment,
) -> Result<(), ShippingError> {
    store::insert(tx, cause.order_id, shipment).await?;
    if let Transition::Rejected(refused) =
        orders::transition(tx, cause.order_id, status, OrderStatus::Shipped).await?
    {
        tracing::warn!(error = %refused, "transition refused");
        return Ok(());
    }
    let payload = ShipmentCreated {
        carrier: shipment.carrier.clone(),
        tracking_number: shipment.tracking_number.clone(),
        tracking_url: shipment.tracking_url.clone(),
    };
    let detail =
        serde_json::json!({"carrier": payload.carrier, "tracking_number": payload.tracking_number});
    emit(tx, cause, EventType::ShipmentCreated, &payload, detail).await?;
    tracing::info!(shipment.id = shipment.id, "shipment created");
    Ok(())
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
    tracing::warn!("shipment failed; billing will refund");
    Ok(())
}

async fn emit<P: serde::Serialize>(
    tx: &mut PgConnection,
    cause: &Event,
    event_type: EventType,
    payload: &P,
    detail: serde_json::Value,
) -> Result<(), ShippingError> {
    let envelope = EventEnvelope::new(
        event_type,
        cause.order_id,
        cause.correlation_id.clone(),
        cause.traceparent.clone(),
        payload,
    )?;
    orders::record_event(tx, &envelope, detail).await?;
    Ok(())
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
