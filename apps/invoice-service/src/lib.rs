//! The invoice-service: on `order.placed` it computes the invoice (integer minor units, tax on
//! goods and shipping), takes a gap-free invoice number, renders the PDF, stores both, moves the
//! order to `invoiced` and emits `invoice.generated` — all in the transaction that also writes
//! the inbox row, so a redelivered event changes nothing.
//!
//! The handler knows nothing of SQS: `main.rs` runs it under the [`worker::Poller`].

pub mod handler;
pub mod pdf;
pub mod store;

pub use handler::{InvoiceError, InvoiceHandler};
