//! The HTTP surface: paths, layers and the thin handlers that map requests to domain calls.

mod cart;
mod config;
mod health;
mod orders;
mod products;
mod sign_in;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{HeaderName, HeaderValue, Request, header},
    middleware,
    response::Response,
    routing::{get, post, put},
};
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    services::{ServeDir, ServeFile},
    trace::TraceLayer,
};

use crate::{AppState, error::ApiError, limits, metrics, session, trace};

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The request id header; its value becomes the events' `correlation_id`.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Set (`true`) on a checkout answer replayed for a repeated `Idempotency-Key`.
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// Every route of the web-server.
pub fn router(state: AppState) -> Router {
    let shopper = Router::new()
        .route("/cart", get(cart::show))
        .route(
            "/cart/items/{product_id}",
            put(cart::put_item).delete(cart::remove_item),
        )
        .route("/orders", get(orders::list).post(orders::checkout))
        .route("/orders/{order_id}", get(orders::show))
        .route("/orders/{order_id}/invoice.pdf", get(orders::invoice_pdf))
        .route("/orders/{order_id}/events", get(orders::events))
        .route("/orders/{order_id}/cancel", post(orders::cancel))
        .route(
            "/orders/{order_id}/payment/action",
            get(crate::stripe::action::action),
        )
        .route(
            "/orders/{order_id}/payment/check",
            post(crate::stripe::action::check),
        )
        .route("/sign-in", post(sign_in::sign_in))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            session::layer,
        ));
    // Rate limits before the session: a refused request costs no Redis or PostgreSQL call. The
    // webhooks come from Stripe and the partner, signed, and are not limited.
    let limited = Router::new()
        .route("/products", get(products::list))
        .route("/config", get(config::show))
        .route("/sign-in/requests", post(sign_in::request_link))
        .merge(shopper)
        .route_layer(middleware::from_fn_with_state(
            state.limits.clone(),
            limits::layer,
        ));
    let api = Router::new()
        .route("/stripe/webhook", post(crate::stripe::webhook))
        .route("/partner/events", post(crate::partner::events))
        .merge(limited)
        .fallback(|| async { not_found() })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed });
    let static_dir = &state.settings.http.static_dir;
    let front_end =
        ServeDir::new(static_dir).fallback(ServeFile::new(format!("{static_dir}/index.html")));
    Router::new()
        .nest("/api", api)
        .route("/healthz", get(health::live))
        // Served on the operations listener only ([`ops_router`]); a plain 404 here, not the
        // front end's page.
        .route("/metrics", get(|| async { not_found() }))
        .route("/readyz", get(|| async { not_found() }))
        .fallback_service(front_end)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::map_response(no_referrer))
        .layer(middleware::from_fn(metrics::track_checkout))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        // The request's span is made by `trace::start` (it continues the caller's trace);
        // the trace layer logs in it.
        .layer(TraceLayer::new_for_http().make_span_with(|_: &Request<_>| tracing::Span::current()))
        .layer(middleware::from_fn(trace::start))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}

/// The operations listener (`APP__METRICS__ADDR`, 127.0.0.1:9100 by default), never the shop's
/// port: Prometheus metrics (order volumes, error codes) and the readiness check (a database, a
/// Redis and an SQS call per hit) are for the operator's network only.
pub fn ops_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
        .route("/metrics", get(metrics::scrape))
        .fallback(|| async { not_found() })
        .with_state(state)
}

/// `Referrer-Policy: no-referrer` on every answer (pages, API, files): an order page opened by a
/// signed link has its token in the address, which must not reach another site as a
/// `Referer`.
async fn no_referrer(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn not_found() -> ApiError {
    ApiError::NotFound {
        code: "not_found",
        message: "no such resource".into(),
    }
}
