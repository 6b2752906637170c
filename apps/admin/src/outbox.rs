//! `outbox status` and `outbox retry`: what waits to be published, what failed, and making
//! failed rows due again. The SQL is the `outbox` library's.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{AdminError, render};

/// The most failed rows one command shows or retries.
const MAX_ROWS: i64 = 10_000;
/// Characters of the last error shown in a table.
const ERROR_EXCERPT: usize = 70;

/// The outbox's backlog and its failing rows.
#[derive(Debug, Serialize)]
pub struct OutboxStatus {
    /// Rows not yet published.
    pub unpublished: i64,
    /// Age of the oldest unpublished row, in seconds (0 when there is none).
    pub oldest_unpublished_age_s: f64,
    /// Unpublished rows that failed at least once.
    pub failing: i64,
    /// The most failed attempts of one row.
    pub max_attempts: i32,
    /// The failing rows, oldest first (at most the limit asked for).
    pub failing_rows: Vec<FailedRow>,
}

/// An unpublished row whose publishing failed.
#[derive(Debug, Serialize)]
pub struct FailedRow {
    /// The outbox row id (what `outbox retry --id` takes).
    pub id: i64,
    /// The event's id.
    pub event_id: Uuid,
    /// The event type.
    pub event_type: String,
    /// The order.
    pub order_id: Uuid,
    /// Failed attempts so far.
    pub attempts: i32,
    /// When the row was written.
    pub created_at: DateTime<Utc>,
    /// When the relay may try it next.
    pub next_attempt_at: DateTime<Utc>,
    /// What the last attempt failed with.
    pub last_error: Option<String>,
}

impl From<::outbox::FailedRow> for FailedRow {
    fn from(row: ::outbox::FailedRow) -> Self {
        FailedRow {
            id: row.id,
            event_id: row.event_id,
            event_type: row.event_type,
            order_id: row.aggregate_id,
            attempts: row.attempts,
            created_at: row.created_at,
            next_attempt_at: row.next_attempt_at,
            last_error: row.last_error,
        }
    }
}

/// Measures the backlog and lists up to `limit` failing rows.
///
/// # Errors
/// [`AdminError`] when a query fails.
pub async fn status(pool: &PgPool, limit: i64) -> Result<OutboxStatus, AdminError> {
    let mut conn = pool.acquire().await?;
    let backlog = ::outbox::backlog(&mut conn).await?;
    let rows = ::outbox::failed(&mut conn, None, limit).await?;
    Ok(OutboxStatus {
        unpublished: backlog.pending,
        oldest_unpublished_age_s: backlog.oldest_age_s,
        failing: backlog.failing,
        max_attempts: backlog.max_attempts,
        failing_rows: rows.into_iter().map(FailedRow::from).collect(),
    })
}

/// What `outbox retry` did, or would do.
#[derive(Debug, Serialize)]
pub struct RetryReport {
    /// Nothing was changed (no `--yes`).
    pub dry_run: bool,
    /// The rows made due now (or that would be).
    pub rows: Vec<FailedRow>,
}

/// Makes the failed rows (or the one row `id`) due now, unless `dry_run`: then only lists them.
///
/// # Errors
/// [`AdminError::NotAFailedRow`] when `id` is not an unpublished row with failed attempts;
/// [`AdminError`] when a statement fails.
pub async fn retry(
    pool: &PgPool,
    id: Option<i64>,
    dry_run: bool,
) -> Result<RetryReport, AdminError> {
    let mut conn = pool.acquire().await?;
    let mut rows = ::outbox::failed(&mut conn, id, MAX_ROWS).await?;
    if let Some(id) = id
        && rows.is_empty()
    {
        return Err(AdminError::NotAFailedRow(id));
    }
    if !dry_run {
        let retried = ::outbox::retry_failed(&mut conn, id).await?;
        rows = ::outbox::failed(&mut conn, id, MAX_ROWS).await?;
        rows.retain(|row| retried.contains(&row.id));
    }
    Ok(RetryReport {
        dry_run,
        rows: rows.into_iter().map(FailedRow::from).collect(),
    })
}

