//! Checkout: one PostgreSQL transaction that claims the idempotency key, locks and reserves
//! stock, writes the customer, the order, its lines, its timeline entry and the `order.placed`
//! outbox row, and saves the answer under the key. Either all of it commits or none of it.

mod request;
mod store;

use axum::http::StatusCode;
use domain::{
    EventEnvelope, EventType, InvoiceLine, InvoiceTotals, Money, OrderPlaced, OrderPlacedLine,
    PriceRules,
};
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

pub use request::{CheckoutBody, CheckoutRequest};
use store::{NewOrder, Product};

use crate::error::ApiError;

/// The answer to a checkout.
#[derive(Debug)]
pub struct Placed {
    /// `201` for a new order, or the saved status of a replay.
    pub status: StatusCode,
    /// The answer's body.
    pub body: Value,
    /// Whether this answer was saved earlier under the same idempotency key.
    pub replayed: bool,
}

/// Request-scoped facts a checkout records with the order.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// SHA-256 of the session id.
    pub owner: &'a str,
    /// The `Idempotency-Key` header, if sent.
    pub idempotency_key: Option<&'a str>,
    /// The request id, carried into the events.
    pub correlation_id: &'a str,
    /// The W3C trace context the `order.placed` event carries on (a span of the request's trace).
    pub traceparent: &'a str,
    /// The shop's shipping fees and tax rates: the order is quoted with them.
    pub prices: &'a PriceRules,
}

/// Places an order, or replays the first answer for a repeated idempotency key.
///
/// # Errors
/// `409 out_of_stock`, `409 quote_changed`, `422 unknown_product`, `422 mixed_currency`,
/// `422 idempotency_key_reused`, or an opaque `500`/`503`. Nothing is written in any of those
/// cases.
pub async fn place_order(
    pool: &PgPool,
    request: &CheckoutRequest,
    ctx: &Context<'_>,
) -> Result<Placed, ApiError> {
    let fingerprint = request.fingerprint();
    let mut tx = store::begin(pool).await?;
    if let Some(key) = ctx.idempotency_key
        && !store::claim_idempotency_key(&mut tx, ctx.owner, key, &fingerprint).await?
    {
        tx.rollback().await?;
        return replay(pool, ctx.owner, key, &fingerprint).await;
    }
    let body = write_order(&mut tx, request, ctx).await?;
    if let Some(key) = ctx.idempotency_key {
        store::save_response(&mut tx, ctx.owner, key, StatusCode::CREATED.as_u16(), &body).await?;
    }
    tx.commit().await?;
    Ok(Placed {
        status: StatusCode::CREATED,
        body,
        replayed: false,
    })
}

#[tracing::instrument(level = "debug", name = "checkout.transaction", skip_all, fields(db.system.name = "postgresql"))]
async fn write_order(
    conn: &mut PgConnection,
    request: &CheckoutRequest,
    ctx: &Context<'_>,
) -> Result<Value, ApiError> {
    let ids: Vec<i64> = request.lines.iter().map(|l| l.product_id).collect();
    let products = store::read_products(conn, &ids).await?;
    let lines = match_stock(request, &products)?;
    let quantities: Vec<i32> = lines.iter().map(|(_, q)| *q).collect();
    let prices: Vec<i64> = lines.iter().map(|(p, _)| p.price_minor).collect();
    let chosen: Vec<&Product> = lines.iter().map(|(p, _)| *p).collect();
    let order_id = Uuid::now_v7();
    let mut payload = order_placed(request, &lines)?;
    let quote = quote_of(&payload, ctx.prices, &request.customer.address.country)?;
    check_expected_total(request, &payload, &quote)?;
    payload.shipping_minor = Some(quote.shipping_minor);
    payload.tax_minor = Some(quote.tax_minor);
    payload.total_minor = Some(quote.total_minor);
    let event = EventEnvelope::new(
        EventType::OrderPlaced,
        order_id,
        ctx.correlation_id,
        ctx.traceparent,
        &payload,
    )
    .map_err(|e| ApiError::Internal(e.into()))?;
    let new_order = NewOrder {
        id: order_id,
        owner: ctx.owner,
        currency: payload.currency.as_str(),
        quote: &quote,
        payment_method: &request.payment_method,
        ship_name: &request.customer.name,
        address: &request.customer.address,
        correlation_id: ctx.correlation_id,
    };
    let created_at =
        store::insert_order(conn, &new_order, &request.customer, &chosen, &quantities).await?;
    orders::record_event(conn, &event, serde_json::json!({})).await?;
    // Last: the products' rows are locked from here to the commit only.
    let reserved = store::reserve_stock(conn, &ids, &quantities, &prices).await?;
    if reserved != ids.len() as u64 {
        return Err(changed_since_read(conn, request, &ids, &prices).await);
    }
    Ok(answer(order_id, &payload, &quote, created_at))
}

