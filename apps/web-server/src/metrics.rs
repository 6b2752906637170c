//! What the web-server measures: checkouts by outcome and their latency, and orders by status.
//!
//! Series (served at `GET /metrics` on the web-server's own listener):
//! - [`CHECKOUT_REQUESTS_TOTAL`] and [`CHECKOUT_DURATION`], recorded by [`track_checkout`], a
//!   middleware around the whole `POST /api/orders` request (session, body, transaction);
//! - [`ORDERS`], refreshed from one `GROUP BY` query when `/metrics` is scraped, at most every
//!   `metrics.orders_refresh_s` (15 s): however many scrapers, one count per interval.
//!
//! - [`RATE_LIMITED_TOTAL`], counted by [`rate_limited`] for every request a rate limit
//!   refused ([`crate::limits`], and the sign-in e-mails' limits in Redis), and
//!   [`RATE_LIMIT_KEYS`], set by the limiters' clean-up pass.
//!
//! All of it is served on the operations listener (`APP__METRICS__ADDR`), not the shop's port.
//!
//! The outbox backlog gauges belong to the relay (`outbox_relay::metrics`), not to this process.

use std::time::Instant;

use axum::{
    extract::{Request, State},
    http::Method,
    middleware::Next,
    response::{IntoResponse, Response},
};
use domain::OrderStatus;
use sqlx::PgPool;

use ::orders::read as orders;

use crate::{AppState, error::ErrorCode, routes::REPLAYED};

/// Counter `chargeflow_checkout_requests_total{outcome, code}`: checkouts by outcome —
/// `created`, `replayed` (idempotent retry), `invalid` (4xx), `out_of_stock`, `conflict`
/// (another 409), `rate_limited` (429), `unavailable` (503), `error` (500) — with the error's
/// stable `code` on errors.
pub const CHECKOUT_REQUESTS_TOTAL: &str = "chargeflow_checkout_requests_total";
/// Histogram `chargeflow_checkout_duration_seconds`: time to answer `POST /api/orders`.
pub const CHECKOUT_DURATION: &str = "chargeflow_checkout_duration_seconds";
/// Gauge `chargeflow_orders{status}`: orders in each status, every status listed.
pub const ORDERS: &str = "chargeflow_orders";

/// Counter `chargeflow_http_rate_limited_total{limit, per}`: requests answered `429
/// rate_limited`, by limit (`api`, `new_session`, `cart_write`, `checkout`, `cancel`,
/// `sign_in`, and `sign_in_email` for the Redis limits of sign-in e-mails) and by what it counts
/// (`client`, `session`, `address`).
pub const RATE_LIMITED_TOTAL: &str = "chargeflow_http_rate_limited_total";
/// Gauge `chargeflow_rate_limit_keys{limit, per}`: clients or sessions an in-process limiter
/// holds a state for (its memory), after its last clean-up.
pub const RATE_LIMIT_KEYS: &str = "chargeflow_rate_limit_keys";

/// Describes the series (their `# HELP` lines); harmless before a recorder is installed.
pub fn describe() {
    ::metrics::describe_counter!(CHECKOUT_REQUESTS_TOTAL, "Checkout requests by outcome.");
    ::metrics::describe_histogram!(
        CHECKOUT_DURATION,
        ::metrics::Unit::Seconds,
        "Time to answer a checkout request."
    );
    ::metrics::describe_gauge!(ORDERS, "Orders in each status.");
    ::metrics::describe_counter!(
        RATE_LIMITED_TOTAL,
        "Requests refused by a rate limit (429 rate_limited), by limit and by what it counts."
    );
    ::metrics::describe_gauge!(
        RATE_LIMIT_KEYS,
        "Clients or sessions an in-process rate limiter holds a state for."
    );
}

/// Counts one request refused by the rate limit `limit` per `per` (see [`RATE_LIMITED_TOTAL`]).
pub fn rate_limited(limit: &'static str, per: &'static str) {
    ::metrics::counter!(RATE_LIMITED_TOTAL, "limit" => limit, "per" => per).increment(1);
}

/// Middleware: counts and times `POST /api/orders`; passes every other request through.
pub async fn track_checkout(request: Request, next: Next) -> Response {
    if request.method() != Method::POST || request.uri().path() != "/api/orders" {
        return next.run(request).await;
    }
    let started = Instant::now();
    let response = next.run(request).await;
    let counter = match checkout_outcome(&response) {
        (outcome, Some(code)) => {
            ::metrics::counter!(CHECKOUT_REQUESTS_TOTAL, "outcome" => outcome, "code" => code)
        }
        (outcome, None) => ::metrics::counter!(CHECKOUT_REQUESTS_TOTAL, "outcome" => outcome),
    };
    counter.increment(1);
    ::metrics::histogram!(CHECKOUT_DURATION).record(started.elapsed());
    response
}

