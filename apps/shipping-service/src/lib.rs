//! The shipping-service: on `payment.succeeded` it books the shipment with the shipping partner
//! (idempotency key from the event id, timeouts, backoff with jitter, `Retry-After`, a deadline
//! per delivery), stores the partner's carrier and tracking number, moves the order to `shipped`
//! and emits `shipment.created`. Only the partner's refusal of the address emits
//! `shipment.failed`, which billing answers with a refund. A partner that is down, slow or
//! rate-limiting delays the shipment: the message comes back through the queue (honouring
//! `Retry-After`) for up to `APP__SHIPPING__RETRY_BUDGET_S` after the payment, then is parked for
//! an operator with the order still `paid`. An order cancelled while its booking was in flight
//! has that shipment cancelled at the partner. The design and its numbers: [`handler`].
//!
//! The handler knows nothing of SQS: `main.rs` runs it under the [`worker::Poller`].

pub mod handler;
pub mod partner;
pub mod store;

pub use handler::{ShippingError, ShippingHandler};
