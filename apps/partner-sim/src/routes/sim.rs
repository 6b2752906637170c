//! The simulator's own endpoints, under `/v1/_sim/` (the real partner has none of these):
//! counters, and the faults in force.

use axum::{
    Json,
    body::Bytes,
    extract::{Query, State},
    http::HeaderMap,
};
use serde::{Deserialize, Serialize};

use crate::{error::ApiError, faults::Faults, json, state::AppState, store::Counts};

/// `GET /v1/_sim/stats` query.
#[derive(Debug, Deserialize)]
pub struct StatsQuery {
    reference: Option<String>,
}

/// `GET /v1/_sim/stats` answer.
#[derive(Debug, Serialize)]
pub struct Stats {
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<String>,
    #[serde(flatten)]
    counts: Counts,
}

/// `GET /v1/_sim/stats[?reference=…]`: what was asked for one reference, or in total.
pub async fn stats(State(state): State<AppState>, Query(query): Query<StatsQuery>) -> Json<Stats> {
    let counts = state.store().counts(query.reference.as_deref());
    Json(Stats {
        reference: query.reference,
        counts,
    })
}

/// `GET /v1/_sim/faults`: the faults in force.
pub async fn faults(State(state): State<AppState>) -> Json<Faults> {
    Json(state.faults())
}

/// `PUT /v1/_sim/faults`: replaces the faults (missing fields take their defaults).
pub async fn set_faults(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Faults>, ApiError> {
    let faults: Faults = json::parse(&headers, &body)?;
    faults.check()?;
    tracing::info!(?faults, "faults replaced");
    state.set_faults(faults.clone());
    Ok(Json(faults))
}
