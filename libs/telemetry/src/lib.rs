#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod emf;
pub mod metrics;
pub mod trace;

use std::io::IsTerminal;

use tokio_util::sync::CancellationToken;
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Installs the global `tracing` subscriber for the process named `service`: compact lines on
/// stdout, coloured only when stdout is a terminal and `NO_COLOR` is unset (a log file or a
/// collector gets plain text), or one JSON object per line with `LOG_FORMAT=json`.
///
/// Calling it twice is harmless: the second call keeps the first subscriber.
pub fn init(service: &'static str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let registry = tracing_subscriber::registry().with(filter);
    let installed = if json {
        registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true),
            )
            .try_init()
    } else {
        registry
            .with(fmt::layer().compact().with_ansi(colour()))
            .try_init()
    };
    if installed.is_ok() {
        tracing::info!(service, "telemetry initialised");
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
