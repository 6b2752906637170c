//! The versioned event envelope every message carries, the event types, and their payloads.

use std::{fmt, str::FromStr};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{money::Currency, order::CancelReason};

/// The type of an event, named as it appears on the wire (`order.placed`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    /// A shopper checked out; stock is reserved.
    #[serde(rename = "order.placed")]
    OrderPlaced,
    /// The invoice for an order was rendered and stored.
    #[serde(rename = "invoice.generated")]
    InvoiceGenerated,
    /// The payment was captured.
    #[serde(rename = "payment.succeeded")]
    PaymentSucceeded,
    /// The payment was declined.
    #[serde(rename = "payment.failed")]
    PaymentFailed,
    /// The payment waits for the shopper's action (3-D Secure): the order stays `invoiced`.
    #[serde(rename = "payment.action_required")]
    PaymentActionRequired,
    /// The shipping partner accepted the shipment.
    #[serde(rename = "shipment.created")]
    ShipmentCreated,
    /// The shipping partner could not ship the order.
    #[serde(rename = "shipment.failed")]
    ShipmentFailed,
    /// The payment was refunded.
    #[serde(rename = "payment.refunded")]
    PaymentRefunded,
    /// The order was cancelled (by the shopper, an operator or the expiry).
    #[serde(rename = "order.cancelled")]
    OrderCancelled,
    /// The partner delivered the parcel.
    #[serde(rename = "shipment.delivered")]
    ShipmentDelivered,
    /// A shopper asked for a one-time sign-in link ("find my orders"). Its aggregate is the
    /// sign-in request, not an order: see [`Aggregate`].
    #[serde(rename = "customer.sign_in_requested")]
    SignInRequested,
}

/// What an event's aggregate id (the envelope's `order_id` field, the SQS message group and the
/// outbox's `aggregate_id`) names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Aggregate {
    /// An order: every `order.*`, `invoice.*`, `payment.*` and `shipment.*` event.
    Order,
    /// A stored sign-in request (`customer.sign_in_requested`): no order, no timeline.
    SignInRequest,
}

/// The error for an event type name this version does not know.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown event type `{0}`")]
pub struct UnknownEventType(pub String);

impl EventType {
    /// Every event type.
    pub const ALL: [EventType; 11] = [
        EventType::OrderPlaced,
        EventType::InvoiceGenerated,
        EventType::PaymentSucceeded,
        EventType::PaymentFailed,
        EventType::PaymentActionRequired,
        EventType::ShipmentCreated,
        EventType::ShipmentFailed,
        EventType::PaymentRefunded,
        EventType::OrderCancelled,
        EventType::ShipmentDelivered,
        EventType::SignInRequested,
    ];

    /// The wire name, such as `order.placed`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::OrderPlaced => "order.placed",
            EventType::InvoiceGenerated => "invoice.generated",
            EventType::PaymentSucceeded => "payment.succeeded",
            EventType::PaymentFailed => "payment.failed",
            EventType::PaymentActionRequired => "payment.action_required",
            EventType::ShipmentCreated => "shipment.created",
            EventType::ShipmentFailed => "shipment.failed",
            EventType::PaymentRefunded => "payment.refunded",
            EventType::OrderCancelled => "order.cancelled",
            EventType::ShipmentDelivered => "shipment.delivered",
            EventType::SignInRequested => "customer.sign_in_requested",
        }
    }

    /// What the aggregate id of an event of this type names.
    pub fn aggregate(self) -> Aggregate {
        match self {
            EventType::SignInRequested => Aggregate::SignInRequest,
            _ => Aggregate::Order,
        }
    }
}

impl FromStr for EventType {
    type Err = UnknownEventType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownEventType(s.to_owned()))
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The envelope around every event: what the outbox stores and what each queue message holds.
///
/// The payload stays raw JSON here so that the relay can move events it has no type for; a
/// consumer decodes it with [`EventEnvelope::decode_payload`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventEnvelope {
    /// Unique per event; also the SQS deduplication id and the inbox key.
    pub event_id: Uuid,
    /// What happened.
    pub event_type: EventType,
    /// The payload schema version of this event type.
    pub version: u16,
    /// The aggregate the event belongs to; also the SQS message group. An order's id, except
    /// for the event types whose [`EventType::aggregate`] says otherwise (the field keeps its
    /// name for the wire format's sake).
    pub order_id: Uuid,
    /// When the state change happened.
    pub occurred_at: DateTime<Utc>,
    /// The id of the request that started the chain of events.
    pub correlation_id: String,
    /// W3C trace context of the request that started the chain.
    pub traceparent: String,
    /// The event's own data, whose schema is given by `event_type` and `version`.
    pub payload: serde_json::Value,
}

