//! The order page's 3-D Secure step: a payment that waits for the shopper's action
//! (`requires_action`, see billing's `charge` module doc, "How the order ends").
//!
//! - `GET /api/orders/{id}` says so: `payment_action` ([`summary`]) is set while the order is
//!   `invoiced` and its payment `requires_action`, and names the two calls below.
//! - `GET /api/orders/{id}/payment/action` ([`action`]) gives the page what it needs to let the
//!   shopper authenticate: the intent's client secret — for Stripe.js'
//!   `handleNextAction({clientSecret})` when the page has a publishable key — and, when the
//!   intent names one, the page where the shopper authenticates without Stripe.js (the local
//!   fake Stripe's test bank). The client secret is read from Stripe at each call, never
//!   stored or logged, and answered (`Cache-Control: no-store`) only to a request the order
//!   page's access rule lets see the order ([`crate::access`]): its session, a session signed
//!   in for its address, or its signed link — the one the `payment.action_required` e-mail
//!   carries, which holds no secret itself.
//! - `POST /api/orders/{id}/payment/check` ([`check`]), "I have confirmed": made by the page
//!   when the shopper is back from the bank (Stripe.js' promise resolved, or the test bank's
//!   redirect). It reads the intent from Stripe and applies what it says through
//!   [`orders::payments::apply_outcome`], as the webhook does: `succeeded` → `paid`;
//!   `requires_payment_method` after a failed authentication → `payment_failed`, stock back;
//!   still `requires_action` → nothing.
//!
//! # Why the shopper's call, and not billing re-checking the intent
//!
//! The order must learn the end of the authentication without depending on Stripe's webhook.
//! Billing could re-check the intent with backoff until the order's expiry, but a queue message
//! re-checking for up to 30 minutes needs delays SQS FIFO queues do not have per message (and
//! every receive counts towards the DLQ), or a scheduler of its own under Lambda; and it would
//! learn the end only at its next look. The shopper's return is the moment the end is known,
//! and the page is open then: one Stripe read, the order moves at once and the page's live
//! stream shows it. What neither path catches — the webhook lost *and* the shopper gone
//! before the page came back — the expiry settles: the sweeper cancels the order (`expired`)
//! and billing's cancellation handling cancels the intent, or refunds it if it had succeeded,
//! so no money stays taken for an order that was not paid.
//!
//! The webhook and this call agree whichever comes first: both go through `apply_outcome`,
//! which locks the order, moves it only from `invoiced`, and makes the second one a no-op (no
//! second transition, event or e-mail).

use axum::{
    Extension, Json,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Response},
};
use orders::payments::{self, Applied};
use serde_json::{Value, json};
use sqlx::PgPool;
use telemetry::trace::TraceContext;
use uuid::Uuid;

use super::intents::{self, StripeReadError};
use crate::{
    AppState,
    access::{self, OrderAccess, OrderLink},
    error::ApiError,
    routes::REQUEST_ID,
    session::Session,
};

/// `payment_action` of the order page's answer: what to do while the payment waits for the
/// shopper (the order `invoiced`, its payment `requires_action`); `null` otherwise.
pub fn summary(order_id: Uuid, order_status: &str, payment_status: Option<&str>) -> Value {
    if order_status != "invoiced" || payment_status != Some("requires_action") {
        return Value::Null;
    }
    json!({
        "type": "authenticate",
        "action_url": format!("/api/orders/{order_id}/payment/action"),
        "check_url": format!("/api/orders/{order_id}/payment/check"),
    })
}

/// What the page needs to let the shopper authenticate the payment (module doc):
/// `{"payment_intent_id", "client_secret", "redirect_url"}`. `409 payment_action_not_required`
/// when the payment does not wait for the shopper (any more); `404 order_not_found` as for the
/// order; `503` when Stripe cannot be read.
pub async fn action(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    link: OrderLink,
    path: Path<String>,
) -> Result<Response, ApiError> {
    let order_id = access::order_id(path)?;
    OrderAccess::new(&session, link)
        .order(&state, order_id)
        .await?;
    let intent_id = awaiting_intent(&state.pool, order_id)
        .await?
        .ok_or_else(not_required)?;
    let intent = read_intent(&state, order_id, &intent_id).await?;
    if intent["status"] != "requires_action" {
        return Err(not_required());
    }
    let client_secret = intent["client_secret"]
        .as_str()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("the intent has no client secret")))?;
    let body = json!({
        "payment_intent_id": intent_id,
        "client_secret": client_secret,
        "redirect_url": intents::redirect_url(&intent),
    });
    let no_store = [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))];
    Ok((no_store, Json(body)).into_response())
}

