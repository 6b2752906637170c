//! "My orders" on any device without passwords: a shopper asks for a sign-in link for an
//! address, the email-service mails it (only to an address that has orders), and opening it
//! attaches that address's orders to the session.
//!
//! - **Asking** ([`request_link`]) never looks up whether the address has orders: every
//!   well-formed address within the rate limits ([`limit`]) gets a `sign_in_requests` row and a
//!   `customer.sign_in_requested` outbox row in one transaction, and the same answer
//!   ([`ACCEPTED`]). So neither the answer nor its timing tells whether an address has orders;
//!   the e-mail worker decides, later, whether to send anything.
//! - **Signing in** ([`sign_in`]) checks the token's MAC (`domain::links`), then consumes the
//!   request in one statement (unused and unexpired, or nothing) and grants the session that
//!   address's customers (`session_grants`), in one transaction. A forged, used or expired
//!   link gets the same `410 sign_in_link_invalid`. The token is consumed by a `POST` from the
//!   page, never by opening the link, so a mail scanner that follows links does not use it up.
//!
//! A grant lasts as long as the session; the orders it shows are then reachable through the
//! access rule ([`crate::access`]) like the session's own.

mod limit;
mod store;

use chrono::{Duration, Utc};
use domain::{EmailAddress, EventEnvelope, EventType, SignInRequested, links};
use uuid::Uuid;

use crate::{AppState, client::ClientAddr, error::ApiError};

/// The one answer to an accepted request for a sign-in link, whatever the address.
pub const ACCEPTED: &str = "if this address has orders with us, we have sent it a sign-in link; \
                            it works once, for a short time";

/// Where an accepted request came from, for its event.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The request id: the event's correlation id.
    pub correlation_id: &'a str,
    /// The W3C trace context the event carries on.
    pub traceparent: &'a str,
}

/// Parses the address of a sign-in link request.
///
/// # Errors
/// `422 invalid_email` (field `email`) when it is not `local@domain.tld`.
pub fn parse_email(raw: &str) -> Result<EmailAddress, ApiError> {
    EmailAddress::parse(raw).map_err(|_| {
        ApiError::invalid(
            "invalid_email",
            "enter an e-mail address such as name@example.com",
            Some("email".into()),
        )
    })
}

/// Records a sign-in link request for `email` and its event, if the rate limits allow.
///
/// # Errors
/// `429 rate_limited` over a limit; `500`/`503` when a service fails. Nothing is written then.
pub async fn request_link(
    state: &AppState,
    client: &ClientAddr,
    email: &EmailAddress,
    origin: Origin<'_>,
) -> Result<(), ApiError> {
    limit::check(state, client, email).await?;
    let request_id = Uuid::new_v4();
    let ttl = Duration::seconds(state.settings.shop.sign_in_ttl_s as i64);
    let occurred_at = Utc::now();
    let payload = SignInRequested {
        expires_at: occurred_at + ttl,
    };
    let mut event = EventEnvelope::new(
        EventType::SignInRequested,
        request_id,
        origin.correlation_id,
        origin.traceparent,
        &payload,
    )
    .map_err(|e| ApiError::Internal(e.into()))?;
    event.occurred_at = occurred_at;
    let mut tx = state.pool.begin().await?;
    store::insert_request(&mut tx, request_id, email.as_str(), payload.expires_at).await?;
    outbox::enqueue(&mut tx, &event).await?;
    tx.commit().await?;
    tracing::info!(sign_in_request.id = %request_id, "sign-in link requested");
    Ok(())
}

/// Signs session `owner` in with a sign-in `token`: the customers of the link's address are
/// granted to it.
///
/// # Errors
/// `410 sign_in_link_invalid` when the token is forged or altered, or its request was used or
/// has expired (one answer for all); `500`/`503` when a service fails.
pub async fn sign_in(state: &AppState, owner: &str, token: &str) -> Result<(), ApiError> {
    let request_id =
        links::verify_sign_in_token(state.link_key(), token).ok_or_else(link_invalid)?;
    let mut tx = state.pool.begin().await?;
    let email = store::consume(&mut tx, request_id)
        .await?
        .ok_or_else(link_invalid)?;
    let customers = store::grant(&mut tx, owner, &email).await?;
    tx.commit().await?;
    tracing::info!(sign_in_request.id = %request_id, customers, "session signed in by a sign-in link");
    Ok(())
}

fn link_invalid() -> ApiError {
    ApiError::Gone {
        code: "sign_in_link_invalid",
        message: "this sign-in link has expired or was already used; ask for a new one".into(),
    }
}
