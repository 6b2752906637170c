//! Integration tests of the web-server against real PostgreSQL, Redis and LocalStack
//! (started by `scripts/test.sh`).

mod access;
mod cancel;
mod cart;
mod checkout;
mod health;
mod helpers;
mod metrics;
mod orders;
mod partner_events;
mod payment_methods;
mod products;
mod quote;
mod rate_limits;
mod sign_in;
mod streams;
mod stripe_webhook;
mod three_d_secure;