/// The order's quote: its lines as priced from the products read, shipping and tax for the
/// parcel's destination (see `domain::pricing`).
fn quote_of(
    order: &OrderPlaced,
    prices: &PriceRules,
    country: &str,
) -> Result<InvoiceTotals, ApiError> {
    let lines: Vec<InvoiceLine> = order
        .lines
        .iter()
        .map(|l| InvoiceLine::new(&l.sku, &l.name, l.unit_price_minor, l.quantity))
        .collect();
    domain::quote(&lines, prices, country).map_err(|e| ApiError::Internal(e.into()))
}

/// Refuses the order when the client showed the shopper another total than the one it would be
/// charged (a price or a rate changed since the page was quoted): `409 quote_changed`.
fn check_expected_total(
    request: &CheckoutRequest,
    order: &OrderPlaced,
    quote: &InvoiceTotals,
) -> Result<(), ApiError> {
    match request.expected_total_minor {
        Some(shown) if shown != quote.total_minor => Err(ApiError::Conflict {
            code: "quote_changed",
            message: format!(
                "the total is now {}, not {} as shown: please look at the order again",
                Money::new(quote.total_minor, order.currency),
                Money::new(shown, order.currency),
            ),
            product_id: None,
        }),
        _ => Ok(()),
    }
}

/// Why the stock could not be reserved although the products read at the start allowed it: a
/// concurrent checkout took the stock (`409 out_of_stock`), a product was withdrawn (`422
/// unknown_product`) or repriced (`409 quote_changed`). Read again under the rows' locks; the
/// caller's transaction is then rolled back, so nothing of the order stays.
async fn changed_since_read(
    conn: &mut PgConnection,
    request: &CheckoutRequest,
    ids: &[i64],
    prices: &[i64],
) -> ApiError {
    let products = match store::lock_products(conn, ids).await {
        Ok(products) => products,
        Err(e) => return e.into(),
    };
    if let Err(refused) = match_stock(request, &products) {
        return refused;
    }
    let repriced = ids.iter().zip(prices).find_map(|(id, price)| {
        products
            .iter()
            .find(|p| p.id == *id && p.price_minor != *price)
    });
    ApiError::Conflict {
        code: "quote_changed",
        message: match repriced {
            Some(p) => format!(
                "the price of {} changed: please look at the order again",
                p.name
            ),
            None => "the products changed: please look at the order again".into(),
        },
        product_id: repriced.map(|p| p.id),
    }
}

/// Pairs each requested line with its product, checking existence, currency and stock.
fn match_stock<'p>(
    request: &CheckoutRequest,
    products: &'p [Product],
) -> Result<Vec<(&'p Product, i32)>, ApiError> {
    let mut lines = Vec::with_capacity(request.lines.len());
    for line in &request.lines {
        let Some(product) = products.iter().find(|p| p.id == line.product_id) else {
            return Err(ApiError::invalid(
                "unknown_product",
                format!("there is no product {}", line.product_id),
                Some(format!("items.{}", line.product_id)),
            ));
        };
        let quantity = i32::try_from(line.quantity.get()).unwrap_or(i32::MAX);
        if product.stock < quantity {
            return Err(ApiError::Conflict {
                code: "out_of_stock",
                message: format!("only {} of {} left", product.stock, product.name),
                product_id: Some(product.id),
            });
        }
        lines.push((product, quantity));
    }
    if lines.windows(2).any(|w| w[0].0.currency != w[1].0.currency) {
        return Err(ApiError::invalid(
            "mixed_currency",
            "all products of an order must share one currency",
            Some("items".into()),
        ));
    }
    Ok(lines)
}

