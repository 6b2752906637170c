//! Liveness.

use axum::Json;
use serde_json::{Value, json};

/// `GET /healthz`: the process is up.
pub async fn live() -> Json<Value> {
    Json(json!({"status": "ok"}))
}