/// The `outcome` of a checkout answer, and its error code if it is an error.
fn checkout_outcome(response: &Response) -> (&'static str, Option<&'static str>) {
    let status = response.status();
    if let Some(ErrorCode(code)) = response.extensions().get::<ErrorCode>() {
        let outcome = match (status.as_u16(), *code) {
            (_, "out_of_stock") => "out_of_stock",
            (409, _) => "conflict",
            (429, _) => "rate_limited",
            (503, _) => "unavailable",
            (400..=499, _) => "invalid",
            _ => "error",
        };
        return (outcome, Some(code));
    }
    match (
        status.is_success(),
        response.headers().contains_key(REPLAYED),
    ) {
        (true, true) => ("replayed", None),
        (true, false) => ("created", None),
        (false, _) => ("error", None),
    }
}

/// `GET /metrics`: refreshes the orders gauge, then renders every series of the process.
pub async fn scrape(State(state): State<AppState>) -> impl IntoResponse {
    {
        // Held across the count: concurrent scrapes wait for one count instead of each running
        // their own.
        let mut counted_at = state.orders_counted_at.lock().await;
        if count_due(
            *counted_at,
            state.settings.metrics.orders_refresh(),
            Instant::now(),
        ) {
            refresh_orders(&state.pool).await;
            *counted_at = Some(Instant::now());
        }
    }
    telemetry::metrics::scrape().await
}

/// Whether the orders gauge, last counted at `counted_at`, is to be counted again at `now`.
fn count_due(counted_at: Option<Instant>, every: std::time::Duration, now: Instant) -> bool {
    counted_at.is_none_or(|at| now.saturating_duration_since(at) >= every)
}

async fn refresh_orders(pool: &PgPool) {
    match orders::count_by_status(pool).await {
        Ok(counts) => set_orders(&counts),
        Err(error) => {
            tracing::warn!(error = %telemetry::error_chain(&error), "could not count orders by status")
        }
    }
}

/// Sets the gauge of every status, 0 for those without orders (so a status that empties reads 0).
fn set_orders(counts: &[(String, i64)]) {
    for status in OrderStatus::ALL {
        let count = counts
            .iter()
            .find(|(name, _)| name == status.as_str())
            .map_or(0, |(_, count)| *count);
        ::metrics::gauge!(ORDERS, "status" => status.as_str()).set(count as f64);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::http::{HeaderValue, StatusCode};

    use super::*;

    #[test]
    fn orders_are_counted_at_the_first_scrape_and_then_once_per_interval() {
        let t0 = Instant::now();
        let every = Duration::from_secs(15);
        assert!(count_due(None, every, t0));
        assert!(!count_due(Some(t0), every, t0 + Duration::from_secs(14)));
        assert!(count_due(Some(t0), every, t0 + every));
        assert!(count_due(Some(t0), Duration::ZERO, t0), "0: every scrape");
    }
    use crate::error::ApiError;

    fn outcome_of(error: ApiError) -> (&'static str, Option<&'static str>) {
        checkout_outcome(&error.into_response())
    }

    #[test]
    fn error_answers_are_sorted_by_status_and_keep_their_code() {
        let conflict = |code| ApiError::Conflict {
            code,
            message: String::new(),
            product_id: None,
        };
        assert_eq!(
            outcome_of(ApiError::invalid("invalid_email", "", None)),
            ("invalid", Some("invalid_email"))
        );
        assert_eq!(
            outcome_of(conflict("out_of_stock")),
            ("out_of_stock", Some("out_of_stock"))
        );
        assert_eq!(
            outcome_of(conflict("idempotency_key_in_use")),
            ("conflict", Some("idempotency_key_in_use"))
        );
        assert_eq!(
            outcome_of(ApiError::Internal(anyhow::anyhow!("boom"))),
            ("error", Some("internal"))
        );
    }

    #[test]
    fn a_replayed_answer_is_not_counted_as_a_new_order() {
        let mut replayed = StatusCode::CREATED.into_response();
        replayed
            .headers_mut()
            .insert(REPLAYED, HeaderValue::from_static("true"));
        assert_eq!(checkout_outcome(&replayed), ("replayed", None));
        let created = StatusCode::CREATED.into_response();
        assert_eq!(checkout_outcome(&created), ("created", None));
    }
}
