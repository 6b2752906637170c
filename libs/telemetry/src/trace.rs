//! W3C trace context (`traceparent`): one trace per order across the processes.
//!
//! The web-server starts (or continues, from a `traceparent` request header) a trace per request;
//! its checkout stores a child context in the `order.placed` event, the relay sends it as the
//! SQS message attribute `traceparent`, and every worker runs the event in a span carrying its
//! `trace_id` and passes the context on into the events it emits. Every log line inside those
//! spans carries the trace id, so one order's journey is found with one search.
//!
//! Each hop is a span of its own ([`continue_in`]): its parent is the `traceparent` it received,
//! and what it passes on is its own context. With the OpenTelemetry export on
//! ([`crate::otel`]) that context is the exported span's, so the spans of the six processes
//! make one tree; off, it is a fresh span id in the same trace, and the log lines keep their
//! `trace_id` all the same.

use std::fmt;

/// A parsed `traceparent`: `00-<trace id, 32 hex>-<parent span id, 16 hex>-<flags, 2 hex>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: String,
    span_id: String,
    flags: String,
}

impl TraceContext {
    /// A new trace (random ids), sampled.
    pub fn new_root() -> Self {
        TraceContext {
            trace_id: random_hex(32),
            span_id: random_hex(16),
            flags: "01".into(),
        }
    }

    /// Parses a `traceparent` header value; `None` when it is not a valid version-00 value
    /// (wrong lengths, not lowercase hex, all-zero ids).
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.trim().split('-');
        let (version, trace_id, span_id, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let valid = parts.next().is_none()
            && version == "00"
            && is_hex_id(trace_id, 32)
            && is_hex_id(span_id, 16)
            && flags.len() == 2
            && flags.bytes().all(is_lower_hex);
        valid.then(|| TraceContext {
            trace_id: trace_id.into(),
            span_id: span_id.into(),
            flags: flags.into(),
        })
    }

    /// The context of a new span in the same trace (what a hop passes on).
    pub fn child(&self) -> Self {
        TraceContext {
            trace_id: self.trace_id.clone(),
            span_id: random_hex(16),
            flags: self.flags.clone(),
        }
    }

    /// The trace id (32 lowercase hex digits), the `trace_id` field of log lines.
    pub fn trace_id(&self) -> &str {
        &self.trace_id
    }

    /// The span id (16 lowercase hex digits): the span that passed this context on.
    pub fn span_id(&self) -> &str {
        &self.span_id
    }

    /// The trace flags (bit 0: sampled).
    pub fn flags(&self) -> u8 {
        u8::from_str_radix(&self.flags, 16).unwrap_or(0)
    }

    /// A context from its parts as OpenTelemetry formats them (lowercase hex ids).
    pub(crate) fn from_parts(trace_id: &str, span_id: &str, flags: u8) -> Self {
        TraceContext {
            trace_id: trace_id.into(),
            span_id: span_id.into(),
            flags: format!("{flags:02x}"),
        }
    }
}

impl fmt::Display for TraceContext {
    /// The `traceparent` header value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "00-{}-{}-{}", self.trace_id, self.span_id, self.flags)
    }
}

/// The trace id of a `traceparent` value, or `""` when it is not valid (log field use).
pub fn trace_id_of(traceparent: &str) -> String {
    TraceContext::parse(traceparent)
        .map(|c| c.trace_id)
        .unwrap_or_default()
}

/// The context to pass on from an incoming `traceparent`: a child of it, or a new trace when it
/// is missing or invalid.
pub fn continue_from(traceparent: &str) -> TraceContext {
    TraceContext::parse(traceparent).map_or_else(TraceContext::new_root, |c| c.child())
}

/// Starts a hop's part of the trace in `span` (which must not have been entered yet): its parent
/// is the `incoming` `traceparent` (a new trace when it is missing or invalid), and the answer
/// is the context to pass on, `span`'s own. `span`'s `trace_id` field (if it declares one) gets
/// the trace id. With the export on, `span` is exported with that parent under the name `name()`
/// and the kind `kind` (`otel.name` / `otel.kind`, recorded when `span` declares them); off,
/// the answer is a new span id in the incoming trace, and `name` is not called.
pub fn continue_in(
    span: &tracing::Span,
    incoming: &str,
    kind: Kind,
    name: impl FnOnce() -> String,
) -> TraceContext {
    let parsed = TraceContext::parse(incoming);
    if crate::otel::enabled() && !span.is_disabled() {
        span.record("otel.name", name());
        span.record("otel.kind", kind.as_str());
    }
    let own = crate::otel::adopt(span, parsed.as_ref())
        .unwrap_or_else(|| parsed.map_or_else(TraceContext::new_root, |c| c.child()));
    span.record("trace_id", own.trace_id());
    own
}

