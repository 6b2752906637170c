//! OpenTelemetry export of the process's spans over OTLP (HTTP + protobuf), off unless asked for.
//!
//! It is on when `OTEL_EXPORTER_OTLP_ENDPOINT` (a base URL: `/v1/traces` is appended) or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the whole URL) is set and `OTEL_SDK_DISABLED` is not
//! `true`. The SDK reads the other standard variables itself: `OTEL_SERVICE_NAME` and
//! `OTEL_RESOURCE_ATTRIBUTES` (the resource; `service.name` is the process's name given to
//! [`crate::init`] unless `OTEL_SERVICE_NAME` says otherwise), `OTEL_TRACES_SAMPLER` /
//! `OTEL_TRACES_SAMPLER_ARG` (default `parentbased_always_on`), `OTEL_BSP_SCHEDULE_DELAY`,
//! `OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, and the exporter's
//! `OTEL_EXPORTER_OTLP_[TRACES_]HEADERS` / `_TIMEOUT` / `_COMPRESSION`.
//!
//! Off, nothing of this is built: no exporter, no layer; the spans that exist only for the
//! export are `debug` spans that the default `info` log filter never creates (SQL statements,
//! outbound calls) or not made at all (the relay's publish of one row). On, the `tracing` spans of ChargeFlow's own
//! crates ([`OUR_CRATES`]) down to `debug` become OpenTelemetry spans — the AWS SDK's, sqlx's,
//! hyper's and tower's own spans are not exported — and their `warn`/`error` events become span
//! events; the log lines still follow `RUST_LOG` alone.
//!
//! Spans leave in batches from the SDK's own thread (the blocking reqwest client, so the export
//! never waits on the process's runtime). [`shutdown`] (SIGTERM, end of `main`, through the
//! [`Guard`](crate::Guard)) exports what is left; [`flush`] does it at the end of each Lambda
//! invocation, before the sandbox may freeze.

use std::{sync::OnceLock, time::Duration};

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};
use tracing::subscriber::Interest;
use tracing::{Level, Metadata, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{Layer, filter::dynamic_filter_fn, registry::LookupSpan};

use crate::trace::TraceContext;

/// The crates (targets) whose spans are exported: ChargeFlow's own.
pub const OUR_CRATES: [&str; 13] = [
    "web_server",
    "outbox_relay",
    "invoice_service",
    "billing_service",
    "shipping_service",
    "email_service",
    "admin",
    "worker",
    "outbox",
    "orders",
    "sqs_transport",
    "domain",
    "telemetry",
];

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Whether the environment asks for span export (an OTLP endpoint is set, the SDK not disabled).
pub fn configured() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    let disabled =
        std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.trim().eq_ignore_ascii_case("true"));
    !disabled && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

/// Whether this process exports spans (the export was [`configured`] and started).
pub fn enabled() -> bool {
    PROVIDER.get().is_some()
}

/// Builds the tracer provider of the process named `service`: the OTLP/HTTP exporter behind a
/// batch processor, the resource from the environment with `service.name` = `service` unless
/// `OTEL_SERVICE_NAME` is set.
///
/// # Errors
/// When the exporter cannot be built (an endpoint that is not a URL, say).
pub(crate) fn provider(
    service: &'static str,
) -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()?;
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service);
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

/// Keeps `provider` for [`flush`] and [`shutdown`] (the first one installed wins).
pub(crate) fn keep(provider: SdkTracerProvider) {
    let _ = PROVIDER.set(provider);
}

/// The `tracing` layer that turns ChargeFlow's spans into `provider`'s OpenTelemetry spans,
/// filtered to [`exported`] callsites.
pub fn layer<S>(provider: &SdkTracerProvider) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("chargeflow"))
        // Kept lean: no busy/idle times, thread or source-location attributes (the span's name
        // and target say where it is).
        .with_tracked_inactivity(false)
        .with_threads(false)
        .with_location(false)
        .with_filter(
            dynamic_filter_fn(|metadata, cx| {
                *metadata.level() < Level::DEBUG || cx.lookup_current().is_some()
            })
            .with_callsite_filter(|metadata| {
                if exported(metadata) {
                    Interest::sometimes()
                } else {
                    Interest::never()
                }
            }),
        )
}

/// Whether a callsite may reach the export: spans of [`OUR_CRATES`] down to `debug`, and their
/// `warn` and `error` events (as span events). [`layer`] adds a rule that needs the span
/// context: a `debug` span (a statement, an outbound call) is exported only inside an exported
/// span — as a part of a hop, never as a trace of its own (the relay's claim polls, a
/// background loop's statement).
pub fn exported(metadata: &Metadata<'_>) -> bool {
    let level = *metadata.level();
    is_ours(metadata.target())
        && if metadata.is_span() {
            level <= Level::DEBUG
        } else {
            level <= Level::WARN
        }
}

