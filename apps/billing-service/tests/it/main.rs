//! The billing worker against the real PostgreSQL, LocalStack and a private localstripe: one
//! charge per order whatever is redelivered or killed, declines and other refusals that end the
//! order, refunds, cancellations, and a cancellation racing the charge.

mod billing;
mod cancellation;
mod connections;
mod helpers;
mod lambda;
mod race;
mod refusals;
mod unlocked;
