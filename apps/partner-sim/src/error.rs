//! The one HTTP error type. Every error answer is
//! `{"error": {"code": "...", "message": "...", "field"?: "..."}}` with a stable `code`, as the
//! partner API documents it.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header::RETRY_AFTER},
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::{faults::FaultsError, store::ShipmentError};

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request cannot be used as it is (bad header, bad or missing field).
    #[error("{message}")]
    BadRequest {
        /// Stable machine-readable code.
        code: &'static str,
        /// Human-readable explanation.
        message: String,
        /// The field concerned, if any (`recipient.city`).
        field: Option<&'static str>,
    },
    /// 404: no such resource.
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
    /// 409: the resource is not in a state that allows this.
    #[error("{message}")]
    Conflict {
        /// Stable machine-readable code.
        code: &'static str,
        /// Human-readable explanation.
        message: String,
    },
    /// 409: the `Idempotency-Key` was first used with another body.
    #[error("this Idempotency-Key was already used with a different request body")]
    IdempotencyKeyReused,
    /// 413: the body is over the limit.
    #[error("the request body is over 64 KiB")]
    PayloadTooLarge,
    /// 415: the body is not JSON.
    #[error("send the body as `Content-Type: application/json`")]
    UnsupportedMediaType,
    /// 422: the partner does not deliver to this address.
    #[error("{0}")]
    Undeliverable(String),
    /// 429 (a simulated fault): too many requests; retry after this many seconds.
    #[error("too many requests; retry after {retry_after_s} s")]
    RateLimited {
        /// Sent as `Retry-After`.
        retry_after_s: u64,
    },
    /// 503 (a simulated fault): the partner is unavailable.
    #[error("the partner is temporarily unavailable; try again shortly")]
    Unavailable,
}

impl ApiError {
    /// A 400 with a code, a message and the field concerned.
    pub fn bad_request(
        code: &'static str,
        message: impl Into<String>,
        field: Option<&'static str>,
    ) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
            field,
        }
    }

    /// The 404 of an unknown path.
    pub fn not_found() -> Self {
        ApiError::NotFound {
            code: "not_found",
            message: "no such resource".into(),
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            ApiError::NotFound { code, .. } => (StatusCode::NOT_FOUND, code),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            ApiError::IdempotencyKeyReused => (StatusCode::CONFLICT, "idempotency_key_reused"),
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Undeliverable(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "undeliverable_address")
            }
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable"),
        }
    }
}

impl From<FaultsError> for ApiError {
    fn from(error: FaultsError) -> Self {
        ApiError::bad_request("invalid_faults", error.to_string(), error.field())
    }
}

impl From<ShipmentError> for ApiError {
    fn from(error: ShipmentError) -> Self {
        let message = error.to_string();
        match error {
            ShipmentError::NotFound(_) => ApiError::NotFound {
                code: "shipment_not_found",
                message,
            },
            ShipmentError::AlreadyDelivered(_) => ApiError::Conflict {
                code: "shipment_already_delivered",
                message,
            },
            ShipmentError::Cancelled(_) => ApiError::Conflict {
                code: "shipment_cancelled",
                message,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let mut error = json!({"code": code, "message": self.to_string()});
        if let ApiError::BadRequest {
            field: Some(field), ..
        } = &self
        {
            error["field"] = json!(field);
        }
        let mut response = (status, Json(json!({ "error": error }))).into_response();
        if let ApiError::RateLimited { retry_after_s } = self {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(retry_after_s));
        }
        response
    }
}
