//! Prometheus metrics: one recorder per process, rendered in the text exposition format.
//!
//! Code records with the `metrics` macros (`counter!`, `gauge!`, `histogram!`);
//! until [`install`] has run they go nowhere, so libraries record unconditionally and the
//! binaries decide. [`install`] sets the process-wide recorder once (a second call returns the
//! same handle, so every test of one test binary shares it); [`scrape`] is the axum handler of
//! `GET /metrics` and [`spawn_server`] serves it on a port of its own, for processes without
//! an HTTP listener (the relay, the workers).
//!
//! Names start with `chargeflow_` and carry their unit (`_seconds`, `_total`); labels stay
//! low-cardinality (outcome, consumer, queue, status — never an order or event id).
//! Histograms are true Prometheus histograms over [`LATENCY_BUCKETS`].

use std::{net::SocketAddr, sync::OnceLock, time::Duration};

use axum::{Router, http::header, response::IntoResponse, routing::get};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

/// Upper bounds of the histogram buckets, in seconds: 1 ms to 30 s, for request, handler and
/// publish latencies measured in milliseconds.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The `Content-Type` of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How often histogram samples are folded into their buckets between scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (once) and returns the handle that renders it.
///
/// Later calls return the same handle. A background thread folds histogram samples into their
/// buckets every few seconds, so memory stays bounded however rarely the metrics are scraped.
pub fn install() -> PrometheusHandle {
    HANDLE.get_or_init(install_recorder).clone()
}

fn install_recorder() -> PrometheusHandle {
    let builder = PrometheusBuilder::new();
    // Only an empty bucket list is refused; summaries are the fallback if it ever were.
    let builder = match builder.set_buckets(LATENCY_BUCKETS) {
        Ok(with_buckets) => with_buckets,
        Err(_) => PrometheusBuilder::new(),
    };
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    if ::metrics::set_global_recorder(recorder).is_err() {
        tracing::warn!("another metrics recorder is installed: /metrics will stay empty");
    }
    spawn_upkeep(handle.clone());
    handle
}

fn spawn_upkeep(handle: PrometheusHandle) {
    let started = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                handle.run_upkeep();
            }
        });
    if let Err(error) = started {
        tracing::warn!(error = %error, "could not start the metrics upkeep thread");
    }
}

/// The current metrics in the text exposition format (installs the recorder if needed).
pub fn render() -> String {
    install().render()
}

/// The axum handler of `GET /metrics`: [`render`] with the exposition format's content type.
pub async fn scrape() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], render())
}

/// A router answering `GET /metrics` with [`scrape`].
pub fn router() -> Router {
    Router::new().route("/metrics", get(scrape))
}

/// Binds `addr` and serves [`router`] on it in a background task until `shutdown` is
/// cancelled; returns the bound address (port 0 picks a free one).
///
/// Metrics are not worth dying for: when the address cannot be bound (taken by another
/// process, say), the failure is logged and `None` returned, and the process runs on without
/// its metrics port.
pub async fn spawn_server(addr: &str, shutdown: CancellationToken) -> Option<SocketAddr> {
    install();
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(addr, error = %error, "could not bind the metrics port: running without it");
            return None;
        }
    };
    let bound = listener.local_addr().ok()?;
    tokio::spawn(async move {
        let served = axum::serve(listener, router())
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(error) = served {
            tracing::error!(error = %error, "the metrics port failed");
        }
    });
    tracing::info!(addr = %bound, "metrics served at /metrics");
    Some(bound)
}

/// The sum of the samples of series `name` whose labels include every `(key, value)` of
/// `labels`, read from a text exposition; `None` when there is no such sample. For tests and
/// tools that read metrics back.
///
/// ```
/// let text = "# TYPE m counter\nm{a=\"x\",b=\"1\"} 2\nm{a=\"x\",b=\"2\"} 3\nm{a=\"y\"} 7\n";
/// assert_eq!(telemetry::metrics::sample(text, "m", &[("a", "x")]), Some(5.0));
/// assert_eq!(telemetry::metrics::sample(text, "m", &[]), Some(12.0));
/// assert_eq!(telemetry::metrics::sample(text, "m", &[("a", "z")]), None);
/// ```
pub fn sample(exposition: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(parse_line)
        .filter(|(series, set, _)| *series == name && labels_match(set, labels))
        .map(|(_, _, value)| value)
        .reduce(|a, b| a + b)
}

/// `name{labels} value` → (name, labels text, value).
fn parse_line(line: &str) -> Option<(&str, &str, f64)> {
    let (series, value) = line.rsplit_once(' ')?;
    let value = value.parse().ok()?;
    match series.split_once('{') {
        Some((name, rest)) => Some((name, rest.strip_suffix('}')?, value)),
        None => Some((series, "", value)),
    }
}

fn labels_match(set: &str, wanted: &[(&str, &str)]) -> bool {
    wanted.iter().all(|(key, value)| {
        set.split(',')
            .any(|pair| pair == format!("{key}=\"{value}\""))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_is_rendered_with_the_latency_buckets() {
        install();
        ::metrics::histogram!("chargeflow_test_duration_seconds").record(Duration::from_millis(3));
        let text = render();
        let bucket = sample(
            &text,
            "chargeflow_test_duration_seconds_bucket",
            &[("le", "0.005")],
        );
        assert_eq!(bucket, Some(1.0), "{text}");
        assert_eq!(
            sample(&text, "chargeflow_test_duration_seconds_count", &[]),
            Some(1.0)
        );
    }

    #[test]
    fn installing_twice_keeps_one_recorder() {
        install();
        ::metrics::counter!("chargeflow_test_installs_total").increment(1);
        let text = install().render();
        assert_eq!(
            sample(&text, "chargeflow_test_installs_total", &[]),
            Some(1.0)
        );
    }

    #[tokio::test]
    async fn the_metrics_port_answers_get_metrics_in_the_text_format() {
        let stop = CancellationToken::new();
        let addr = spawn_server("127.0.0.1:0", stop.clone())
            .await
            .expect("bound");
        ::metrics::counter!("chargeflow_test_served_total").increment(2);
        let response = tokio::task::spawn_blocking(move || http_get(addr, "/metrics"))
            .await
            .expect("request");
        stop.cancel();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.contains("text/plain; version=0.0.4"), "{response}");
        assert!(
            response.contains("chargeflow_test_served_total 2"),
            "{response}"
        );
    }

    #[tokio::test]
    async fn a_taken_metrics_port_is_logged_and_skipped() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = taken.local_addr().expect("addr").to_string();
        assert_eq!(spawn_server(&addr, CancellationToken::new()).await, None);
    }

    fn http_get(addr: SocketAddr, path: &str) -> String {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read");
        response
    }
}
