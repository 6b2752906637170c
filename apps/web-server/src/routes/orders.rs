//! `POST /api/orders` (checkout), `GET /api/orders`, `GET /api/orders/{id}`, its live event
//! stream, its invoice and its cancellation.

use std::{convert::Infallible, time::Duration};

use axum::{
    Extension, Json,
    extract::{Path, State},
    http::{HeaderMap, HeaderName, HeaderValue, header},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures::Stream;
use serde_json::{Value, json};
use uuid::Uuid;

use ::orders::read as orders;
use telemetry::trace::TraceContext;

use crate::{
    AppState,
    access::{self, OrderAccess, OrderLink},
    cart, catalogue,
    checkout::{self, CheckoutBody, Context},
    error::ApiError,
    json::ApiJson,
    routes::{REPLAYED, REQUEST_ID},
    session::Session,
    streams::Watcher,
};

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// Checkout.
pub async fn checkout(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(trace): Extension<TraceContext>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CheckoutBody>,
) -> Result<Response, ApiError> {
    let idempotency_key = idempotency_key(&headers)?;
    body.refuse_test_method(state.settings.stripe.publishable_mode())?;
    let owner = session.owner();
    if let Some(key) = idempotency_key.as_deref() {
        let fingerprint = body.fingerprint()?;
        if let Some(placed) = checkout::saved_answer(&state.pool, &owner, key, &fingerprint).await?
        {
            tracing::info!(
                replayed = true,
                "checkout answered from its idempotency key"
            );
            return Ok(respond(placed));
        }
    }
    let from_cart = !body.has_items();
    let cart_lines = if from_cart {
        cart::lines(&state, &session).await?
    } else {
        Vec::new()
    };
    let request = body.parse(&cart_lines)?;
    let correlation_id = request_id(&headers);
    let traceparent = trace.to_string();
    let ctx = Context {
        owner: &owner,
        idempotency_key: idempotency_key.as_deref(),
        correlation_id,
        traceparent: &traceparent,
        prices: &state.prices,
    };
    let placed = checkout::place_order(&state.pool, &request, &ctx).await?;
    tracing::info!(
        order.id = placed.body["order_id"].as_str().unwrap_or_default(),
        replayed = placed.replayed,
        "order placed"
    );
    if !placed.replayed {
        catalogue::invalidate(&state).await;
        if from_cart {
            cart::clear(&state, &session).await;
        }
    }
    Ok(respond(placed))
}

fn respond(placed: checkout::Placed) -> Response {
    let mut response = (placed.status, Json(placed.body)).into_response();
    if placed.replayed {
        response
            .headers_mut()
            .insert(REPLAYED, HeaderValue::from_static("true"));
    }
    response
}

/// The session's orders: the ones it placed and those of the customers it was signed in for.
pub async fn list(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
) -> Result<Json<Value>, ApiError> {
    let orders = orders::list(&state.pool, &session.owner()).await?;
    Ok(Json(json!({ "orders": orders })))
}

/// One order, with its lines and timeline, for a request the access rule lets see it
/// ([`access`]: its own session, a signed-in session, or a signed link). Anything else — another
/// session's order, a malformed id, a missing order, a bad link — answers the same
/// `404 order_not_found`.
pub async fn show(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    link: OrderLink,
    path: Path<String>,
) -> Result<Json<Value>, ApiError> {
    let order_id = access::order_id(path)?;
    let access = OrderAccess::new(&session, link);
    Ok(Json(order_view(&state, &access, order_id).await?))
}

/// The order page's data: the order with its lines, timeline, invoice, payment and shipment.
/// `404 order_not_found` unless `access` may see it.
///
/// All six reads see one snapshot (a read-only `REPEATABLE READ` transaction on one connection):
/// read apart, a page could show an order's status from before a worker's commit next to the
/// payment or shipment that commit wrote (and a payment action worked out from the two).
async fn order_view(
    state: &AppState,
    access: &OrderAccess,
    order_id: Uuid,
) -> Result<Value, ApiError> {
    let mut tx = state
        .pool
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    let order = access.order_on(state, &mut *tx, order_id).await?;
    let items = orders::lines(&mut *tx, order_id).await?;
    let timeline = orders::timeline(&mut *tx, order_id).await?;
    let invoice = orders::invoice(&mut *tx, order_id).await?;
    let shipment = orders::shipment(&mut *tx, order_id).await?;
    let payment = orders::payment(&mut *tx, order_id).await?;
    tx.commit().await?;
    let cancellable = order.cancellable();
    let mut body = serde_json::to_value(&order).map_err(|e| ApiError::Internal(e.into()))?;
    body["cancellable"] = json!(cancellable);
    body["items"] = json!(items);
    body["timeline"] = json!(timeline);
    body["tracking_number"] = json!(shipment.as_ref().map(|s| &s.tracking_number));
    body["shipment"] = json!(shipment);
    body["payment_action"] = crate::stripe::action::summary(
        order_id,
        &order.status,
        payment.as_ref().map(|p| p.status.as_str()),
    );
    body["payment"] = json!(payment);
    body["invoice_url"] = match &invoice {
        Some(_) => json!(format!("/api/orders/{order_id}/invoice.pdf")),
        None => Value::Null,
    };
    body["invoice"] = json!(invoice);
    Ok(body)
}

/// Cancels an order the request may see (see `orders::cancel`): an unpaid order ends
/// `cancelled`, a paid one is refunded. Answers the order as `GET` does; a repeated cancellation
/// changes nothing and answers the same. `409 order_not_cancellable` once the order is shipped or
/// has ended otherwise; `404 order_not_found` as for the order itself.
pub async fn cancel(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(trace): Extension<TraceContext>,
    headers: HeaderMap,
    link: OrderLink,
    path: Path<String>,
) -> Result<Json<Value>, ApiError> {
    let order_id = access::order_id(path)?;
    let access = OrderAccess::new(&session, link);
    access.order(&state, order_id).await?;
    let traceparent = trace.to_string();
    let origin = ::orders::Origin {
        reason: domain::CancelReason::Shopper,
        correlation_id: request_id(&headers),
        traceparent: &traceparent,
    };
    let mut tx = state.pool.begin().await?;
    let cancellation = ::orders::cancel(&mut tx, order_id, &origin)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .ok_or_else(ApiError::order_not_found)?;
    if let ::orders::Cancellation::NotCancellable(status) = cancellation {
        return Err(ApiError::Conflict {
            code: "order_not_cancellable",
            message: not_cancellable_message(status).into(),
            product_id: None,
        });
    }
    tx.commit().await?;
    tracing::info!(order.id = %order_id, ?cancellation, "cancellation asked by the shopper");
    Ok(Json(order_view(&state, &access, order_id).await?))
}

fn not_cancellable_message(status: domain::OrderStatus) -> &'static str {
    use domain::OrderStatus::*;
    match status {
        Shipped | Delivered => "this order has already been shipped and can no longer be cancelled",
        PaymentFailed => "this order has already ended: its payment failed and nothing was charged",
        Refunded => "this order has already been refunded",
        _ => "this order can no longer be cancelled",
    }
}

