//! Parcels that arrive: every booked shipment is delivered [`Delivery::deliver_after`] later
//! (unless cancelled first), and its `shipment.delivered` [`Event`] is posted to the callback
//! URL, if there is one.
//!
//! Notifications are at least once, as with real webhooks: an attempt that fails (not a `2xx`,
//! no connection, no answer within five seconds) is retried with the same event id and body
//! after an exponential backoff, up to eight attempts. Timers and retries are background tasks
//! that stop when shutdown begins: pending deliveries are dropped, never waited for.

use std::time::Duration;

use axum::body::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::{
    callback::{self, Callback, MAX_ATTEMPTS},
    shipment::Shipment,
    state::AppState,
    store::ShipmentError,
};

/// How long after booking a shipment is delivered, unless told otherwise.
pub const DEFAULT_DELIVER_AFTER_MS: u64 = 10_000;

/// Delivery settings, fixed at start-up except the delay (`PUT /v1/_sim/delivery`).
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Where delivery events are posted; none are sent without one.
    pub callback: Option<Callback>,
    /// How long after booking a shipment is delivered.
    pub deliver_after: Duration,
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            callback: None,
            deliver_after: Duration::from_millis(DEFAULT_DELIVER_AFTER_MS),
        }
    }
}

/// A `shipment.delivered` event, serialised once: every attempt and every re-send of it
/// carries this id and these bytes.
#[derive(Debug, Clone)]
pub struct Event {
    /// `evt_` and 32 hex digits.
    pub id: String,
    /// The JSON sent.
    pub body: Bytes,
}

/// The JSON of an event.
#[derive(Serialize)]
struct EventBody<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    created_at: DateTime<Utc>,
    shipment: &'a Shipment,
}

impl Event {
    /// The event of `shipment`'s delivery, dated when it was delivered.
    pub fn delivered(shipment: &Shipment) -> Self {
        let id = format!("evt_{}", Uuid::new_v4().simple());
        let body = EventBody {
            id: &id,
            kind: "shipment.delivered",
            created_at: shipment.delivered_at.unwrap_or_else(Utc::now),
            shipment,
        };
        let body = serde_json::to_vec(&body).expect("an event always serialises");
        Event {
            id,
            body: Bytes::from(body),
        }
    }
}

/// Delivers shipment `id` once the delay in force now has passed, unless it was cancelled or
/// delivered meanwhile, or shutdown began.
pub fn schedule(state: &AppState, id: String) {
    let state = state.clone();
    let after = state.deliver_after();
    tokio::spawn(async move {
        if state
            .unless_stopping(tokio::time::sleep(after))
            .await
            .is_none()
        {
            return;
        }
        let delivered = state.store().deliver(&id);
        match delivered {
            Ok(delivered) if delivered.first => notify(&state, delivered.event).await,
            Ok(_) => tracing::debug!(shipment = %id, "already delivered"),
            Err(error) => tracing::debug!(shipment = %id, %error, "not delivered"),
        }
    });
}

/// Delivers shipment `id` now (again, if it already was) and sends its event in the background.
///
/// # Errors
/// [`ShipmentError::NotFound`], or [`ShipmentError::Cancelled`].
pub fn deliver_now(state: &AppState, id: &str) -> Result<Shipment, ShipmentError> {
    let delivered = state.store().deliver(id)?;
    let background = state.clone();
    tokio::spawn(async move { notify(&background, delivered.event).await });
    Ok(delivered.shipment)
}

/// Posts `event` to the callback URL until an attempt succeeds, the attempts run out or
/// shutdown begins.
async fn notify(state: &AppState, event: Event) {
    let Some(callback) = state.callback() else {
        return;
    };
    for attempt in 1..=MAX_ATTEMPTS {
        let Some(sent) = state.unless_stopping(callback.post(&event)).await else {
            return;
        };
        state.store().count_callback(sent.is_ok());
        match sent {
            Ok(()) => {
                tracing::info!(event = %event.id, attempt, "callback sent");
                return;
            }
            Err(error) => {
                let error = telemetry::error_chain(&error);
                tracing::warn!(event = %event.id, attempt, %error, "callback failed");
            }
        }
        let wait = tokio::time::sleep(callback::backoff(attempt));
        if attempt < MAX_ATTEMPTS && state.unless_stopping(wait).await.is_none() {
            return;
        }
    }
    tracing::warn!(event = %event.id, "callback given up after {MAX_ATTEMPTS} attempts");
}
