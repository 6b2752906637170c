//! `GET /api/cart`, `PUT|DELETE /api/cart/items/{product_id}`.

use axum::{
    Extension, Json,
    extract::{Path, State},
};
use serde::Deserialize;

use crate::{
    AppState,
    cart::{self, CartView},
    error::ApiError,
    json::ApiJson,
    session::Session,
};

/// Body of `PUT /api/cart/items/{product_id}`.
#[derive(Debug, Deserialize)]
pub struct SetQuantity {
    quantity: i64,
}

/// The session's cart.
pub async fn show(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
) -> Result<Json<CartView>, ApiError> {
    Ok(Json(cart::view(&state, &session).await?))
}

/// Sets a product's quantity; answers the whole cart.
pub async fn put_item(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Path(product_id): Path<String>,
    ApiJson(body): ApiJson<SetQuantity>,
) -> Result<Json<CartView>, ApiError> {
    cart::set(
        &state,
        &session,
        parse_product_id(&product_id)?,
        body.quantity,
    )
    .await?;
    show(State(state), Extension(session)).await
}

/// Removes a product; answers the whole cart.
pub async fn remove_item(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Path(product_id): Path<String>,
) -> Result<Json<CartView>, ApiError> {
    cart::remove(&state, &session, parse_product_id(&product_id)?).await?;
    show(State(state), Extension(session)).await
}

fn parse_product_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound {
        code: "product_not_found",
        message: format!("there is no product {raw}"),
    })
}
