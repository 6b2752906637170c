//! The shipping-service: on `payment.succeeded` it books the shipment with the shipping partner
//! (idempotency key from the event id, timeouts, backoff with jitter, `Retry-After`, an overall
//! deadline), stores the partner's carrier and tracking number, moves the order to `shipped` and
//! emits `shipment.created`; an undeliverable address or an exhausted deadline emits
//! `shipment.failed`, which billing answers with a refund.
//!
//! The handler knows nothing of SQS: `main.rs` runs it under the [`worker::Poller`].

pub mod handler;
pub mod partner;
pub mod store;

pub use handler::{ShippingError, ShippingHandler};
