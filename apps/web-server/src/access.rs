//! The one access rule for a shopper's order, used by `GET /api/orders/{id}`, its event stream,
//! its invoice and its cancellation.
//!
//! A request may see (and cancel) an order when
//!
//! 1. its session placed the order, or
//! 2. its session was signed in, by a one-time e-mailed link, for the order's customer
//!    (`session_grants`, see [`crate::sign_in`]), or
//! 3. it carries `?t=<token>`, a signed, unexpired link to that very order
//!    (`domain::links`, made by the email-service for every e-mail).
//!
//! Everything else — another session's order, an unknown or malformed id, a forged, altered,
//! expired or other order's token — gets the same `404 order_not_found` with the same body, so
//! an answer never tells whether an order exists. The rule is applied in the order query itself
//! (`orders::read::find_for`): there is no second path to an order.
//!
//! The token is checked again at every read, so an event stream opened with a link stops
//! showing changes once the link expires. It is taken from the query string as sent (tokens
//! are URL-safe; a percent-encoded one is simply not valid) and never logged: the request span
//! records the path only.

use axum::{
    extract::{FromRequestParts, Path},
    http::request::Parts,
};
use chrono::Utc;
use domain::links;
use orders::read::{self, OrderSummary, Viewer};
use uuid::Uuid;

use crate::{AppState, error::ApiError, session::Session};

/// The `t` query parameter of an order request, if any: the signed link's token.
#[derive(Debug, Clone, Default)]
pub struct OrderLink(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for OrderLink {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let token = parts.uri.query().and_then(|query| {
            query
                .split('&')
                .find_map(|pair| pair.strip_prefix("t="))
                .map(str::to_owned)
        });
        Ok(OrderLink(token))
    }
}

/// Who is asking for an order: the session and the link it came with.
#[derive(Debug, Clone)]
pub struct OrderAccess {
    owner: String,
    link: Option<String>,
}

impl OrderAccess {
    /// The access facts of a request.
    pub fn new(session: &Session, link: OrderLink) -> Self {
        OrderAccess {
            owner: session.owner(),
            link: link.0,
        }
    }

    /// The SHA-256 of the session id (what the session's orders carry as their owner).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The order, when this request may see it.
    ///
    /// # Errors
    /// `404 order_not_found` when it may not (or the order does not exist); `500`/`503` when the
    /// query fails.
    pub async fn order(&self, state: &AppState, order_id: Uuid) -> Result<OrderSummary, ApiError> {
        self.order_on(state, &state.pool, order_id).await
    }

    /// Like [`OrderAccess::order`], read through `db` (a transaction's connection, for a page
    /// read from one snapshot).
    ///
    /// # Errors
    /// As [`OrderAccess::order`].
    pub async fn order_on(
        &self,
        state: &AppState,
        db: impl sqlx::PgExecutor<'_>,
        order_id: Uuid,
    ) -> Result<OrderSummary, ApiError> {
        let has_order_link = self
            .link
            .as_deref()
            .is_some_and(|token| links::verify(state.link_key(), order_id, token, Utc::now()));
        let viewer = Viewer {
            owner: &self.owner,
            has_order_link,
        };
        read::find_for(db, order_id, &viewer)
            .await?
            .ok_or_else(ApiError::order_not_found)
    }
}

/// The order id of a path; a malformed one is `404 order_not_found`, like any order this request
/// may not see.
///
/// # Errors
/// `404 order_not_found` when it is not a UUID.
pub fn order_id(Path(raw): Path<String>) -> Result<Uuid, ApiError> {
    raw.parse().map_err(|_| ApiError::order_not_found())
}
