//! The one HTTP error type. Every error answer is
//! `{"error": {"code": "...", "message": "...", "field"?: "..."}}` with a stable `code`;
//! a 5xx never says more than that something went wrong, and its cause is logged here, once.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

/// The stable `code` of an error answer, also kept in the response's extensions so that
/// middleware (the checkout metrics) can read it without parsing the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode(pub &'static str);

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request cannot be read (malformed JSON, bad header).
    #[error("{message}")]
    BadRequest {
        /// Stable machine-readable code.
        code: &'static str,
        /// Human-readable explanation.
        message: String,
    },
    /// 404: nothing here for this session.
    #[error("{message}")]
    NotFound {
        /// Stable machine-readable code.
        code: &'static str,
        /// Human-readable explanation.
        message: String,
    },
    /// 405: the path exists, the method does not.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409: the request conflicts with the current state (out of stock, key in use).
    #[error("{message}")]
    Conflict {
        /// Stable machine-readable code.
        code: &'static str,
        /// Human-readable explanation.
        message: String,
        /// The product concerned, if any.
        product_id: Option<i64>,
    },
    /// 410: the thing asked for existed once and is gone for good (a used or expired sign-in
    /// link).
    #[error("{message}")]
    Gone {
        /// Stable machine-readable code.
        code: &'static str,
        /// Human-readable explanation.
        message: String,
    },
    /// 413: the body is over the limit.
    #[error("request body too large")]
    PayloadTooLarge,
    /// 415: the body is not JSON.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// 422: the request is well-formed but its content is invalid.
    #[error("{message}")]
    Invalid {
        /// Stable machine-readable code.
        code: &'static str,
        /// Human-readable explanation.
        message: String,
        /// The field or product concerned, if any.
        field: Option<String>,
    },
    /// 429: too many requests of this kind; answered with `Retry-After`.
    #[error("{message}")]
    TooManyRequests {
        /// Stable machine-readable code.
        code: &'static str,
        /// Human-readable explanation.
        message: String,
        /// Seconds until the client may try again (the `Retry-After` header).
        retry_after_s: u64,
    },
    /// 503: a dependency is down; the client may retry.
    #[error("service unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// 500: anything unexpected. Opaque to the client, logged with its cause.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// A 422 with a code and message.
    pub fn invalid(code: &'static str, message: impl Into<String>, field: Option<String>) -> Self {
        ApiError::Invalid {
            code,
            message: message.into(),
            field,
        }
    }

    /// The 404 for an order this session may not see (whether or not it exists).
    pub fn order_not_found() -> Self {
        ApiError::NotFound {
            code: "order_not_found",
            message: "no such order for this session".into(),
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            ApiError::NotFound { code, .. } => (StatusCode::NOT_FOUND, code),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            ApiError::Gone { code, .. } => (StatusCode::GONE, code),
            ApiError::TooManyRequests { code, .. } => (StatusCode::TOO_MANY_REQUESTS, code),
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Invalid { code, .. } => (StatusCode::UNPROCESSABLE_ENTITY, code),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    fn public_message(&self) -> String {
        match self {
            ApiError::PayloadTooLarge => "the request body is over 64 KiB".into(),
            ApiError::UnsupportedMediaType => {
                "send the body as `Content-Type: application/json`".into()
            }
            ApiError::Unavailable(_) => {
                "a service this request needs is unavailable; try again shortly".into()
            }
            ApiError::Internal(_) => "something went wrong on our side".into(),
            other => other.to_string(),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    /// `503` when the database could not be reached or ended the session (a connection
    /// exception, class `08`, or an operator's intervention, class `57`: a restart, a shutdown,
    /// a cancelled statement); `500` for anything else.
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => ApiError::Unavailable(error.into()),
            sqlx::Error::Database(db)
                if db
                    .code()
                    .is_some_and(|c| c.starts_with("08") || c.starts_with("57")) =>
            {
                ApiError::Unavailable(error.into())
            }
            _ => ApiError::Internal(error.into()),
        }
    }
}

impl From<outbox::OutboxError> for ApiError {
    fn from(error: outbox::OutboxError) -> Self {
        ApiError::Internal(error.into())
    }
}

impl From<orders::OrdersError> for ApiError {
    fn from(error: orders::OrdersError) -> Self {
        match error {
            orders::OrdersError::Database(database) => database.into(),
            other => ApiError::Internal(other.into()),
        }
    }
}

impl From<redis::RedisError> for ApiError {
    fn from(error: redis::RedisError) -> Self {
        ApiError::Unavailable(error.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let ApiError::Internal(cause) | ApiError::Unavailable(cause) = &self {
            tracing::error!(
                error = format!("{cause:#}"),
                http.status = status.as_u16(),
                "request failed"
            );
        }
        let mut error = json!({"code": code, "message": self.public_message()});
        match &self {
            ApiError::Invalid {
                field: Some(field), ..
            } => error["field"] = json!(field),
            ApiError::Conflict {
                product_id: Some(id),
                ..
            } => error["product_id"] = json!(id),
            _ => {}
        }
        let mut response = (status, Json(json!({ "error": error }))).into_response();
        if let ApiError::TooManyRequests { retry_after_s, .. } = &self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_s));
        }
        response.extensions_mut().insert(ErrorCode(code));
        response
    }
}
