//! The billing worker against the real PostgreSQL, LocalStack and a private localstripe: one
//! charge per order whatever is redelivered or killed, declines, and refunds.

mod billing;
mod helpers;
mod lambda;
