//! `chargeflow-admin` (the real binary) against the real PostgreSQL and LocalStack: the outbox
//! commands, the dead-letter queue commands with the invoice worker running, `order show`,
//! `--help` and the error exits.

mod cli;
mod dlq;
mod helpers;
mod order;
mod outbox;
