//! The same counters and gauges as CloudWatch embedded-metric-format (EMF) log lines, for
//! processes run by AWS Lambda, which serve no `/metrics` port.
//!
//! [`install`] sets a `metrics` recorder that keeps every counter's increments since the last
//! [`flush`] and every gauge's last value; [`flush`] writes one JSON line per label set to stdout,
//! which Lambda sends to CloudWatch Logs, where CloudWatch turns each line into metric data points
//! in the `ChargeFlow` namespace (or `METRICS_NAMESPACE`) — the series names of the Prometheus exposition, with dimension
//! sets `[service, <labels>…]` and, for a labelled series, also `[<labels>…]` alone, so an alarm
//! can read one worker or all of them. The Lambda adapters flush once per invocation.
//!
//! Written here rather than with the `metrics_cloudwatch_embedded` crate: that crate emits every
//! gauge at every flush and takes histograms with at most 100 samples between flushes (the
//! relay records one sample per published row), and its recorder cannot be wrapped to leave
//! series out. Histograms are not exported here (their samples are dropped): the alarms read
//! counters and gauges, and durations are in each invocation's `REPORT` line.

use std::{
    collections::BTreeMap,
    io::Write,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, Key, KeyName, Metadata, Recorder, SharedString,
    Unit,
};

/// The CloudWatch namespace of every metric unless `METRICS_NAMESPACE` names another (the AWS
/// template sets `ChargeFlow/<stack name>`, so that two stacks in one account keep theirs apart).
pub const NAMESPACE: &str = "ChargeFlow";

static INSTALLED: OnceLock<&'static Emf> = OnceLock::new();

/// The recorder's state: every series registered so far.
#[derive(Default)]
pub struct Emf {
    service: String,
    namespace: String,
    counters: Mutex<BTreeMap<Key, Arc<EmfCounter>>>,
    gauges: Mutex<BTreeMap<Key, Arc<EmfGauge>>>,
}

/// A counter's increments since the last flush.
#[derive(Default)]
struct EmfCounter(AtomicU64);

impl CounterFn for EmfCounter {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }

    fn absolute(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }
}

/// A gauge's value (as f64 bits) and whether it was set since the last flush.
#[derive(Default)]
struct EmfGauge {
    bits: AtomicU64,
    set: AtomicBool,
}

impl EmfGauge {
    fn update(&self, f: impl Fn(f64) -> f64) {
        let mut current = self.bits.load(Ordering::Relaxed);
        loop {
            let next = f(f64::from_bits(current)).to_bits();
            match self.bits.compare_exchange_weak(
                current,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(seen) => current = seen,
            }
        }
        self.set.store(true, Ordering::Relaxed);
    }
}

impl GaugeFn for EmfGauge {
    fn increment(&self, value: f64) {
        self.update(|v| v + value);
    }

    fn decrement(&self, value: f64) {
        self.update(|v| v - value);
    }

    fn set(&self, value: f64) {
        self.update(|_| value);
    }
}

impl Emf {
    /// A recorder for the process named `service` (the `service` dimension of every line),
    /// writing to CloudWatch namespace `namespace`.
    pub fn new(service: &str, namespace: &str) -> Self {
        Emf {
            service: service.to_owned(),
            namespace: namespace.to_owned(),
            ..Emf::default()
        }
    }

    /// Writes one EMF line per label set with what changed since the last call (counters that
    /// grew, gauges that were set), `timestamp_ms` as their time; nothing when nothing changed.
    ///
    /// # Errors
    /// When `out` fails.
    pub fn write(&self, timestamp_ms: u64, mut out: impl Write) -> std::io::Result<()> {
        let mut lines: BTreeMap<Labels, Vec<Value>> = BTreeMap::new();
        for (key, counter) in lock(&self.counters).iter() {
            let delta = counter.0.swap(0, Ordering::Relaxed);
            if delta > 0 {
                lines.entry(labels(key)).or_default().push((
                    key.name().to_owned(),
                    "Count",
                    delta as f64,
                ));
            }
        }
        for (key, gauge) in lock(&self.gauges).iter() {
            if gauge.set.swap(false, Ordering::Relaxed) {
                let value = f64::from_bits(gauge.bits.load(Ordering::Relaxed));
                lines
                    .entry(labels(key))
                    .or_default()
                    .push((key.name().to_owned(), "None", value));
            }
        }
        for (labels, metrics) in lines {
            serde_json::to_writer(&mut out, &self.document(timestamp_ms, &labels, &metrics))?;
            out.write_all(b"\n")?;
        }
        out.flush()
    }

    fn document(
        &self,
        timestamp_ms: u64,
        labels: &[(String, String)],
        metrics: &[Value],
    ) -> serde_json::Value {
        let names: Vec<&str> = labels.iter().map(|(k, _)| k.as_str()).collect();
        let mut with_service = vec!["service"];
        with_service.extend(&names);
        let mut dimensions = vec![with_service];
        if !names.is_empty() {
            dimensions.push(names);
        }
        let declared: Vec<serde_json::Value> = metrics
            .iter()
            .map(|(name, unit, _)| serde_json::json!({ "Name": name, "Unit": unit }))
            .collect();
        let mut doc = serde_json::json!({
            "_aws": {
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": dimensions,
                    "Metrics": declared,
                }],
            },
            "service": self.service,
        });
        for (key, value) in labels {
            doc[key] = value.as_str().into();
        }
        for (name, _, value) in metrics {
            doc[name] = (*value).into();
        }
        doc
    }
}

