//! The billing-service: on `invoice.generated` it charges the invoice total with a Stripe
//! PaymentIntent (the payment method chosen at checkout, the order id in the metadata,
//! idempotency keys from the event id) and emits `payment.succeeded` (order `paid`) or, on a
//! decline, `payment.failed` (order `payment_failed`, stock released); on `shipment.failed` it
//! refunds and emits `payment.refunded` (order `refunded`, stock released). Stripe 5xx, 429 and
//! timeouts are retried through the queue's growing redelivery delays; a decline is final.
//!
//! The handler knows nothing of SQS: `main.rs` runs it under the [`worker::Poller`].

pub mod gateway;
pub mod handler;
pub mod store;

pub use handler::{BillingError, BillingHandler};
