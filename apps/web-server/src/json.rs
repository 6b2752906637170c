//! A JSON body extractor whose rejections are [`ApiError`]s with stable codes.

use axum::{
    extract::{FromRequest, Request, rejection::JsonRejection},
    http::StatusCode,
};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Like [`axum::Json`], but wrong content type, oversized and malformed bodies become
/// `415 unsupported_media_type`, `413 payload_too_large`, `400 invalid_json` and
/// `422 invalid_body`.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(reject(rejection)),
        }
    }
}

fn reject(rejection: JsonRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::PayloadTooLarge;
    }
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
        JsonRejection::JsonSyntaxError(e) => ApiError::BadRequest {
            code: "invalid_json",
            message: format!("the body is not valid JSON: {}", e.body_text()),
        },
        JsonRejection::JsonDataError(e) => ApiError::invalid(
            "invalid_body",
            format!(
                "the body does not match the expected shape: {}",
                e.body_text()
            ),
            None,
        ),
        other => ApiError::BadRequest {
            code: "invalid_body",
            message: other.body_text(),
        },
    }
}
