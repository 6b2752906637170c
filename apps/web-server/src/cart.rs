//! The session's cart: a Redis hash `product id → quantity` next to the session.

use domain::{
    InvoiceLine, InvoiceTotals,
    checkout::{MAX_LINES, Quantity},
};
use serde::Serialize;

use crate::{AppState, catalogue, error::ApiError, session::Session};

/// One line of the cart, priced from the catalogue.
#[derive(Debug, Serialize)]
pub struct CartLine {
    /// The product's id.
    pub product_id: i64,
    /// Stock-keeping unit.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Picture.
    pub image_url: String,
    /// Unit price in minor units.
    pub unit_price_minor: i64,
    /// Units in the cart.
    pub quantity: u32,
    /// `unit_price_minor × quantity`.
    pub line_total_minor: i64,
    /// Units available right now.
    pub stock: i32,
}

/// The cart as the API shows it, quoted for a parcel to `country` (the default rates when no
/// country is given): what checking it out would cost, shipping and tax included.
#[derive(Debug, Serialize)]
pub struct CartView {
    /// The lines, by product id.
    pub items: Vec<CartLine>,
    /// Sum of the line totals.
    pub subtotal_minor: i64,
    /// The destination the cart is quoted for; null when none was given.
    pub country: Option<String>,
    /// The shipping fee to `country` (0 for an empty cart).
    pub shipping_minor: i64,
    /// The tax rate applied to goods and shipping, in basis points.
    pub tax_rate_bp: u32,
    /// The tax on goods and shipping.
    pub tax_minor: i64,
    /// `subtotal + shipping + tax`: what placing the order would charge.
    pub total_minor: i64,
    /// Currency of every amount (null for an empty cart).
    pub currency: Option<String>,
}

/// The raw `(product id, quantity)` lines of the session's cart.
///
/// # Errors
/// [`ApiError::Unavailable`] when Redis fails.
pub async fn lines(state: &AppState, session: &Session) -> Result<Vec<(i64, i64)>, ApiError> {
    let mut redis = state.redis.clone();
    let raw: Vec<(String, String)> = redis::cmd("HGETALL")
        .arg(session.cart_key(&state.key_prefix))
        .query_async(&mut redis)
        .await?;
    let mut lines: Vec<(i64, i64)> = raw
        .into_iter()
        .filter_map(|(id, qty)| Some((id.parse().ok()?, qty.parse().ok()?)))
        .collect();
    lines.sort_unstable();
    Ok(lines)
}

/// Sets the quantity of a product that exists.
///
/// # Errors
/// `404 product_not_found`, `422 invalid_quantity` or `422 too_many_lines`.
pub async fn set(
    state: &AppState,
    session: &Session,
    product_id: i64,
    quantity: i64,
) -> Result<(), ApiError> {
    let quantity = Quantity::parse(product_id, quantity).map_err(|e| {
        ApiError::invalid("invalid_quantity", e.to_string(), Some("quantity".into()))
    })?;
    if catalogue::by_ids(&state.pool, &[product_id])
        .await?
        .is_empty()
    {
        return Err(ApiError::NotFound {
            code: "product_not_found",
            message: format!("there is no product {product_id}"),
        });
    }
    let current = lines(state, session).await?;
    if current.len() >= MAX_LINES && !current.iter().any(|(id, _)| *id == product_id) {
        return Err(ApiError::invalid(
            "too_many_lines",
            format!("a cart holds at most {MAX_LINES} different products"),
            None,
        ));
    }
    let key = session.cart_key(&state.key_prefix);
    let mut redis = state.redis.clone();
    redis::pipe()
        .cmd("HSET")
        .arg(&key)
        .arg(product_id)
        .arg(quantity.get())
        .ignore()
        .cmd("EXPIRE")
        .arg(&key)
        .arg(crate::session::TTL_S)
        .ignore()
        .query_async::<()>(&mut redis)
        .await?;
    Ok(())
}

/// Removes a product from the cart (no error if it was not there).
///
/// # Errors
/// [`ApiError::Unavailable`] when Redis fails.
pub async fn remove(state: &AppState, session: &Session, product_id: i64) -> Result<(), ApiError> {
    let mut redis = state.redis.clone();
    redis::cmd("HDEL")
        .arg(session.cart_key(&state.key_prefix))
        .arg(product_id)
        .query_async::<()>(&mut redis)
        .await?;
    Ok(())
}

/// Empties the cart (after a checkout from it). A failure is logged, not returned: the order
/// is already placed.
pub async fn clear(state: &AppState, session: &Session) {
    let mut redis = state.redis.clone();
    let mut delete = redis::cmd("DEL");
    delete.arg(session.cart_key(&state.key_prefix));
    if let Err(error) = delete.query_async::<()>(&mut redis).await {
        tracing::warn!(error = %error, "cart could not be cleared after checkout");
    }
}

/// The cart priced from the catalogue and quoted for `country`; lines whose product is gone are
/// dropped.
///
/// # Errors
/// [`ApiError`] when Redis or PostgreSQL fails.
pub async fn view(
    state: &AppState,
    session: &Session,
    country: Option<&str>,
) -> Result<CartView, ApiError> {
    let lines = lines(state, session).await?;
    let ids: Vec<i64> = lines.iter().map(|(id, _)| *id).collect();
    let products = catalogue::by_ids(&state.pool, &ids).await?;
    let items: Vec<CartLine> = lines
        .iter()
        .filter_map(|(id, qty)| {
            let product = products.iter().find(|p| p.id == *id)?;
            let quantity = u32::try_from(*qty).ok()?;
            Some(CartLine {
                product_id: product.id,
                sku: product.sku.clone(),
                name: product.name.clone(),
                image_url: product.image_url.clone(),
                unit_price_minor: product.price_minor,
                quantity,
                line_total_minor: product.price_minor.saturating_mul(i64::from(quantity)),
                stock: product.stock,
            })
        })
        .collect();
    let quote = quote(state, &items, country)?;
    Ok(CartView {
        subtotal_minor: quote.subtotal_minor,
        country: country.map(str::to_owned),
        shipping_minor: quote.shipping_minor,
        tax_rate_bp: quote.tax_rate.basis_points(),
        tax_minor: quote.tax_minor,
        total_minor: quote.total_minor,
        currency: products.first().map(|p| p.currency.clone()),
        items,
    })
}

/// The quote of the cart's lines, exactly as a checkout would compute it (`domain::pricing`).
fn quote(
    state: &AppState,
    items: &[CartLine],
    country: Option<&str>,
) -> Result<InvoiceTotals, ApiError> {
    let country = country.unwrap_or_default();
    if items.is_empty() {
        return Ok(domain::pricing::empty_quote(&state.prices, country));
    }
    let lines: Vec<InvoiceLine> = items
        .iter()
        .map(|l| InvoiceLine::new(&l.sku, &l.name, l.unit_price_minor, l.quantity))
        .collect();
    domain::quote(&lines, &state.prices, country).map_err(|e| ApiError::Internal(e.into()))
}
