//! The simulator's own endpoints, under `/v1/_sim/` (the real partner has none of these):
//! counters, the faults in force, the delivery delay, and delivering a shipment on demand.

use axum::{
    Json,
    body::Bytes,
    extract::{Path, Query, State},
    http::HeaderMap,
};
use serde::{Deserialize, Serialize};

use crate::{
    delivery,
    error::ApiError,
    faults::Faults,
    json,
    shipment::Shipment,
    state::AppState,
    store::{CallbackCounts, Counts},
};

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
    /// In the totals only.
    #[serde(flatten)]
    callbacks: Option<CallbackCounts>,
}

/// `GET` and `PUT /v1/_sim/delivery` body.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverySettings {
    deliver_after_ms: u64,
}

/// `GET /v1/_sim/stats[?reference=…]`: what was asked for one reference, or in total.
pub async fn stats(State(state): State<AppState>, Query(query): Query<StatsQuery>) -> Json<Stats> {
    let store = state.store();
    let counts = store.counts(query.reference.as_deref());
    let callbacks = query.reference.is_none().then(|| store.callback_counts());
    Json(Stats {
        reference: query.reference,
        counts,
        callbacks,
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

/// `GET /v1/_sim/delivery`: the delivery delay in force.
pub async fn delivery(State(state): State<AppState>) -> Json<DeliverySettings> {
    Json(DeliverySettings {
        deliver_after_ms: state.deliver_after_ms(),
    })
}

/// `PUT /v1/_sim/delivery`: changes the delivery delay of the shipments booked from now on.
pub async fn set_delivery(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<DeliverySettings>, ApiError> {
    let settings: DeliverySettings = json::parse(&headers, &body)?;
    tracing::info!(
        deliver_after_ms = settings.deliver_after_ms,
        "delivery delay changed"
    );
    state.set_deliver_after_ms(settings.deliver_after_ms);
    Ok(Json(settings))
}

/// `POST /v1/_sim/shipments/{id}/deliver`: delivers a shipment now and sends its event (again,
/// with the same event id, if it was delivered already).
pub async fn deliver(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Shipment>, ApiError> {
    Ok(Json(delivery::deliver_now(&state, &id)?))
}
