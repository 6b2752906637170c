//! A trace per request: the request's span continues the caller's `traceparent` header (or
//! starts a trace); its context is kept in the request's extensions (the checkout's events carry
//! it, so the relay's and the workers' spans hang under this request) and answered in the
//! `traceparent` response header. With the span export on it is an OpenTelemetry server span
//! named `<method> <route>` ([`telemetry::otel`]).

use axum::{
    extract::{MatchedPath, Request},
    http::{HeaderName, HeaderValue},
    middleware::Next,
    response::Response,
};
use telemetry::trace::{Kind, continue_in};
use tracing::{Instrument, Span, field::Empty};

use crate::routes::REQUEST_ID;

/// The W3C trace context header.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Middleware: runs the request in its span ([`request_span`]), puts the span's
/// [`TraceContext`](telemetry::trace::TraceContext) into the request's extensions and the response's `traceparent` header.
pub async fn start(mut request: Request, next: Next) -> Response {
    let span = request_span(&request);
    let incoming = request
        .headers()
        .get(&TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let context = continue_in(&span, incoming, Kind::Server, || span_name(&request));
    let header = HeaderValue::from_str(&context.to_string()).ok();
    request.extensions_mut().insert(context);
    let mut response = next.run(request).instrument(span.clone()).await;
    if telemetry::otel::enabled() {
        let status = response.status();
        span.record("http.response.status_code", status.as_u16());
        if status.is_server_error() {
            span.record("otel.status_code", "error");
        }
    }
    if let Some(value) = header {
        response.headers_mut().insert(TRACEPARENT, value);
    }
    response
}

/// The request's span, `http`: method, path, request id and (once known) trace id.
fn request_span(request: &Request) -> Span {
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!(
        "http",
        http.method = %request.method(),
        http.path = %request.uri().path(),
        request.id = %request_id,
        trace_id = Empty,
        otel.name = Empty,
        otel.kind = Empty,
        http.response.status_code = Empty,
        otel.status_code = Empty,
    )
}

/// `<method> <route>` (the route's pattern, not the path: no ids in span names), or the method
/// alone outside the API's routes (the front end's files).
fn span_name(request: &Request) -> String {
    match request.extensions().get::<MatchedPath>() {
        Some(route) => format!("{} {}", request.method(), route.as_str()),
        None => request.method().to_string(),
    }
}
