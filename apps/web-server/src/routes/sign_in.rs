//! `POST /api/sign-in/requests` (ask for a one-time sign-in link) and `POST /api/sign-in` (use
//! one): "my orders" on any device, see [`crate::sign_in`].

use axum::{
    Extension, Json,
    extract::State,
    http::{HeaderMap, StatusCode},
};
use serde::Deserialize;
use serde_json::{Value, json};
use telemetry::trace::TraceContext;

use ::orders::read as orders;

use crate::{
    AppState,
    client::ClientAddr,
    error::ApiError,
    json::ApiJson,
    routes::REQUEST_ID,
    session::Session,
    sign_in::{self, Origin},
};

/// The body of `POST /api/sign-in/requests`.
#[derive(Debug, Deserialize)]
pub struct LinkRequestBody {
    /// The address to send the link to.
    email: String,
}

/// The body of `POST /api/sign-in`.
#[derive(Debug, Deserialize)]
pub struct SignInBody {
    /// The token of the e-mailed link (its `token` parameter).
    token: String,
}

/// Asks for a sign-in link: `202` with the same body for every well-formed address, whether it
/// has orders or not; `422 invalid_email`; `429 rate_limited`.
pub async fn request_link(
    State(state): State<AppState>,
    Extension(trace): Extension<TraceContext>,
    client: ClientAddr,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LinkRequestBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let email = sign_in::parse_email(&body.email)?;
    let traceparent = trace.to_string();
    let origin = Origin {
        correlation_id: headers
            .get(&REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default(),
        traceparent: &traceparent,
    };
    sign_in::request_link(&state, &client, &email, origin).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"status": "accepted", "message": sign_in::ACCEPTED})),
    ))
}

/// Signs the session in with an e-mailed link's token and answers its orders, as
/// `GET /api/orders` does; `410 sign_in_link_invalid` for a forged, used or expired link.
pub async fn sign_in(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    ApiJson(body): ApiJson<SignInBody>,
) -> Result<Json<Value>, ApiError> {
    let owner = session.owner();
    sign_in::sign_in(&state, &owner, &body.token).await?;
    let orders = orders::list(&state.pool, &owner).await?;
    Ok(Json(json!({ "orders": orders })))
}