impl EventEnvelope {
    /// Wraps `payload` in a fresh envelope with a new event id.
    ///
    /// # Errors
    /// Fails only if `payload` cannot be represented as JSON.
    pub fn new<P: Serialize>(
        event_type: EventType,
        order_id: Uuid,
        correlation_id: impl Into<String>,
        traceparent: impl Into<String>,
        payload: &P,
    ) -> Result<Self, serde_json::Error> {
        Ok(EventEnvelope {
            event_id: Uuid::now_v7(),
            event_type,
            version: 1,
            order_id,
            occurred_at: Utc::now(),
            correlation_id: correlation_id.into(),
            traceparent: traceparent.into(),
            payload: serde_json::to_value(payload)?,
        })
    }

    /// Decodes the payload as `P`.
    ///
    /// # Errors
    /// Fails when the payload does not match `P`'s schema.
    pub fn decode_payload<P: for<'de> Deserialize<'de>>(&self) -> Result<P, serde_json::Error> {
        P::deserialize(&self.payload)
    }
}

/// Payload of `order.placed` (version 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderPlaced {
    /// The shopper's name.
    pub customer_name: String,
    /// Where the e-mails go.
    pub customer_email: String,
    /// Where the parcel goes.
    pub shipping_address: crate::checkout::Address,
    /// The ordered lines with the prices charged.
    pub lines: Vec<OrderPlacedLine>,
    /// The currency of every amount in the order.
    pub currency: Currency,
    /// Sum of the line totals, in minor units.
    pub subtotal_minor: i64,
    /// The Stripe PaymentMethod id chosen at checkout.
    pub payment_method: String,
    /// The shipping fee quoted, in minor units (absent in events of orders placed before quotes
    /// were stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping_minor: Option<i64>,
    /// The tax quoted, in minor units (absent as `shipping_minor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_minor: Option<i64>,
    /// The total quoted and to be charged, in minor units (absent as `shipping_minor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_minor: Option<i64>,
}

/// One line of an [`OrderPlaced`] event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderPlacedLine {
    /// The product's id.
    pub product_id: i64,
    /// The product's stock-keeping unit.
    pub sku: String,
    /// The product's name at the time of purchase.
    pub name: String,
    /// The unit price at the time of purchase, in minor units.
    pub unit_price_minor: i64,
    /// How many units.
    pub quantity: u32,
    /// `unit_price_minor × quantity`.
    pub line_total_minor: i64,
}

/// Payload of `invoice.generated` (version 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvoiceGenerated {
    /// The invoice number, such as `INV-2026-000001`.
    pub invoice_number: String,
    /// The currency of every amount.
    pub currency: Currency,
    /// Sum of the line totals, in minor units.
    pub subtotal_minor: i64,
    /// The shipping fee, in minor units.
    pub shipping_minor: i64,
    /// The tax, in minor units.
    pub tax_minor: i64,
    /// What the customer pays, in minor units.
    pub total_minor: i64,
}

/// Payload of `payment.succeeded` (version 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentSucceeded {
    /// The Stripe PaymentIntent id.
    pub payment_intent_id: String,
    /// The amount captured, in minor units.
    pub amount_minor: i64,
    /// Its currency.
    pub currency: Currency,
}

/// Payload of `payment.failed` (version 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentFailed {
    /// Why the payment failed, fit to show to the shopper (never card data).
    pub reason: String,
    /// The amount that was attempted, in minor units.
    pub amount_minor: i64,
    /// Its currency.
    pub currency: Currency,
}

/// Payload of `payment.action_required` (version 1): the PaymentIntent waits for the shopper
/// to authenticate the payment (3-D Secure) on the order page. It holds no client secret: the
/// e-mail sends the shopper to the order page, which asks for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentActionRequired {
    /// The Stripe PaymentIntent id.
    pub payment_intent_id: String,
    /// The amount to be authorised, in minor units.
    pub amount_minor: i64,
    /// Its currency.
    pub currency: Currency,
}

/// Payload of `shipment.created` (version 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShipmentCreated {
    /// The carrier's name.
    pub carrier: String,
    /// The tracking number.
    pub tracking_number: String,
    /// Where the shopper can follow the parcel, if the partner gave a link.
    pub tracking_url: Option<String>,
}

/// Payload of `shipment.failed` (version 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShipmentFailed {
    /// Why the partner could not ship the order.
    pub reason: String,
}

