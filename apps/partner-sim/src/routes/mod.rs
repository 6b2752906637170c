//! The HTTP surface: the partner API under `/v1/shipments`, the simulator's own controls under
//! `/v1/_sim/`, and `/healthz`.

mod health;
mod shipments;
mod sim;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    routing::{get, post},
};
use tower_http::trace::TraceLayer;

use crate::{error::ApiError, state::AppState};

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Every route of the simulator.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/shipments", post(shipments::create))
        .route("/v1/shipments/{id}", get(shipments::show))
        .route("/v1/shipments/{id}/cancel", post(shipments::cancel))
        .route("/v1/_sim/stats", get(sim::stats))
        .route("/v1/_sim/faults", get(sim::faults).put(sim::set_faults))
        .route(
            "/v1/_sim/delivery",
            get(sim::delivery).put(sim::set_delivery),
        )
        .route("/v1/_sim/shipments/{id}/deliver", post(sim::deliver))
        .route("/healthz", get(health::live))
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
