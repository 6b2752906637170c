#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod emf;
pub mod metrics;
pub mod otel;
pub mod trace;

use std::io::IsTerminal;

use tokio_util::sync::CancellationToken;
use tracing::Subscriber;
use tracing_subscriber::{EnvFilter, Layer, fmt, prelude::*, registry::LookupSpan};

/// Installs the global `tracing` subscriber for the process named `service`: compact lines on
/// stdout, coloured only when stdout is a terminal and `NO_COLOR` is unset (a log file or a
/// collector gets plain text), or one JSON object per line with `LOG_FORMAT=json`; and, when the
/// environment asks for it ([`otel::configured`]), the OpenTelemetry span export with
/// `service.name` = `service` ([`otel`]).
///
/// Keep the answer until the process ends: dropping it exports the spans not yet sent and stops
/// the export. Calling `init` twice is harmless: the second call keeps the first subscriber.
pub fn init(service: &'static str) -> Guard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let mut export_error = None;
    let provider = if otel::configured() {
        otel::provider(service)
            .inspect_err(|e| export_error = Some(error_chain(e)))
            .ok()
    } else {
        None
    };
    let installed = match &provider {
        // Off: exactly the log subscriber, nothing more.
        None => tracing_subscriber::registry()
            .with(filter)
            .with(log_layer(json))
            .try_init(),
        // On: the log filter applies to the log lines only; the export has its own.
        Some(provider) => tracing_subscriber::registry()
            .with(log_layer(json).with_filter(filter))
            .with(otel::layer(provider))
            .try_init(),
    };
    if installed.is_ok() {
        let exporting = provider.is_some();
        if let Some(provider) = provider {
            otel::keep(provider);
        }
        tracing::info!(service, span_export = exporting, "telemetry initialised");
        if let Some(error) = export_error {
            tracing::error!(%error, "span export not started: the OTLP exporter could not be built");
        }
    }
    Guard { _private: () }
}

/// The log lines' layer: JSON or compact.
fn log_layer<S>(json: bool) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    if json {
        fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .boxed()
    } else {
        fmt::layer().compact().with_ansi(colour()).boxed()
    }
}

/// What [`init`] answers: while it lives, spans are exported (if the export is on); dropping it
/// exports the rest and stops the export ([`otel::shutdown`]), so that a process stopped by
/// SIGTERM loses none of its spans. Keep it in `main` (`let _telemetry = telemetry::init(..)`).
#[must_use = "dropping the guard stops the span export"]
#[derive(Debug)]
pub struct Guard {
    _private: (),
}

impl Drop for Guard {
    fn drop(&mut self) {
        otel::shutdown();
    }
}

/// Whether log lines get ANSI colours: only on a terminal, and not when `NO_COLOR` is set to
/// anything non-empty (<https://no-color.org>).
fn colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Ends a process that cannot start with its settings: one line on stderr, `<service>: refusing
/// to start: <error>: <cause>…` (the whole chain of sources), and exit code 78 (`EX_CONFIG`).
/// For the start of `main`, before anything is connected.
pub fn refuse_to_start(service: &str, error: &(dyn std::error::Error + 'static)) -> ! {
    eprintln!("{service}: refusing to start: {}", error_chain(error));
    std::process::exit(78)
}

/// Resolves when the process receives Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("received Ctrl-C, shutting down"),
        () = terminate => tracing::info!("received SIGTERM, shutting down"),
    }
}

/// A token cancelled when [`shutdown_signal`] resolves.
pub fn shutdown_token() -> CancellationToken {
    let token = CancellationToken::new();
    let child = token.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        child.cancel();
    });
    token
}

/// An error and its sources on one line, `outer: inner: root`, for a log field.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
