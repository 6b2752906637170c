//! What the relay measures: rows published and failed, how long each published row took from
//! its outbox insert to SQS accepting it, and the outbox backlog.
//!
//! The relay owns the backlog gauges: every relay process reads them every [`BACKLOG_EVERY`]
//! with one query over the partial index of unpublished rows (several relays report the same
//! numbers). The lag is measured on the relay's clock against the row's `created_at` (the
//! database's clock at insert; the same machine locally, NTP-synchronised hosts in AWS).

use std::time::Duration;

use chrono::{DateTime, Utc};
use outbox::PendingEvent;

/// Counter `chargeflow_relay_published_total`: outbox rows published (accepted by every queue
/// they are routed to, and marked).
pub const PUBLISHED_TOTAL: &str = "chargeflow_relay_published_total";
/// Counter `chargeflow_relay_publish_errors_total`: failed publish attempts of rows (each is
/// retried with backoff).
pub const PUBLISH_ERRORS_TOTAL: &str = "chargeflow_relay_publish_errors_total";
/// Histogram `chargeflow_relay_publish_lag_seconds`: from a row's insert (its `created_at`) to
/// SQS accepting it, per published row.
pub const PUBLISH_LAG: &str = "chargeflow_relay_publish_lag_seconds";
/// Gauge `chargeflow_outbox_backlog`: unpublished outbox rows.
pub const OUTBOX_BACKLOG: &str = "chargeflow_outbox_backlog";
/// Gauge `chargeflow_outbox_oldest_unpublished_seconds`: age of the oldest unpublished row (0
/// when there is none).
pub const OUTBOX_OLDEST_UNPUBLISHED: &str = "chargeflow_outbox_oldest_unpublished_seconds";

/// How often each relay reads the backlog.
pub const BACKLOG_EVERY: Duration = Duration::from_secs(5);

/// Describes the series (their `# HELP` lines); harmless before a recorder is installed.
pub fn describe() {
    ::metrics::describe_counter!(
        PUBLISHED_TOTAL,
        "Outbox rows published to all their queues."
    );
    ::metrics::describe_counter!(
        PUBLISH_ERRORS_TOTAL,
        "Failed publish attempts of outbox rows (retried with backoff)."
    );
    ::metrics::describe_histogram!(
        PUBLISH_LAG,
        ::metrics::Unit::Seconds,
        "Time from an outbox row's insert to SQS accepting it."
    );
    ::metrics::describe_gauge!(OUTBOX_BACKLOG, "Unpublished outbox rows.");
    ::metrics::describe_gauge!(
        OUTBOX_OLDEST_UNPUBLISHED,
        ::metrics::Unit::Seconds,
        "Age of the oldest unpublished outbox row."
    );
}

/// Counts one committed pass: the `published` rows with their lag up to `accepted_at`, and
/// `failed` failed rows.
pub(crate) fn record_pass(published: &[&PendingEvent], failed: usize, accepted_at: DateTime<Utc>) {
    let lag = ::metrics::histogram!(PUBLISH_LAG);
    for row in published {
        lag.record((accepted_at - row.created_at).to_std().unwrap_or_default());
    }
    ::metrics::counter!(PUBLISHED_TOTAL).increment(published.len() as u64);
    ::metrics::counter!(PUBLISH_ERRORS_TOTAL).increment(failed as u64);
}

/// Sets the backlog gauges.
pub(crate) fn set_backlog(backlog: &outbox::Backlog) {
    ::metrics::gauge!(OUTBOX_BACKLOG).set(backlog.pending as f64);
    ::metrics::gauge!(OUTBOX_OLDEST_UNPUBLISHED).set(backlog.oldest_age_s.max(0.0));
}