/// Payload of `payment.refunded` (version 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentRefunded {
    /// The Stripe refund id.
    pub refund_id: String,
    /// The amount refunded, in minor units.
    pub amount_minor: i64,
    /// Its currency.
    pub currency: Currency,
    /// Why it was refunded.
    pub reason: Option<String>,
}

/// Payload of `order.cancelled` (version 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderCancelled {
    /// Who or what cancelled it.
    pub reason: CancelReason,
    /// Whether the order had been paid when it was cancelled: billing then refunds it. When
    /// false, billing still cancels (or, if it was confirmed after all, refunds) any
    /// PaymentIntent the order has.
    pub paid: bool,
}

/// Payload of `shipment.delivered` (version 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShipmentDelivered {
    /// The carrier.
    pub carrier: String,
    /// The tracking number.
    pub tracking_number: String,
    /// When the partner delivered the parcel.
    pub delivered_at: DateTime<Utc>,
}

/// Payload of `customer.sign_in_requested` (version 1). It holds no personal data: the address
/// stays in the sign-in request row (the envelope's aggregate id), where the e-mail worker reads
/// it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignInRequested {
    /// When the link stops working.
    pub expires_at: DateTime<Utc>,
}

/// A decoded event payload: one variant per event type this version understands.
#[derive(Debug, Clone, PartialEq)]
pub enum EventBody {
    /// `order.placed`.
    OrderPlaced(OrderPlaced),
    /// `invoice.generated`.
    InvoiceGenerated(InvoiceGenerated),
    /// `payment.succeeded`.
    PaymentSucceeded(PaymentSucceeded),
    /// `payment.failed`.
    PaymentFailed(PaymentFailed),
    /// `payment.action_required`.
    PaymentActionRequired(PaymentActionRequired),
    /// `shipment.created`.
    ShipmentCreated(ShipmentCreated),
    /// `shipment.failed`.
    ShipmentFailed(ShipmentFailed),
    /// `payment.refunded`.
    PaymentRefunded(PaymentRefunded),
    /// `order.cancelled`.
    OrderCancelled(OrderCancelled),
    /// `shipment.delivered`.
    ShipmentDelivered(ShipmentDelivered),
    /// `customer.sign_in_requested`.
    SignInRequested(SignInRequested),
}

impl EventBody {
    /// The type of this event.
    pub fn event_type(&self) -> EventType {
        match self {
            EventBody::OrderPlaced(_) => EventType::OrderPlaced,
            EventBody::InvoiceGenerated(_) => EventType::InvoiceGenerated,
            EventBody::PaymentSucceeded(_) => EventType::PaymentSucceeded,
            EventBody::PaymentFailed(_) => EventType::PaymentFailed,
            EventBody::PaymentActionRequired(_) => EventType::PaymentActionRequired,
            EventBody::ShipmentCreated(_) => EventType::ShipmentCreated,
            EventBody::ShipmentFailed(_) => EventType::ShipmentFailed,
            EventBody::PaymentRefunded(_) => EventType::PaymentRefunded,
            EventBody::OrderCancelled(_) => EventType::OrderCancelled,
            EventBody::ShipmentDelivered(_) => EventType::ShipmentDelivered,
            EventBody::SignInRequested(_) => EventType::SignInRequested,
        }
    }
}

/// An event as a consumer sees it: the envelope's metadata and a typed payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Unique per event: the inbox key.
    pub id: Uuid,
    /// The order it belongs to — for the events whose [`EventType::aggregate`] is an order;
    /// the sign-in request's id for `customer.sign_in_requested`.
    pub order_id: Uuid,
    /// When the state change happened.
    pub occurred_at: DateTime<Utc>,
    /// The id of the request that started the chain of events.
    pub correlation_id: String,
    /// W3C trace context of the request that started the chain.
    pub traceparent: String,
    /// The typed payload.
    pub body: EventBody,
}

/// Why an envelope cannot become an [`Event`]. Both are permanent: retrying will not help.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The envelope's version of its type is not one this code understands.
    #[error("unsupported version {version} of `{event_type}`")]
    UnsupportedVersion {
        /// The event type.
        event_type: EventType,
        /// The version found.
        version: u16,
    },
    /// The payload does not match its type's schema.
    #[error("invalid `{event_type}` payload")]
    InvalidPayload {
        /// The event type.
        event_type: EventType,
        /// What serde found wrong, without the values it quoted (they may be personal data).
        #[source]
        source: crate::redact::SchemaMismatch,
    },
}

