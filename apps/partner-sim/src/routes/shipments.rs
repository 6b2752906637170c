//! The partner API proper: `POST /v1/shipments`, `GET /v1/shipments/{id}` and
//! `POST /v1/shipments/{id}/cancel`.
//!
//! A create request is counted first, then faulted or served; a cancel request draws its fault
//! the same way. The work (checks, booking, cancelling) is done before the configured latency,
//! so a client that gives up during the latency leaves the shipment booked — the "lost answer" a
//! retry with the same `Idempotency-Key` recovers. A new booking schedules its delivery.

use axum::{
    Json,
    body::{Body, Bytes},
    extract::{Path, State},
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::Value;

use crate::{
    delivery,
    error::ApiError,
    faults::Fault,
    json,
    shipment::{IdempotencyKey, ShipmentBody},
    state::AppState,
    store::{Booking, ShipmentError},
};

const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// `POST /v1/shipments`: books a shipment once per `Idempotency-Key`, or injects a fault.
pub async fn create(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    state.store().count_request(peek_reference(&body));
    faulted_or(&state, || book(&state, &headers, &body).into_response()).await
}

/// `POST /v1/shipments/{id}/cancel`: cancels a shipment not yet delivered, or injects a fault.
pub async fn cancel(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    faulted_or(&state, || {
        let cancelled = state.store().cancel(&id);
        cancelled.map(Json).map_err(ApiError::from).into_response()
    })
    .await
}

/// `GET /v1/shipments/{id}`: one shipment.
pub async fn show(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let found = state.store().shipment(&id);
    state.add_latency().await;
    match found {
        Some(shipment) => Json(shipment).into_response(),
        None => ApiError::from(ShipmentError::NotFound(id)).into_response(),
    }
}

/// Draws a fault: answers it, or `serve`s the request; then waits the configured latency.
async fn faulted_or(state: &AppState, serve: impl FnOnce() -> Response) -> Response {
    let answer = match state.draw_fault() {
        Some(Fault::Hang(duration)) => return hang(state, duration).await,
        Some(Fault::Unavailable) => ApiError::Unavailable.into_response(),
        Some(Fault::RateLimited { retry_after_s }) => {
            ApiError::RateLimited { retry_after_s }.into_response()
        }
        None => serve(),
    };
    state.add_latency().await;
    answer
}

fn book(state: &AppState, headers: &HeaderMap, body: &Bytes) -> Result<Response, ApiError> {
    let key = IdempotencyKey::from_headers(headers)?;
    let request = json::parse::<ShipmentBody>(headers, body)?.parse()?;
    let booking = state.store().book(key, request);
    match booking {
        Booking::Created(shipment) => {
            delivery::schedule(state, shipment.id.clone());
            Ok((StatusCode::CREATED, Json(shipment)).into_response())
        }
        Booking::Replayed(shipment) => {
            let mut response = (StatusCode::OK, Json(shipment)).into_response();
            let replayed = HeaderValue::from_static("true");
            response.headers_mut().insert(REPLAYED, replayed);
            Ok(response)
        }
        Booking::KeyReused => Err(ApiError::IdempotencyKeyReused),
    }
}

/// The `reference` of a body, when it is JSON with a string there: for the counters only.
fn peek_reference(body: &Bytes) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    value.get("reference")?.as_str().map(str::to_owned)
}

/// Holds the request for `duration` (or until shutdown), then closes the connection without
/// an answer: the body fails before its first byte, so hyper drops the connection with the
/// status line still unsent.
async fn hang(state: &AppState, duration: std::time::Duration) -> Response {
    tracing::info!(hang_ms = duration.as_millis() as u64, "hanging request");
    state.pause(duration).await;
    let failing = futures::stream::iter([Err::<Bytes, _>(std::io::Error::other("hang fault"))]);
    Response::new(Body::from_stream(failing))
}