/// A series' labels, in key order.
type Labels = Vec<(String, String)>;
/// One metric of a line: its name, its CloudWatch unit and its value.
type Value = (String, &'static str, f64);

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn labels(key: &Key) -> Vec<(String, String)> {
    key.labels()
        .map(|l| (l.key().to_owned(), l.value().to_owned()))
        .collect()
}

/// The recorder the process installs (a `&'static`, as `metrics` wants it).
struct EmfRecorder(&'static Emf);

impl Recorder for EmfRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let counter = lock(&self.0.counters)
            .entry(key.clone())
            .or_default()
            .clone();
        Counter::from_arc(counter)
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let gauge = lock(&self.0.gauges).entry(key.clone()).or_default().clone();
        Gauge::from_arc(gauge)
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

/// Installs the EMF recorder for the process named `service` as the process-wide `metrics`
/// recorder (once; later calls do nothing). For processes under Lambda, instead of
/// [`crate::metrics::install`].
pub fn install(service: &str) {
    INSTALLED.get_or_init(|| {
        let namespace = std::env::var("METRICS_NAMESPACE")
            .ok()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| NAMESPACE.to_owned());
        let emf: &'static Emf = Box::leak(Box::new(Emf::new(service, &namespace)));
        if ::metrics::set_global_recorder(EmfRecorder(emf)).is_err() {
            tracing::warn!("another metrics recorder is installed: no EMF metrics");
        }
        emf
    });
}

/// Writes what changed since the last flush to stdout as EMF lines (nothing unless [`install`]
/// ran). A failed write is logged, never returned: metrics are not worth failing an invocation.
pub fn flush() {
    let Some(emf) = INSTALLED.get() else {
        return;
    };
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    if let Err(error) = emf.write(now_ms, std::io::stdout().lock()) {
        tracing::warn!(error = %error, "could not write the EMF metrics");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(emf: &Emf) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        emf.write(1_700_000_000_000, &mut out).expect("write");
        String::from_utf8(out)
            .expect("utf-8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect()
    }

    fn recorder() -> (&'static Emf, EmfRecorder) {
        let emf: &'static Emf = Box::leak(Box::new(Emf::new("billing-service", NAMESPACE)));
        (emf, EmfRecorder(emf))
    }

    #[test]
    fn a_counter_is_written_as_its_increase_since_the_last_flush_with_its_labels_as_dimensions() {
        let (emf, recorder) = recorder();
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!("chargeflow_messages_total", "consumer" => "billing", "outcome" => "done")
                .increment(3);
            metrics::counter!("chargeflow_messages_total", "consumer" => "billing", "outcome" => "parked")
                .increment(1);
        });
        let written = lines(emf);
        assert_eq!(written.len(), 2, "one line per label set: {written:?}");
        let done = written
            .iter()
            .find(|l| l["outcome"] == "done")
            .expect("done");
        assert_eq!(done["chargeflow_messages_total"], 3.0);
        assert_eq!(done["service"], "billing-service");
        assert_eq!(done["consumer"], "billing");
        let aws = &done["_aws"];
        assert_eq!(aws["Timestamp"], 1_700_000_000_000_u64);
        let directive = &aws["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "ChargeFlow");
        assert_eq!(
            directive["Dimensions"],
            serde_json::json!([["service", "consumer", "outcome"], ["consumer", "outcome"]])
        );
        assert_eq!(
            directive["Metrics"],
            serde_json::json!([{"Name": "chargeflow_messages_total", "Unit": "Count"}])
        );

        // Nothing new: nothing written. Two more: 2, not 5.
        assert!(lines(emf).is_empty());
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!("chargeflow_messages_total", "consumer" => "billing", "outcome" => "done")
                .increment(2);
        });
        let again = lines(emf);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0]["chargeflow_messages_total"], 2.0);
    }

    #[test]
    fn a_gauge_is_written_when_set_and_series_without_labels_share_one_line() {
        let (emf, recorder) = recorder();
        metrics::with_local_recorder(&recorder, || {
            metrics::gauge!("chargeflow_outbox_oldest_unpublished_seconds").set(42.5);
            metrics::counter!("chargeflow_relay_published_total").increment(7);
            metrics::histogram!("chargeflow_relay_publish_lag_seconds").record(0.01);
        });
        let written = lines(emf);
        assert_eq!(written.len(), 1, "{written:?}");
        let line = &written[0];
        assert_eq!(line["chargeflow_outbox_oldest_unpublished_seconds"], 42.5);
        assert_eq!(line["chargeflow_relay_published_total"], 7.0);
        assert!(line.get("chargeflow_relay_publish_lag_seconds").is_none());
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([["service"]])
        );
        assert!(
            lines(emf).is_empty(),
            "an unchanged gauge is not written again"
        );
    }
}