/// Whether `target` is one of [`OUR_CRATES`] or a module of one.
fn is_ours(target: &str) -> bool {
    OUR_CRATES.iter().any(|name| {
        target
            .strip_prefix(name)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

/// Makes `parent` (a remote context; `None`: a new trace) the OpenTelemetry parent of `span`
/// and answers `span`'s own context, or `None` when no OpenTelemetry layer records `span` (the
/// export is off or the span is disabled). Must run before `span` is first entered.
pub(crate) fn adopt(span: &tracing::Span, parent: Option<&TraceContext>) -> Option<TraceContext> {
    let parent = match parent.and_then(remote) {
        Some(remote) => opentelemetry::Context::new().with_remote_span_context(remote),
        None => opentelemetry::Context::new(),
    };
    span.set_parent(parent).ok()?;
    let context = span.context();
    let own = context.span().span_context().clone();
    own.is_valid().then(|| {
        TraceContext::from_parts(
            &own.trace_id().to_string(),
            &own.span_id().to_string(),
            own.trace_flags().to_u8(),
        )
    })
}

/// `context` as OpenTelemetry's remote span context.
fn remote(context: &TraceContext) -> Option<SpanContext> {
    let trace_id = TraceId::from_hex(context.trace_id()).ok()?;
    let span_id = SpanId::from_hex(context.span_id()).ok()?;
    Some(SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(context.flags()),
        true,
        TraceState::default(),
    ))
}

/// Exports the spans ended so far and waits for it, at most `limit` (and the exporter's own
/// timeout, `OTEL_EXPORTER_OTLP_TIMEOUT`): for the end of a Lambda invocation, whose sandbox may
/// be frozen once it answers, and which must answer before its deadline whatever the collector
/// does (an export still running then goes on when the sandbox thaws). Nothing when the export
/// is off.
pub async fn flush(limit: Duration) {
    let Some(provider) = PROVIDER.get() else {
        return;
    };
    let provider = provider.clone();
    let flushing = tokio::task::spawn_blocking(move || provider.force_flush());
    match tokio::time::timeout(limit, flushing).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(error))) => tracing::warn!(error = %error, "span export flush failed"),
        Ok(Err(_)) => tracing::warn!("span export flush panicked"),
        Err(_) => tracing::warn!(
            limit_ms = limit.as_millis(),
            "span export flush not done in time, answering"
        ),
    }
}

/// Exports what is left and stops the export (once; later spans are dropped). Blocks for at most
/// the exporter's timeout. Nothing when the export is off.
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get()
        && let Err(error) = provider.shutdown()
    {
        tracing::warn!(error = %error, "span export shutdown failed");
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
    use tracing_subscriber::prelude::*;

    use super::*;

    /// The names of the spans `work` ends, under a subscriber with the export layer alone.
    fn exported_names(work: impl FnOnce()) -> Vec<String> {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let subscriber = tracing_subscriber::registry().with(layer(&provider));
        tracing::subscriber::with_default(subscriber, work);
        provider.force_flush().expect("flushed");
        let mut names: Vec<String> = exporter
            .get_finished_spans()
            .expect("spans")
            .into_iter()
            .map(|s| s.name.into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn only_our_crates_spans_are_exported_and_their_statements_only_inside_a_hop() {
        let names = exported_names(|| {
            // Other crates' spans (the AWS SDK's, sqlx's), at any level: never.
            drop(tracing::info_span!(target: "aws_smithy_runtime::client", "send"));
            drop(tracing::info_span!(target: "sqlx::query", "query"));
            // A statement outside any hop (a background loop's): not a trace of its own.
            drop(tracing::debug_span!(target: "outbox", "outbox.claim"));
            // A hop with its statement, and a trace-level span inside it (too fine).
            let hop = tracing::info_span!(target: "worker::process", "event");
            hop.in_scope(|| {
                drop(tracing::debug_span!(target: "outbox::inbox", "inbox.record"));
                drop(tracing::trace_span!(target: "outbox::inbox", "too.fine"));
                drop(tracing::debug_span!(target: "sqlx::query", "query"));
            });
        });
        assert_eq!(names, ["event", "inbox.record"]);
    }

    #[test]
    fn the_crate_list_matches_whole_names_only() {
        assert!(is_ours("worker"));
        assert!(is_ours("worker::process"));
        assert!(!is_ours("workers_of_another_crate"));
        assert!(!is_ours("tower_http::trace"));
    }
}
