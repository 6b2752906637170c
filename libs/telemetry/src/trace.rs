//! W3C trace context (`traceparent`): one trace per order across the processes.
//!
//! The web-server starts (or continues, from a `traceparent` request header) a trace per request;
//! its checkout stores a child context in the `order.placed` event, the relay sends it as the
//! SQS message attribute `traceparent`, and every worker runs the event in a span carrying its
//! `trace_id` and passes the context on into the events it emits. Every log line inside those
//! spans carries the trace id, so one order's journey is found with one search. (Export to an
//! OpenTelemetry collector is not built in.)

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
}