/// The `order.placed` payload: the order as it was priced from the products read.
fn order_placed(
    request: &CheckoutRequest,
    lines: &[(&Product, i32)],
) -> Result<OrderPlaced, ApiError> {
    let internal = |e: &dyn std::fmt::Display| {
        ApiError::Internal(anyhow::anyhow!("building order.placed failed: {e}"))
    };
    let currency = lines
        .first()
        .map(|(p, _)| domain::Currency::parse(&p.currency))
        .transpose()
        .map_err(|e| internal(&e))?
        .ok_or_else(|| internal(&"no lines"))?;
    let lines: Vec<OrderPlacedLine> = lines
        .iter()
        .map(|(p, q)| OrderPlacedLine {
            product_id: p.id,
            sku: p.sku.clone(),
            name: p.name.clone(),
            unit_price_minor: p.price_minor,
            quantity: q.unsigned_abs(),
            line_total_minor: p.price_minor.saturating_mul(i64::from(*q)),
        })
        .collect();
    Ok(OrderPlaced {
        customer_name: request.customer.name.clone(),
        customer_email: request.customer.email.as_str().to_owned(),
        shipping_address: request.customer.address.clone(),
        subtotal_minor: lines.iter().map(|l| l.line_total_minor).sum(),
        lines,
        currency,
        payment_method: request.payment_method.clone(),
        shipping_minor: None,
        tax_minor: None,
        total_minor: None,
    })
}

fn answer(
    order_id: Uuid,
    order: &OrderPlaced,
    quote: &InvoiceTotals,
    created_at: chrono::DateTime<chrono::Utc>,
) -> Value {
    let base = format!("/api/orders/{order_id}");
    json!({
        "order_id": order_id,
        "reference": domain::order_reference(order_id),
        "status": "placed",
        "currency": order.currency,
        "subtotal_minor": quote.subtotal_minor,
        "shipping_minor": quote.shipping_minor,
        "tax_rate_bp": quote.tax_rate.basis_points(),
        "tax_minor": quote.tax_minor,
        "total_minor": quote.total_minor,
        "items": order.lines.iter().map(|l| json!({
            "product_id": l.product_id,
            "sku": l.sku,
            "name": l.name,
            "unit_price_minor": l.unit_price_minor,
            "quantity": l.quantity,
            "line_total_minor": l.line_total_minor,
        })).collect::<Vec<_>>(),
        "created_at": created_at,
        "links": {
            "self": base,
            "events": format!("{base}/events"),
            "invoice": format!("{base}/invoice.pdf"),
        },
    })
}

/// The answer saved under a repeated idempotency key, looked up before anything that depends on
/// state (the cart, the stock): `None` when the key has no finished checkout yet.
///
/// # Errors
/// `422 idempotency_key_reused` when the key was used for a different checkout; an opaque
/// `500`/`503` when the lookup fails.
pub async fn saved_answer(
    pool: &PgPool,
    owner: &str,
    key: &str,
    fingerprint: &str,
) -> Result<Option<Placed>, ApiError> {
    let mut conn = pool.acquire().await?;
    let saved = store::saved_response(&mut conn, owner, key).await?;
    match saved {
        Some(saved) if saved.request_hash != fingerprint => Err(ApiError::invalid(
            "idempotency_key_reused",
            "this Idempotency-Key was used for a different checkout",
            Some("Idempotency-Key".into()),
        )),
        Some(store::SavedResponse {
            response_status: Some(status),
            response_body: Some(body),
            ..
        }) => Ok(Some(Placed {
            status: StatusCode::from_u16(u16::try_from(status).unwrap_or(500))
                .unwrap_or(StatusCode::OK),
            body,
            replayed: true,
        })),
        _ => Ok(None),
    }
}

/// The saved answer of a key another transaction has just claimed (it committed first).
async fn replay(
    pool: &PgPool,
    owner: &str,
    key: &str,
    fingerprint: &str,
) -> Result<Placed, ApiError> {
    saved_answer(pool, owner, key, fingerprint)
        .await?
        .ok_or_else(|| ApiError::Conflict {
            code: "idempotency_key_in_use",
            message: "a checkout with this Idempotency-Key is still being processed".into(),
            product_id: None,
        })
}
