//! A trace per request: continued from the caller's `traceparent` header or started here, kept
//! in the request's extensions (the request span's `trace_id`, the checkout's events) and
//! answered in the `traceparent` response header.

use axum::{
    extract::Request,
    http::{HeaderName, HeaderValue},
    middleware::Next,
    response::Response,
};
use telemetry::trace::{TraceContext, continue_from};

/// The W3C trace context header.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Middleware: puts this request's [`TraceContext`] into its extensions and its response header.
pub async fn start(mut request: Request, next: Next) -> Response {
    let incoming = request
        .headers()
        .get(&TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let context = continue_from(incoming);
    let header = HeaderValue::from_str(&context.to_string()).ok();
    request.extensions_mut().insert(context);
    let mut response = next.run(request).await;
    if let Some(value) = header {
        response.headers_mut().insert(TRACEPARENT, value);
    }
    response
}

/// The trace id of a request (after [`start`] ran), for its span.
pub fn trace_id<B>(request: &axum::http::Request<B>) -> &str {
    request
        .extensions()
        .get::<TraceContext>()
        .map_or("", TraceContext::trace_id)
}