impl Event {
    /// Decodes a message body: the JSON envelope with a payload of a known type and version.
    ///
    /// # Errors
    /// [`DecodeError`] when the version is unsupported or the payload invalid; a body that is
    /// not an envelope (or has an unknown `event_type`) fails as [`serde_json::Error`] first,
    /// see [`EventEnvelope`].
    pub fn from_envelope(envelope: EventEnvelope) -> Result<Event, DecodeError> {
        let event_type = envelope.event_type;
        if envelope.version != 1 {
            return Err(DecodeError::UnsupportedVersion {
                event_type,
                version: envelope.version,
            });
        }
        let invalid = |source: serde_json::Error| DecodeError::InvalidPayload {
            event_type,
            source: source.into(),
        };
        let payload = envelope.payload;
        let body = match event_type {
            EventType::OrderPlaced => EventBody::OrderPlaced(decode(payload).map_err(invalid)?),
            EventType::InvoiceGenerated => {
                EventBody::InvoiceGenerated(decode(payload).map_err(invalid)?)
            }
            EventType::PaymentSucceeded => {
                EventBody::PaymentSucceeded(decode(payload).map_err(invalid)?)
            }
            EventType::PaymentFailed => EventBody::PaymentFailed(decode(payload).map_err(invalid)?),
            EventType::PaymentActionRequired => {
                EventBody::PaymentActionRequired(decode(payload).map_err(invalid)?)
            }
            EventType::ShipmentCreated => {
                EventBody::ShipmentCreated(decode(payload).map_err(invalid)?)
            }
            EventType::ShipmentFailed => {
                EventBody::ShipmentFailed(decode(payload).map_err(invalid)?)
            }
            EventType::PaymentRefunded => {
                EventBody::PaymentRefunded(decode(payload).map_err(invalid)?)
            }
            EventType::OrderCancelled => {
                EventBody::OrderCancelled(decode(payload).map_err(invalid)?)
            }
            EventType::ShipmentDelivered => {
                EventBody::ShipmentDelivered(decode(payload).map_err(invalid)?)
            }
            EventType::SignInRequested => {
                EventBody::SignInRequested(decode(payload).map_err(invalid)?)
            }
        };
        Ok(Event {
            id: envelope.event_id,
            order_id: envelope.order_id,
            occurred_at: envelope.occurred_at,
            correlation_id: envelope.correlation_id,
            traceparent: envelope.traceparent,
            body,
        })
    }

    /// The type of this event.
    pub fn event_type(&self) -> EventType {
        self.body.event_type()
    }
}

fn decode<P: for<'de> Deserialize<'de>>(payload: serde_json::Value) -> serde_json::Result<P> {
    serde_json::from_value(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_round_trip_through_their_wire_names() {
        for event_type in EventType::ALL {
            assert_eq!(event_type.as_str().parse::<EventType>(), Ok(event_type));
            let json = serde_json::to_string(&event_type).unwrap();
            assert_eq!(json, format!("\"{}\"", event_type.as_str()));
        }
        assert!("order.shipped".parse::<EventType>().is_err());
    }

    #[test]
    fn an_envelope_serialises_with_the_documented_field_names() {
        let envelope = EventEnvelope::new(
            EventType::OrderPlaced,
            Uuid::nil(),
            "req-1",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            &serde_json::json!({"k": 1}),
        )
        .unwrap();
        let json = serde_json::to_value(&envelope).unwrap();
        for field in [
            "event_id",
            "event_type",
            "version",
            "order_id",
            "occurred_at",
            "correlation_id",
            "traceparent",
            "payload",
        ] {
            assert!(json.get(field).is_some(), "missing {field}");
        }
        assert_eq!(json["event_type"], "order.placed");
        let back: EventEnvelope = serde_json::from_value(json).unwrap();
        assert_eq!(back, envelope);
    }

    #[test]
    fn an_envelope_decodes_to_its_typed_event_and_bad_ones_are_refused() {
        let payload = serde_json::json!({"reason": "partner refused"});
        let mut envelope =
            EventEnvelope::new(EventType::ShipmentFailed, Uuid::nil(), "r", "", &payload).unwrap();
        let event = Event::from_envelope(envelope.clone()).unwrap();
        assert_eq!(event.event_type(), EventType::ShipmentFailed);
        assert_eq!(event.id, envelope.event_id);

        envelope.version = 2;
        assert!(matches!(
            Event::from_envelope(envelope.clone()),
            Err(DecodeError::UnsupportedVersion { version: 2, .. })
        ));
        envelope.version = 1;
        envelope.payload = serde_json::json!({"no": "reason"});
        assert!(matches!(
            Event::from_envelope(envelope),
            Err(DecodeError::InvalidPayload { .. })
        ));
    }
}
