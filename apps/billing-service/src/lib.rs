//! The billing-service: every order's money, from the charge to its end.
//!
//! - `invoice.generated` ([`charge`]): charges the invoice total with a Stripe PaymentIntent (the
//!   payment method chosen at checkout, the order id in the metadata, idempotency keys from the
//!   event id) and emits `payment.succeeded` (order `paid`) or `payment.failed` (order
//!   `payment_failed`, stock released). A payment Stripe refuses — a declined card, a payment
//!   method it does not know or that expired, an amount the method will not take, a card asking
//!   for 3-D Secure, which the shop cannot run yet — ends the order at once with a reason in plain
//!   words for the shopper ([`refusal`]); it is neither retried nor parked. Such an order ends
//!   `payment_failed`, not `cancelled` (`payment_unusable`): see [`charge`] for why.
//! - `order.cancelled` ([`cancellation`]): a paid order is refunded once (`refunded`, stock
//!   released); for an unpaid one, any PaymentIntent an attempt left behind is cancelled at
//!   Stripe, or refunded if it went through after all, so a cancellation that races the charge
//!   never ends charged and not refunded.
//! - `shipment.failed` ([`handler`]): refunds and emits `payment.refunded` (order `refunded`,
//!   stock released).
//!
//! Failures are sorted in [`handler`]: only a message that can never be handled (an event
//! billing does not take, an order that does not exist) is parked at once. Stripe 5xx, 429,
//! timeouts, a refused API key (401/403: the operator must fix it) and an intent in a state not
//! expected are retried through the queue's growing redelivery delays; if they persist, the
//! message ends in the DLQ after its last receive and the order is listed as stuck.
//!
//! No row lock, transaction or pooled connection is held while billing waits on Stripe, and a
//! message never holds more than one connection: each event claims the order's payment in a
//! short transaction ([`claim`]), calls Stripe, and writes its result in a closing transaction
//! that locks the order and checks again ([`handler`]; the cancellation race argued in
//! [`charge`]).
//!
//! The handler knows nothing of SQS: `main.rs` runs it under the [`worker::Poller`].

pub mod cancellation;
pub mod charge;
pub mod claim;
pub mod gateway;
pub mod handler;
pub mod refusal;
pub mod store;

pub use handler::{BillingError, BillingHandler};
