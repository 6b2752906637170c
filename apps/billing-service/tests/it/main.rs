//! The billing worker against the real PostgreSQL, LocalStack and a private localstripe: one
//! charge per order whatever is redelivered or killed, declines and other refusals that end the
//! order, refunds, cancellations, a cancellation racing the charge, and a payment waiting for
//! the shopper's 3-D Secure.

mod billing;
mod cancellation;
mod connections;
mod helpers;
mod lambda;
mod race;
mod refusals;
mod three_d_secure;
mod unlocked;
