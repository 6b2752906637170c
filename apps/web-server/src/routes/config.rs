//! `GET /api/config`: what the page must know of the shop's set-up before it renders the
//! checkout — whether it collects cards with Stripe's Payment Element, and with which
//! publishable key. The same for every visitor and changed only by a restart, so it needs no
//! session and may be cached. It never holds a secret: the publishable key is public by design,
//! and the settings refuse a secret key in its place.

use axum::{
    Json,
    extract::State,
    http::{HeaderValue, header},
    response::IntoResponse,
};
use serde_json::json;

use crate::AppState;

/// How long browsers and proxies may keep the answer: a new key reaches open pages within
/// five minutes of the restart that brought it.
const CACHE_CONTROL: HeaderValue = HeaderValue::from_static("public, max-age=300");

/// `{"stripe_publishable_key": "pk_…" | null}`; `null` means the local test payment methods.
pub async fn show(State(state): State<AppState>) -> impl IntoResponse {
    let key = state.settings.stripe.publishable_key();
    (
        [(header::CACHE_CONTROL, CACHE_CONTROL)],
        Json(json!({ "stripe_publishable_key": key })),
    )
}