/// What [`check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checked {
    /// The payment was not waiting for the shopper: nothing to check.
    NotWaiting,
    /// Stripe has no end for it yet (still `requires_action`, or processing).
    StillWaiting,
    /// This call moved the order.
    Moved,
    /// The webhook (or another call) had moved it already.
    AlreadyDone,
}

/// "I have confirmed" (module doc): the intent read from Stripe and its end applied to the
/// order. Answers `{"checked": "moved" | "already_done" | "still_waiting" | "not_waiting",
/// "status": <the order's status now>}`; `404 order_not_found` as for the order; `503` when
/// Stripe cannot be read.
pub async fn check(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(trace): Extension<TraceContext>,
    headers: HeaderMap,
    link: OrderLink,
    path: Path<String>,
) -> Result<Json<Value>, ApiError> {
    let order_id = access::order_id(path)?;
    let order = OrderAccess::new(&session, link)
        .order(&state, order_id)
        .await?;
    let Some(intent_id) = awaiting_intent(&state.pool, order_id).await? else {
        return Ok(checked(Checked::NotWaiting, &order.status));
    };
    let intent = read_intent(&state, order_id, &intent_id).await?;
    let Some(verdict) = intents::verdict(&intent) else {
        return Ok(checked(Checked::StillWaiting, &order.status));
    };
    let (_, outcome) = intents::outcome(&intent, verdict)
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("unreadable PaymentIntent")))?;
    let correlation_id = headers
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let traceparent = trace.to_string();
    let mut tx = state.pool.begin().await?;
    let applied =
        payments::apply_outcome(&mut tx, order_id, &outcome, correlation_id, &traceparent)
            .await
            .map_err(|e| ApiError::Internal(e.into()))?;
    tx.commit().await?;
    tracing::info!(order.id = %order_id, ?verdict, ?applied, "3-D Secure checked by the shopper's call");
    Ok(match applied {
        Applied::Moved(to) => checked(Checked::Moved, to.as_str()),
        Applied::AlreadyDone(now) => checked(Checked::AlreadyDone, now.as_str()),
    })
}

fn checked(checked: Checked, status: &str) -> Json<Value> {
    let checked = match checked {
        Checked::NotWaiting => "not_waiting",
        Checked::StillWaiting => "still_waiting",
        Checked::Moved => "moved",
        Checked::AlreadyDone => "already_done",
    };
    Json(json!({"checked": checked, "status": status}))
}

/// The PaymentIntent of the order's payment while it waits for the shopper: the order
/// `invoiced`, its payment `requires_action`.
async fn awaiting_intent(pool: &PgPool, order_id: Uuid) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT p.payment_intent_id FROM payments p JOIN orders o ON o.id = p.order_id
         WHERE p.order_id = $1 AND p.status = 'requires_action' AND o.status = 'invoiced'
             AND p.payment_intent_id IS NOT NULL",
    )
    .bind(order_id)
    .fetch_optional(pool)
    .await
}

/// The intent from Stripe, checked to be this order's.
async fn read_intent(state: &AppState, order_id: Uuid, id: &str) -> Result<Value, ApiError> {
    let intent = state
        .stripe
        .payment_intent(id)
        .await
        .map_err(|e: StripeReadError| ApiError::Unavailable(e.into()))?;
    if intents::order_of(&intent) != Some(order_id) {
        return Err(ApiError::Internal(anyhow::anyhow!(
            "PaymentIntent {id} is not the order's"
        )));
    }
    Ok(intent)
}

fn not_required() -> ApiError {
    ApiError::Conflict {
        code: "payment_action_not_required",
        message: "this order's payment does not wait for a confirmation".into(),
        product_id: None,
    }
}
