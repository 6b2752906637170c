//! `POST /api/stripe/webhook`: Stripe's word on a PaymentIntent, for when it arrives before (or
//! instead of) the billing worker's own answer.
//!
//! The signature is checked first (a missing, forged or stale one gets `400 invalid_signature`
//! and changes nothing). The Stripe event id is recorded in the same transaction as its effect,
//! so a replayed event finds its row and does nothing. The effect itself goes through
//! [`orders::payments::apply_outcome`] — the order's row lock, the state machine and the outbox —
//! exactly as the worker's does, so whichever comes second finds the order already moved.
//!
//! A payment that waited for the shopper's 3-D Secure ends the same way, by this webhook or by
//! the order page's "I have confirmed" call ([`action`]), whichever comes first; both read the
//! intent through [`intents::outcome`].

pub mod action;
pub mod intents;

use axum::{Json, body::Bytes, extract::State, http::HeaderMap};
use orders::payments::{self, ApplyError, PaymentOutcome};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    AppState,
    error::ApiError,
    signature,
    webhooks::{self, Sender},
};
use intents::Verdict;

/// The parts of a Stripe event this endpoint reads.
#[derive(Debug, Deserialize)]
struct StripeEvent {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    data: EventData,
}

#[derive(Debug, Deserialize)]
struct EventData {
    object: Value,
}

/// What the endpoint did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handled {
    Applied,
    AlreadyApplied,
    Duplicate,
    Ignored,
}

/// Receives one Stripe event.
pub async fn webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let stripe = &state.settings.stripe;
    let header = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    let now = chrono::Utc::now().timestamp();
    signature::verify(
        &body,
        header,
        stripe.webhook_secret.expose_secret(),
        now,
        stripe.webhook_tolerance_s,
    )
    .map_err(|e| bad_request("invalid_signature", e.to_string()))?;
    let event: StripeEvent = serde_json::from_slice(&body)
        .ok()
        .filter(|e: &StripeEvent| e.id.starts_with("evt_"))
        .ok_or_else(|| bad_request("invalid_event", "the body is not a Stripe event".into()))?;
    let handled = reconcile(&state, &event).await?;
    tracing::info!(stripe.event_id = event.id, stripe.event_type = event.event_type, handled = ?handled, "Stripe webhook");
    Ok(Json(
        json!({"received": true, "handled": format!("{handled:?}").to_lowercase()}),
    ))
}

async fn reconcile(state: &AppState, event: &StripeEvent) -> Result<Handled, ApiError> {
    let mut tx = state.pool.begin().await?;
    if !webhooks::first_time(&mut tx, Sender::Stripe, &event.id, &event.event_type).await? {
        return Ok(Handled::Duplicate);
    }
    let handled = match outcome(event) {
        None => Handled::Ignored,
        Some((order_id, outcome)) => {
            match payments::apply_outcome(&mut tx, order_id, &outcome, &event.id, "").await {
                Ok(payments::Applied::Moved(_)) => Handled::Applied,
                Ok(payments::Applied::AlreadyDone(_)) => Handled::AlreadyApplied,
                Err(ApplyError::OrderNotFound(_)) => Handled::Ignored,
                Err(e) => return Err(ApiError::Internal(e.into())),
            }
        }
    };
    tx.commit().await?;
    Ok(handled)
}

/// The order and outcome a PaymentIntent event reports, if it is one of ours.
fn outcome(event: &StripeEvent) -> Option<(Uuid, PaymentOutcome)> {
    let verdict = match event.event_type.as_str() {
        "payment_intent.succeeded" => Verdict::Succeeded,
        "payment_intent.payment_failed" => Verdict::Failed,
        _ => return None,
    };
    intents::outcome(&event.data.object, verdict)
}

fn bad_request(code: &'static str, message: String) -> ApiError {
    ApiError::BadRequest { code, message }
}
