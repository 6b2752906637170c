//! Integration tests of the outbox relay against real PostgreSQL and LocalStack SQS
//! (started by `scripts/test.sh`), and of its expiry sweeper; the outage test runs a private
//! LocalStack of its own.

mod backlog;
mod batching;
mod crash;
mod expiry;
mod helpers;
mod in_flight;
mod lambda;
mod lifecycle;
mod listening;
mod metrics;
mod ordering;
mod outage;
mod retention;
mod routing;
