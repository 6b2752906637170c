//! `GET /api/products`.

use axum::{Json, extract::State};
use serde_json::{Value, json};

use crate::{AppState, catalogue, error::ApiError};

/// The catalogue.
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let products = catalogue::all(&state).await?;
    Ok(Json(json!({ "products": products })))
}
