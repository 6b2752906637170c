//! End-to-end: a shopper checks out over HTTP, and the relay, the invoice worker and the e-mail
//! worker take it from there on the real PostgreSQL, LocalStack and SMTP sink.

mod helpers;
mod invoice_and_emails;
mod lifecycle;
mod lifecycle_ends;
mod links;
mod load;
mod migrations;
mod otel;
mod profile;
mod quote;
mod redelivery;
mod schema;
mod smtp_outage;
mod template;
mod three_d_secure;
mod trace;
