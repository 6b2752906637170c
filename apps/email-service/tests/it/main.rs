//! The e-mail worker's binary against the real PostgreSQL and LocalStack and a private SMTP sink,
//! under a stand-in Lambda Runtime API. The worker in the whole pipeline (checkout → invoice →
//! e-mails, SMTP outages) is tested in `tests/e2e`; `smtp` tests the SMTP connection pool alone;
//! `once` the once-only sending through database outages, redeliveries and concurrent deliveries;
//! `window` measures the window left.

mod helpers;
mod lambda;
mod once;
mod plans;
mod smtp;
mod window;
