//! The product catalogue, read from PostgreSQL and cached in Redis for a few seconds.
//!
//! Checkout invalidates the cache after it changes stock, so the catalogue shows fresh stock to
//! the next shopper. A Redis failure never fails a catalogue read: it falls back to PostgreSQL.

use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::{AppState, error::ApiError};

/// A product as the shop shows it.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
pub struct Product {
    /// The product's id.
    pub id: i64,
    /// Stock-keeping unit.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// A sentence or two.
    pub description: String,
    /// Unit price in minor units.
    pub price_minor: i64,
    /// ISO 4217 currency code.
    pub currency: String,
    /// Units available.
    pub stock: i32,
    /// Picture, relative to the shop.
    pub image_url: String,
}

const ALL_PRODUCTS: &str =
    "SELECT id, sku, name, description, price_minor, currency::text AS currency, stock, image_url
     FROM products WHERE active ORDER BY id";

const PRODUCTS_BY_ID: &str =
    "SELECT id, sku, name, description, price_minor, currency::text AS currency, stock, image_url
     FROM products WHERE active AND id = ANY($1) ORDER BY id";

fn cache_key(state: &AppState) -> String {
    format!("{}catalogue:v1", state.key_prefix)
}

/// Every active product, from the cache when it is warm.
///
/// # Errors
/// [`ApiError`] when PostgreSQL fails.
pub async fn all(state: &AppState) -> Result<Vec<Product>, ApiError> {
    if let Some(products) = cached(state).await {
        return Ok(products);
    }
    let products: Vec<Product> = sqlx::query_as(ALL_PRODUCTS).fetch_all(&state.pool).await?;
    store(state, &products).await;
    Ok(products)
}

/// The active products among `ids`.
///
/// # Errors
/// [`ApiError`] when PostgreSQL fails.
pub async fn by_ids(pool: &PgPool, ids: &[i64]) -> Result<Vec<Product>, ApiError> {
    let products = sqlx::query_as(PRODUCTS_BY_ID)
        .bind(ids)
        .fetch_all(pool)
        .await?;
    Ok(products)
}

/// Drops the cached catalogue (after stock changed).
pub async fn invalidate(state: &AppState) {
    let mut redis = state.redis.clone();
    if let Err(error) = redis::cmd("DEL")
        .arg(cache_key(state))
        .query_async::<()>(&mut redis)
        .await
    {
        tracing::warn!(error = %error, "catalogue cache invalidation failed");
    }
}

async fn cached(state: &AppState) -> Option<Vec<Product>> {
    let mut redis = state.redis.clone();
    let raw: Option<Vec<u8>> = match redis::cmd("GET")
        .arg(cache_key(state))
        .query_async(&mut redis)
        .await
    {
        Ok(raw) => raw,
        Err(error) => {
            tracing::warn!(error = %error, "catalogue cache unreachable, reading PostgreSQL");
            None
        }
    };
    serde_json::from_slice(&raw?).ok()
}

async fn store(state: &AppState, products: &[Product]) {
    let Ok(json) = serde_json::to_vec(products) else {
        return;
    };
    let mut redis = state.redis.clone();
    let ttl = state.settings.http.catalogue_cache_s.max(1);
    let mut set = redis::cmd("SET");
    set.arg(cache_key(state)).arg(json).arg("EX").arg(ttl);
    if let Err(error) = set.query_async::<()>(&mut redis).await {
        tracing::warn!(error = %error, "catalogue cache write failed");
    }
}
