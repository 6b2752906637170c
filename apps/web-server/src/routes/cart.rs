//! `GET /api/cart`, `PUT|DELETE /api/cart/items/{product_id}`.

use axum::{
    Extension, Json,
    extract::{Path, Query, State},
};
use std::collections::HashMap;

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

/// The query string; `?country=AT` names the destination the cart is quoted for. Read as a map,
/// which cannot fail to deserialise, so that no query answers a non-JSON rejection.
type QuoteFor = HashMap<String, String>;

/// The parsed `country`; `422 invalid_country` for anything but two letters.
fn country(query: &QuoteFor) -> Result<Option<String>, ApiError> {
    let Some(raw) = query.get("country").filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    domain::checkout::parse_country(raw)
        .map(Some)
        .map_err(|e| ApiError::invalid("invalid_country", e.to_string(), Some("country".into())))
}

/// The session's cart, quoted for `?country=` (the default rates without one).
pub async fn show(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Query(quote_for): Query<QuoteFor>,
) -> Result<Json<CartView>, ApiError> {
    let country = country(&quote_for)?;
    Ok(Json(
        cart::view(&state, &session, country.as_deref()).await?,
    ))
}

/// Sets a product's quantity; answers the whole cart (quoted as `GET` does).
pub async fn put_item(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Path(product_id): Path<String>,
    quote_for: Query<QuoteFor>,
    ApiJson(body): ApiJson<SetQuantity>,
) -> Result<Json<CartView>, ApiError> {
    cart::set(
        &state,
        &session,
        parse_product_id(&product_id)?,
        body.quantity,
    )
    .await?;
    show(State(state), Extension(session), quote_for).await
}

/// Removes a product; answers the whole cart (quoted as `GET` does).
pub async fn remove_item(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Path(product_id): Path<String>,
    quote_for: Query<QuoteFor>,
) -> Result<Json<CartView>, ApiError> {
    cart::remove(&state, &session, parse_product_id(&product_id)?).await?;
    show(State(state), Extension(session), quote_for).await
}

fn parse_product_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound {
        code: "product_not_found",
        message: format!("there is no product {raw}"),
    })
}
