//! What the relay measures: rows published and failed, how long each published row took from
//! its outbox insert to SQS accepting it, the outbox backlog, and what its expiry sweeper
//! ([`crate::expiry`]) found: orders expired and orders stuck.
//!
//! | series | type | what |
//! | --- | --- | --- |
//! | `chargeflow_relay_published_total` | counter | outbox rows published |
//! | `chargeflow_relay_publish_errors_total` | counter | failed publish attempts of rows |
//! | `chargeflow_relay_publish_lag_seconds` | histogram | row insert → SQS accepted |
//! | `chargeflow_outbox_backlog`, `chargeflow_outbox_oldest_unpublished_seconds` | gauges, read every 5 s | unpublished rows, age of the oldest |
//! | `chargeflow_orders_expired_total` | counter | unpaid orders this relay cancelled as `expired` |
//! | `chargeflow_orders_stuck` | gauge, read after each sweep (`orders.sweep_interval_s`) | orders not settled (`placed`, `invoiced`, `paid`) placed more than `orders.stuck_after_s` ago |
//! | `chargeflow_rows_purged_total{table}` | counter | rows the purge deleted: published `outbox` rows and the bounded tables of `outbox::retention` |
//!
//! The relay owns the backlog gauges: every relay process reads them every [`BACKLOG_EVERY`]
//! with one query over the partial index of unpublished rows (several relays report the same
//! numbers). The stuck gauge is the same: every relay counts after each of its sweeps, over the
//! partial index of unsettled orders, so several relays report the same number; the expired
//! counters add up across relays (each order is expired by one of them). An alert on the stuck
//! gauge (above 0 for longer than a sweep) points the operator at `chargeflow-admin orders
//! stuck`, which says what each order waits for.
//!
//! The lag is measured on the relay's clock against the row's `created_at` (the database's
//! clock at insert; the same machine locally, NTP-synchronised hosts in AWS).

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

/// Counter `chargeflow_orders_expired_total`: unpaid orders this relay's sweeper cancelled as
/// `expired`.
pub const ORDERS_EXPIRED_TOTAL: &str = "chargeflow_orders_expired_total";
/// Gauge `chargeflow_orders_stuck`: orders not settled (`placed`, `invoiced`, `paid`) and placed
/// more than `orders.stuck_after_s` ago, counted after each sweep.
pub const ORDERS_STUCK: &str = "chargeflow_orders_stuck";

/// Counter `chargeflow_rows_purged_total{table}`: rows the purge deleted, by table.
pub const ROWS_PURGED_TOTAL: &str = "chargeflow_rows_purged_total";

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
    ::metrics::describe_counter!(
        ORDERS_EXPIRED_TOTAL,
        "Unpaid orders cancelled as expired by this relay's sweeper."
    );
    ::metrics::describe_counter!(
        ROWS_PURGED_TOTAL,
        "Rows deleted by the purge (published outbox rows, old inbox rows, idempotency keys, webhook ids), by table."
    );
    ::metrics::describe_gauge!(
        ORDERS_STUCK,
        "Orders not settled and placed longer ago than orders.stuck_after_s."
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

/// Counts `n` orders expired by one sweeper transaction (0 registers the counter).
pub(crate) fn record_expired(n: usize) {
    ::metrics::counter!(ORDERS_EXPIRED_TOTAL).increment(n as u64);
}

/// Sets the stuck-orders gauge.
pub(crate) fn set_stuck(stuck: i64) {
    ::metrics::gauge!(ORDERS_STUCK).set(stuck as f64);
}

/// Counts `rows` purged from `table` (0 registers the series).
pub(crate) fn count_purged(table: &'static str, rows: u64) {
    ::metrics::counter!(ROWS_PURGED_TOTAL, "table" => table).increment(rows);
}