/// The status as text.
pub fn render_status(status: &OutboxStatus) -> String {
    let oldest = match status.unpublished {
        0 => "-".to_owned(),
        _ => format!("{} ago", render::age(status.oldest_unpublished_age_s)),
    };
    let failing = match status.failing {
        0 => "0".to_owned(),
        n => format!("{n} (most attempts: {})", status.max_attempts),
    };
    let mut text = render::fields(&[
        ("unpublished rows", status.unpublished.to_string()),
        ("oldest unpublished", oldest),
        ("rows with failures", failing),
    ]);
    if !status.failing_rows.is_empty() {
        let shown = status.failing_rows.len();
        text.push_str(&format!(
            "\nfailing rows, oldest first ({shown} of {}):\n",
            status.failing
        ));
        text.push_str(&rows_table(&status.failing_rows, Utc::now()));
    }
    text
}

/// The retry report as text.
pub fn render_retry(report: &RetryReport) -> String {
    if report.rows.is_empty() {
        return "no failed outbox rows: nothing to retry\n".to_owned();
    }
    let rows = render::count(report.rows.len(), "failed outbox row", "failed outbox rows");
    let head = if report.dry_run {
        format!("dry run: would make {rows} due now (add --yes to do it)\n")
    } else {
        format!("made {rows} due now; the relays were woken and publish them on their next claim\n")
    };
    head + &rows_table(&report.rows, Utc::now())
}

fn rows_table(rows: &[FailedRow], now: DateTime<Utc>) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            vec![
                row.id.to_string(),
                row.event_type.clone(),
                row.order_id.to_string(),
                row.attempts.to_string(),
                next_attempt(row.next_attempt_at, now),
                render::excerpt(row.last_error.as_deref().unwrap_or("-"), ERROR_EXCERPT),
            ]
        })
        .collect();
    render::table(
        &[
            "ID",
            "EVENT",
            "ORDER",
            "ATTEMPTS",
            "NEXT ATTEMPT",
            "LAST ERROR",
        ],
        &cells,
    )
}

fn next_attempt(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let wait = (at - now).num_milliseconds() as f64 / 1000.0;
    if wait <= 0.5 {
        "due now".to_owned()
    } else {
        format!("in {}", render::age(wait))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(next_attempt_at: DateTime<Utc>) -> FailedRow {
        FailedRow {
            id: 7,
            event_id: Uuid::nil(),
            event_type: "order.placed".into(),
            order_id: Uuid::nil(),
            attempts: 3,
            created_at: next_attempt_at,
            next_attempt_at,
            last_error: Some("SQS call `SendMessageBatch` failed:\nconnection refused".into()),
        }
    }

    #[test]
    fn the_status_names_the_backlog_and_the_failing_rows() {
        let now = Utc::now();
        let status = OutboxStatus {
            unpublished: 3,
            oldest_unpublished_age_s: 252.0,
            failing: 1,
            max_attempts: 3,
            failing_rows: vec![row(now + chrono::Duration::seconds(40))],
        };
        let text = render_status(&status);
        assert!(text.starts_with("unpublished rows    3\noldest unpublished  4 min 12 s ago\n"));
        assert!(text.contains("rows with failures  1 (most attempts: 3)"));
        assert!(text.contains("failing rows, oldest first (1 of 1):"));
        assert!(text.contains("SQS call `SendMessageBatch` failed: connection refused"));
        assert!(text.contains("in 40 s") || text.contains("in 39 s"));
    }

    #[test]
    fn a_dry_run_says_what_it_would_do() {
        let report = RetryReport {
            dry_run: true,
            rows: vec![row(Utc::now())],
        };
        assert!(
            render_retry(&report).starts_with(
                "dry run: would make 1 failed outbox row due now (add --yes to do it)\n"
            )
        );
        let empty = RetryReport {
            dry_run: false,
            rows: vec![],
        };
        assert_eq!(
            render_retry(&empty),
            "no failed outbox rows: nothing to retry\n"
        );
    }
}