fn request_id(headers: &HeaderMap) -> &str {
    headers
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// How long an open event stream waits before reading its order again after a failed read (the
/// database briefly away).
const READ_AGAIN_AFTER: Duration = Duration::from_secs(1);

/// The order page as a live Server-Sent Events stream: an `order` event with the whole order
/// (the shape of `GET /api/orders/{id}`) at once and after every change, keep-alive comments in
/// between. Changes come from the process's one PostgreSQL listener ([`crate::streams`]); each
/// one is read through the access rule, so the stream ends once the request may no longer see
/// the order (its link expired). It ends too when the server shuts down; browsers' `EventSource`
/// reconnects by itself. `429 too_many_streams` when the session, `429 streams_full` when the
/// process holds as many streams as `APP__STREAMS__…` allow.
pub async fn events(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    link: OrderLink,
    path: Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let order_id = access::order_id(path)?;
    let access = OrderAccess::new(&session, link);
    // Subscribed before the first read: a change committed meanwhile is read again.
    let watcher = state.streams.open(access.owner(), order_id)?;
    let first = order_view(&state, &access, order_id).await?;
    let watch = Watch {
        state,
        access,
        order_id,
        watcher,
        failed: false,
        last: String::new(),
        next: Some(first),
    };
    Ok(Sse::new(futures::stream::unfold(watch, next_change)).keep_alive(KeepAlive::default()))
}

/// What an open event stream remembers.
struct Watch {
    state: AppState,
    /// Checked again at every read: a link that expires ends the stream.
    access: OrderAccess,
    order_id: Uuid,
    /// The stream's place: its order's changes, counted until the stream is dropped.
    watcher: Watcher,
    /// Whether the last read failed (and is to be tried again after [`READ_AGAIN_AFTER`]).
    failed: bool,
    /// The data of the last event sent, as sent: kept as text, a fraction of the parsed page's
    /// size, for as long as the stream is open.
    last: String,
    next: Option<Value>,
}

/// The next `order` event: when the order differs from the last one sent; `None` at shutdown or
/// once the request may no longer see the order.
async fn next_change(mut watch: Watch) -> Option<(Result<Event, Infallible>, Watch)> {
    loop {
        if let Some(data) = watch.next.take().map(|v| v.to_string())
            && data != watch.last
        {
            let event = Event::default().event("order").data(&data);
            watch.last = data;
            return Some((Ok(event), watch));
        }
        if !watch.wait().await {
            return None;
        }
        let read = order_view(&watch.state, &watch.access, watch.order_id);
        match watch.watcher.read(read).await {
            Ok(view) => (watch.next, watch.failed) = (Some(view), false),
            Err(ApiError::NotFound { .. }) => return None,
            // Logged once per outage, not at every attempt of every stream.
            Err(error) => {
                if !watch.failed {
                    tracing::warn!(order.id = %watch.order_id, error = %error_chain(&error), "an order stream could not read its order; trying again every second");
                }
                watch.failed = true;
            }
        }
    }
}

impl Watch {
    /// Waits for a reason to read the order again: a change, or the pause after a failed read.
    /// `false` at shutdown.
    async fn wait(&mut self) -> bool {
        let shutdown = &self.state.shutdown;
        if self.failed {
            tokio::select! {
                () = tokio::time::sleep(READ_AGAIN_AFTER) => true,
                () = shutdown.cancelled() => false,
            }
        } else {
            tokio::select! {
                changed = self.watcher.changed() => changed,
                () = shutdown.cancelled() => false,
            }
        }
    }
}

/// The cause of a failed read, for the log.
fn error_chain(error: &ApiError) -> String {
    match error {
        ApiError::Internal(cause) | ApiError::Unavailable(cause) => format!("{cause:#}"),
        other => other.to_string(),
    }
}

/// The order's invoice PDF, for a request the access rule lets see the order.
/// `404 order_not_found` as for the order itself; `404 invoice_not_ready` while the invoice is
/// still being made.
pub async fn invoice_pdf(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    link: OrderLink,
    path: Path<String>,
) -> Result<Response, ApiError> {
    let order_id = access::order_id(path)?;
    OrderAccess::new(&session, link)
        .order(&state, order_id)
        .await?;
    let (number, pdf) = orders::invoice_pdf(&state.pool, order_id)
        .await?
        .ok_or_else(|| ApiError::NotFound {
            code: "invoice_not_ready",
            message: "the invoice for this order has not been issued yet".into(),
        })?;
    let headers = [
        (header::CONTENT_TYPE, "application/pdf".to_owned()),
        (
            header::CONTENT_DISPOSITION,
            format!("inline; filename=\"{number}.pdf\""),
        ),
        (header::CACHE_CONTROL, "private, max-age=3600".to_owned()),
    ];
    Ok((headers, pdf).into_response())
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(&IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = value.to_str().unwrap_or_default().trim();
    let valid = (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic());
    if valid {
        Ok(Some(key.to_owned()))
    } else {
        Err(ApiError::BadRequest {
            code: "invalid_idempotency_key",
            message: "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
        })
    }
}
