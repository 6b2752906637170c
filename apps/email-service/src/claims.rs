//! The claims of order e-mails, made by group commit ([`crate::group`]): the claims of events
//! received together are made, with their orders' data read, by one statement
//! ([`store::claim_order_emails`]) instead of one each.
//!
//! A receive brings up to ten events and the worker handles them at once, so their claims come
//! within a millisecond of each other. Each caller gets its own event's result, as if it had
//! claimed alone; an event asked for twice in one statement is claimed for one of its
//! deliveries only, and the other finds the intent held. A statement that fails for a reason of
//! the connection fails every claim in it (each handler's message comes back later); one that
//! fails for a reason of the data is tried again claim by claim.

use std::future::Future;

use sqlx::PgPool;

use crate::{
    group::{Group, Statement},
    store::{self, OrderEmail, OrderEmailClaim},
};

/// The statement that claims order e-mails ([`store::claim_order_emails`]).
#[derive(Debug)]
pub struct ClaimOrderEmails;

impl Statement for ClaimOrderEmails {
    const NAME: &'static str = "email.claim_order_emails";
    type Request = OrderEmailClaim;
    type Output = OrderEmail;

    fn run<'a>(
        pool: &'a PgPool,
        claims: &'a [&'a OrderEmailClaim],
    ) -> impl Future<Output = sqlx::Result<Vec<OrderEmail>>> + Send + 'a {
        store::claim_order_emails(pool, claims)
    }
}

/// Claims order e-mails, several in one statement when they come together: `run(claim)` gives
/// the event's inbox state, its order's data and the claim taken, if any.
pub type Claims = Group<ClaimOrderEmails>;
