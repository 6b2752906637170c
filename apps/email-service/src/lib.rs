//! The email-service: for every event routed to it, renders the matching Handlebars templates
//! (HTML and plain text) and sends one e-mail to the order's customer with lettre — the invoice
//! e-mail with the PDF attached. SMTP down or a 4xx reply: retried with backoff. A 5xx for the
//! recipient: recorded as rejected, not looped. Templates are loaded and test-rendered at
//! start-up, so a broken template stops start-up instead of a send. Each e-mail's intent is
//! committed before the send and the server's answer right after it, with no transaction open
//! while the server talks ([`delivery`]).
//!
//! The handler knows nothing of SQS: `main.rs` runs it under the [`worker::Poller`].

pub mod answers;
pub mod claims;
pub mod delivery;
pub mod group;
pub mod handler;
pub mod mailer;
pub mod smtp;
pub mod store;
pub mod templates;

pub use handler::{EmailError, EmailHandler};
