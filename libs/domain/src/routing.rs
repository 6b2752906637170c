//! The routing table: which consumer queue receives which event type.
//!
//! This is the one place that decides routing. The relay publishes each outbox row to every
//! consumer listed here for its type, and nothing else in the code base knows the mapping.

use std::fmt;

use crate::events::EventType;

/// A consumer of events: each one owns exactly one queue (and its dead-letter queue).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Consumer {
    /// Renders and stores invoices.
    Invoice,
    /// Charges and refunds payments.
    Billing,
    /// Books shipments with the shipping partner.
    Shipping,
    /// Sends customer e-mails.
    Email,
}

impl Consumer {
    /// Every consumer, in a stable order.
    pub const ALL: [Consumer; 4] = [
        Consumer::Invoice,
        Consumer::Billing,
        Consumer::Shipping,
        Consumer::Email,
    ];

    /// The consumer's short name, used to derive its queue name (`<prefix><name>.fifo`).
    pub fn name(self) -> &'static str {
        match self {
            Consumer::Invoice => "invoice",
            Consumer::Billing => "billing",
            Consumer::Shipping => "shipping",
            Consumer::Email => "email",
        }
    }
}

impl serde::Serialize for Consumer {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl fmt::Display for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The consumers an event of type `event_type` is delivered to.
pub fn route(event_type: EventType) -> &'static [Consumer] {
    use Consumer::*;
    match event_type {
        EventType::OrderPlaced => &[Invoice, Email],
        EventType::InvoiceGenerated => &[Billing, Email],
        EventType::PaymentSucceeded => &[Shipping, Email],
        EventType::PaymentFailed => &[Email],
        EventType::PaymentActionRequired => &[Email],
        EventType::ShipmentCreated => &[Email],
        EventType::ShipmentFailed => &[Billing, Email],
        EventType::PaymentRefunded => &[Email],
        EventType::OrderCancelled => &[Billing, Email],
        EventType::ShipmentDelivered => &[Email],
        EventType::SignInRequested => &[Email],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_reaches_the_email_consumer() {
        for event_type in EventType::ALL {
            assert!(route(event_type).contains(&Consumer::Email), "{event_type}");
        }
    }

    #[test]
    fn a_sign_in_request_reaches_only_the_email_consumer() {
        assert_eq!(route(EventType::SignInRequested), &[Consumer::Email]);
    }

    #[test]
    fn a_failed_shipment_is_refunded_by_billing() {
        assert_eq!(
            route(EventType::ShipmentFailed),
            &[Consumer::Billing, Consumer::Email]
        );
    }

    #[test]
    fn no_event_is_routed_to_the_same_consumer_twice() {
        for event_type in EventType::ALL {
            let mut consumers = route(event_type).to_vec();
            consumers.sort();
            consumers.dedup();
            assert_eq!(consumers.len(), route(event_type).len());
        }
    }
}
