//! `POST /api/partner/events`: the shipping partner's signed notices, today
//! `shipment.delivered` (the parcel arrived).
//!
//! The `Partner-Signature` header is checked first with `APP__SHIPPING__CALLBACK_SECRET` (a
//! missing, forged or stale one gets `400 invalid_signature` and changes nothing). The partner's
//! event id is recorded in the same transaction as its effect, so a repeated notice finds its row
//! and does nothing; the effect itself is [`orders::delivery::record_delivery`]: `shipped →
//! delivered` once, with `shipment.delivered` emitted for the e-mail. A notice for a shipment the
//! shipping worker has not committed yet is answered `409` without being recorded, so the
//! partner's retry applies it later.

use axum::{Json, body::Bytes, extract::State, http::HeaderMap};
use chrono::{DateTime, Utc};
use orders::delivery::{self, Delivery};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    AppState,
    error::ApiError,
    signature,
    webhooks::{self, Sender},
};

/// The parts of a partner notice this endpoint reads.
#[derive(Debug, Deserialize)]
struct PartnerEvent {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    shipment: PartnerShipment,
}

#[derive(Debug, Deserialize)]
struct PartnerShipment {
    id: String,
    delivered_at: Option<DateTime<Utc>>,
}

/// Receives one partner notice.
pub async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let shipping = &state.settings.shipping;
    let header = headers
        .get("partner-signature")
        .and_then(|v| v.to_str().ok());
    signature::verify(
        &body,
        header,
        shipping.callback_secret.expose_secret(),
        Utc::now().timestamp(),
        shipping.callback_tolerance_s,
    )
    .map_err(|e| bad_request("invalid_signature", e.to_string()))?;
    let event: PartnerEvent = serde_json::from_slice(&body)
        .ok()
        .filter(|e: &PartnerEvent| e.id.starts_with("evt_"))
        .ok_or_else(|| bad_request("invalid_event", "the body is not a partner event".into()))?;
    let handled = apply(&state, &event).await?;
    tracing::info!(
        partner.event_id = event.id,
        partner.event_type = event.event_type,
        handled,
        "partner notice"
    );
    Ok(Json(json!({"received": true, "handled": handled})))
}

async fn apply(state: &AppState, event: &PartnerEvent) -> Result<&'static str, ApiError> {
    let mut tx = state.pool.begin().await?;
    if !webhooks::first_time(&mut tx, Sender::Partner, &event.id, &event.event_type).await? {
        return Ok("duplicate");
    }
    if event.event_type != "shipment.delivered" {
        tx.commit().await?;
        return Ok("ignored");
    }
    let delivered_at = event.shipment.delivered_at.unwrap_or_else(Utc::now);
    let recorded = delivery::record_delivery(&mut tx, &event.shipment.id, delivered_at, &event.id)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let handled = match recorded {
        Some(Delivery::Delivered(_)) => "delivered",
        Some(Delivery::AlreadyDelivered(_)) => "already_delivered",
        None | Some(Delivery::NotShipped(..)) => return Err(not_yet_shipped()),
    };
    tx.commit().await?;
    Ok(handled)
}

fn not_yet_shipped() -> ApiError {
    ApiError::Conflict {
        code: "shipment_not_recorded",
        message: "the shipment is not recorded as shipped yet; send the notice again later".into(),
        product_id: None,
    }
}

fn bad_request(code: &'static str, message: String) -> ApiError {
    ApiError::BadRequest { code, message }
}
