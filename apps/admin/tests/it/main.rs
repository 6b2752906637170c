//! `chargeflow-admin` (the real binary) against the real PostgreSQL and LocalStack: the outbox
//! commands, the dead-letter queue commands with the invoice worker running, `order show`,
//! `order cancel`, `orders stuck`, `--help` and the error exits.

mod cancel;
mod cli;
mod dlq;
mod helpers;
mod order;
mod outbox;
mod retention;
mod stuck;
