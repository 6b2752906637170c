//! Reading a JSON body into a type, with rejections that are [`ApiError`]s with stable codes.
//!
//! Handlers take the raw body (so that a request can be counted and faulted before it is read)
//! and parse it here.

use axum::{
    body::Bytes,
    extract::rejection::JsonRejection,
    http::{HeaderMap, header::CONTENT_TYPE},
};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Parses `body` as `T`.
///
/// # Errors
/// `415 unsupported_media_type` unless the content type is JSON; `400 invalid_json` for
/// malformed JSON; `400 invalid_body` for JSON of the wrong shape.
pub fn parse<T: DeserializeOwned>(headers: &HeaderMap, body: &Bytes) -> Result<T, ApiError> {
    if !is_json(headers) {
        return Err(ApiError::UnsupportedMediaType);
    }
    match axum::Json::<T>::from_bytes(body) {
        Ok(axum::Json(value)) => Ok(value),
        Err(JsonRejection::JsonSyntaxError(e)) => Err(ApiError::bad_request(
            "invalid_json",
            format!("the body is not valid JSON: {}", e.body_text()),
            None,
        )),
        Err(rejection) => Err(ApiError::bad_request(
            "invalid_body",
            format!(
                "the body does not match the expected shape: {}",
                rejection.body_text()
            ),
            None,
        )),
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
        || essence.to_ascii_lowercase().ends_with("+json")
}