/// What a hop's span is to OpenTelemetry (its `otel.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Serves a request (the web-server's HTTP requests).
    Server,
    /// Sends a message (the relay's publish of an outbox row).
    Producer,
    /// Handles a received message (a worker's handling of one event).
    Consumer,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Server => "server",
            Kind::Producer => "producer",
            Kind::Consumer => "consumer",
        }
    }
}

fn is_lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

fn is_hex_id(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(is_lower_hex) && s.bytes().any(|b| b != b'0')
}

fn random_hex(len: usize) -> String {
    let mut hex = String::with_capacity(len);
    while hex.len() < len {
        hex.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    hex.truncate(len);
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_round_trips() {
        let ctx = TraceContext::parse(SAMPLE).unwrap();
        assert_eq!(ctx.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(ctx.to_string(), SAMPLE);
    }

    #[test]
    fn invalid_values_are_refused() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
        ] {
            assert!(TraceContext::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_child_keeps_the_trace_and_gets_a_new_span() {
        let parent = TraceContext::parse(SAMPLE).unwrap();
        let child = parent.child();
        assert_eq!(child.trace_id(), parent.trace_id());
        assert_ne!(child.to_string(), parent.to_string());
        assert!(TraceContext::parse(&child.to_string()).is_some());
    }

    #[test]
    fn a_missing_context_starts_a_new_trace() {
        let a = continue_from("");
        let b = continue_from("garbage");
        assert_ne!(a.trace_id(), b.trace_id());
        assert_eq!(continue_from(SAMPLE).trace_id(), trace_id_of(SAMPLE));
        assert_eq!(trace_id_of("garbage"), "");
    }

    #[test]
    fn without_the_export_a_hop_passes_on_a_new_span_of_the_incoming_trace() {
        let span = tracing::Span::none();
        let own = continue_in(&span, SAMPLE, Kind::Consumer, || unreachable!("not named"));
        assert_eq!(own.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(own.span_id(), "00f067aa0ba902b7");
        let fresh = continue_in(&span, "garbage", Kind::Server, String::new);
        assert!(TraceContext::parse(&fresh.to_string()).is_some());
    }

    #[test]
    fn an_exported_hop_span_is_the_child_of_the_incoming_context_and_passes_on_its_own() {
        use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
        use tracing_subscriber::prelude::*;

        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let subscriber = tracing_subscriber::registry().with(crate::otel::layer(&provider));
        let (passed_on, child_context) = tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(target: "worker::process", "event", trace_id = tracing::field::Empty);
            let own = continue_in(&span, SAMPLE, Kind::Consumer, || "handle".into());
            let child = span.in_scope(|| {
                let child = tracing::debug_span!(target: "outbox::inbox", "inbox.record");
                continue_in(&child, &own.to_string(), Kind::Producer, String::new)
            });
            (own, child)
        });
        provider.force_flush().expect("flushed");
        let spans = exporter.get_finished_spans().expect("spans");
        let hop = spans
            .iter()
            .find(|s| s.name == "event")
            .expect("the hop's span is exported");
        assert_eq!(passed_on.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            hop.span_context.trace_id().to_string(),
            passed_on.trace_id()
        );
        assert_eq!(hop.span_context.span_id().to_string(), passed_on.span_id());
        assert_eq!(hop.parent_span_id.to_string(), "00f067aa0ba902b7");
        assert_eq!(passed_on.to_string().len(), SAMPLE.len());
        let next = spans
            .iter()
            .find(|s| s.name == "inbox.record")
            .expect("the next hop's span is exported");
        assert_eq!(next.parent_span_id.to_string(), passed_on.span_id());
        assert_eq!(
            next.span_context.span_id().to_string(),
            child_context.span_id()
        );
        assert_eq!(child_context.trace_id(), passed_on.trace_id());
    }
}
