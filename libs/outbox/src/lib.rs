#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod inbox;
pub mod retention;

use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::EventEnvelope;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

/// The PostgreSQL channel notified when outbox rows are committed.
pub const NOTIFY_CHANNEL: &str = "outbox_pending";

/// The error type of this library.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// A statement failed.
    #[error("outbox statement failed")]
    Database(#[from] sqlx::Error),
    /// The envelope could not be encoded as JSON.
    #[error("event envelope could not be encoded")]
    Encode(#[from] serde_json::Error),
}

/// An unpublished outbox row, locked by the transaction that claimed it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PendingEvent {
    /// The row id (claim order).
    pub id: i64,
    /// The event's id: the SQS deduplication id.
    pub event_id: Uuid,
    /// The event type's wire name.
    pub event_type: String,
    /// The order the event belongs to: the SQS message group.
    pub aggregate_id: Uuid,
    /// The envelope as JSON text, exactly as it is to be sent.
    pub envelope: String,
    /// The correlation id from the envelope (empty if absent).
    pub correlation_id: String,
    /// The W3C trace context from the envelope (empty if absent).
    pub traceparent: String,
    /// When the row was written.
    pub created_at: DateTime<Utc>,
    /// Failed attempts before this one.
    pub attempts: i32,
    /// Another unpublished row of the same order waits behind this one: it becomes claimable
    /// once this one is published (no notification will say so).
    pub next_waiting: bool,
}

/// The result of a claim.
#[derive(Debug)]
pub enum Claimed {
    /// Rows to publish, oldest first, at most one per order.
    Batch(Vec<PendingEvent>),
    /// Nothing is publishable right now.
    Empty,
}

/// How a failed attempt is retried: `base × 2^attempts`, capped at `max`, with ±25 % jitter.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The delay after the first failure.
    pub base: Duration,
    /// The longest delay.
    pub max: Duration,
}

/// Writes `event` to the outbox inside the caller's transaction.
///
/// Takes a transaction-scoped advisory lock on the event's order first, so that the ids of one
/// order's rows follow their commit order even when several transactions write for that order.
/// (`orders::record_event` and `orders::advance` write an order's outbox row together with its
/// timeline entry in one statement, taking the same lock.)
///
/// # Errors
/// [`OutboxError`] when the envelope cannot be encoded or a statement fails (for instance a
/// duplicate `event_id`).
#[tracing::instrument(level = "debug", name = "outbox.enqueue", skip_all, fields(db.system.name = "postgresql"))]
pub async fn enqueue(conn: &mut PgConnection, event: &EventEnvelope) -> Result<(), OutboxError> {
    let envelope = serde_json::to_value(event)?;
    sqlx::query(
        "WITH order_lock AS (SELECT pg_advisory_xact_lock(hashtextextended($3::text, 0)))
         INSERT INTO outbox (event_id, event_type, aggregate_id, envelope)
         SELECT $1, $2, $3, $4 FROM order_lock",
    )
    .bind(event.event_id)
    .bind(event.event_type.as_str())
    .bind(event.order_id)
    .bind(envelope)
    .execute(conn)
    .await?;
    Ok(())
}

/// Begins the transaction a [`claim`] runs in, with sequential and bitmap scans off for it
/// (`SET LOCAL`, in the same round trip as the `BEGIN`): the claim reads the partial index of
/// pending rows in `id` order.
///
/// Publishing a row updates it out of that index, but its entry stays until a vacuum or an
/// index scan finds the row dead and flags the entry; a bitmap or sequential scan never does.
/// With few rows pending (by the statistics) and a claim limit above that, the planner takes a
/// bitmap scan and a sort, which then reads every entry left since the last vacuum and their
/// heap pages: during `bench report` at 50 orders/s, 3,702 entries and 244 heap pages for 16
/// pending rows, 0.7–7 ms a claim and growing with the table (0.12 ms with this). An index scan
/// flags the dead entries it passes, so later claims skip them and the index's pages drop them
/// when they fill. A sequential scan would read the whole table, published rows included.
///
/// # Errors
/// [`OutboxError::Database`] when no connection is available or the statement fails.
pub async fn begin_claim(pool: &PgPool) -> Result<Transaction<'static, Postgres>, OutboxError> {
    Ok(pool
        .begin_with("BEGIN; SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off")
        .await?)
}

/// Locks up to `limit` publishable rows: unpublished, due, and with no older unpublished row of
/// the same order. Rows locked by another claimer are skipped. The locks last until the caller's
/// transaction ends, which [`begin_claim`] begins.
///
/// # Errors
/// [`OutboxError::Database`] when the statement fails.
#[tracing::instrument(level = "debug", name = "outbox.claim", skip_all, fields(db.system.name = "postgresql"))]
pub async fn claim(conn: &mut PgConnection, limit: i64) -> Result<Claimed, OutboxError> {
    let rows: Vec<PendingEvent> = sqlx::query_as(
        "SELECT o.id, o.event_id, o.event_type, o.aggregate_id, o.envelope::text AS envelope,
                coalesce(o.envelope->>'correlation_id', '') AS correlation_id,
                coalesce(o.envelope->>'traceparent', '') AS traceparent,
                o.created_at, o.attempts,
                EXISTS (
                    SELECT 1 FROM outbox newer
                    WHERE newer.aggregate_id = o.aggregate_id
                      AND newer.published_at IS NULL
                      AND newer.id > o.id) AS next_waiting
         FROM outbox o
         WHERE o.published_at IS NULL
           AND o.next_attempt_at <= now()
           AND NOT EXISTS (
               SELECT 1 FROM outbox older
               WHERE older.aggregate_id = o.aggregate_id
                 AND older.published_at IS NULL
                 AND older.id < o.id)
         ORDER BY o.id
         LIMIT $1
         FOR UPDATE SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(if rows.is_empty() {
        Claimed::Empty
    } else {
        Claimed::Batch(rows)
    })
}

/// Marks rows as published, stamped with the wall-clock time of the call (after SQS accepted
/// them), so that `published_at - created_at` is the commit-to-SQS lag.
///
/// # Errors
/// [`OutboxError::Database`] when the statement fails.
#[tracing::instrument(level = "debug", name = "outbox.mark_published", skip_all, fields(db.system.name = "postgresql"))]
pub async fn mark_published(conn: &mut PgConnection, ids: &[i64]) -> Result<(), OutboxError> {
    sqlx::query(
        "UPDATE outbox SET published_at = clock_timestamp(), last_error = NULL WHERE id = ANY($1)",
    )
    .bind(ids)
    .execute(conn)
    .await?;
    Ok(())
}

/// Counts a failed attempt for each row and schedules its next attempt with `backoff`.
///
/// # Errors
/// [`OutboxError::Database`] when the statement fails.
#[tracing::instrument(level = "debug", name = "outbox.record_failure", skip_all, fields(db.system.name = "postgresql"))]
pub async fn record_failure(
    conn: &mut PgConnection,
    ids: &[i64],
    error: &str,
    backoff: Backoff,
) -> Result<(), OutboxError> {
    sqlx::query(
        "UPDATE outbox
         SET attempts = attempts + 1,
             last_error = left($2, 1000),
             next_attempt_at = now() + make_interval(secs =>
                 least($4, $3 * power(2, least(attempts, 30))) * (0.75 + random() * 0.5))
         WHERE id = ANY($1)",
    )
    .bind(ids)
    .bind(error)
    .bind(backoff.base.as_secs_f64())
    .bind(backoff.max.as_secs_f64())
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes up to `limit` rows published more than `retention` ago; returns how many went.
///
/// # Errors
/// [`OutboxError::Database`] when the statement fails.
pub async fn purge_published(
    conn: &mut PgConnection,
    retention: Duration,
    limit: i64,
) -> Result<u64, OutboxError> {
    let done = sqlx::query(
        "DELETE FROM outbox WHERE id IN (
             SELECT id FROM outbox
             WHERE published_at < now() - make_interval(secs => $1)
             LIMIT $2)",
    )
    .bind(retention.as_secs_f64())
    .bind(limit)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// The unpublished part of the outbox.
#[derive(Debug, Clone, Copy, PartialEq, sqlx::FromRow)]
pub struct Backlog {
    /// Rows not yet published.
    pub pending: i64,
    /// Rows not yet published that failed at least once.
    pub failing: i64,
    /// Age of the oldest unpublished row in seconds (0 when there is none).
    pub oldest_age_s: f64,
    /// The most failed attempts of any unpublished row (0 when none failed).
    pub max_attempts: i32,
}

/// Measures the backlog.
///
/// # Errors
/// [`OutboxError::Database`] when the statement fails.
pub async fn backlog(conn: &mut PgConnection) -> Result<Backlog, OutboxError> {
    let backlog = sqlx::query_as(
        "SELECT count(*) AS pending,
                count(*) FILTER (WHERE attempts > 0) AS failing,
                coalesce(extract(epoch FROM now() - min(created_at))::float8, 0) AS oldest_age_s,
                coalesce(max(attempts), 0) AS max_attempts
         FROM outbox WHERE published_at IS NULL",
    )
    .fetch_one(conn)
    .await?;
    Ok(backlog)
}

/// An unpublished row whose publishing failed at least once.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct FailedRow {
    /// The row id.
    pub id: i64,
    /// The event's id.
    pub event_id: Uuid,
    /// The event type's wire name.
    pub event_type: String,
    /// The order the event belongs to.
    pub aggregate_id: Uuid,
    /// Failed attempts so far.
    pub attempts: i32,
    /// When the row was written.
    pub created_at: DateTime<Utc>,
    /// When the next attempt may start.
    pub next_attempt_at: DateTime<Utc>,
    /// What the last attempt failed with.
    pub last_error: Option<String>,
}

/// Unpublished rows with failed attempts, oldest first, at most `limit`; only the row `id` when
/// given.
///
/// # Errors
/// [`OutboxError::Database`] when the statement fails.
pub async fn failed(
    conn: &mut PgConnection,
    id: Option<i64>,
    limit: i64,
) -> Result<Vec<FailedRow>, OutboxError> {
    let rows = sqlx::query_as(
        "SELECT id, event_id, event_type, aggregate_id, attempts, created_at,
                greatest(next_attempt_at, created_at) AS next_attempt_at, last_error
         FROM outbox
         WHERE published_at IS NULL AND attempts > 0 AND ($1::bigint IS NULL OR id = $1)
         ORDER BY id
         LIMIT $2",
    )
    .bind(id)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows)
}

/// Makes unpublished rows with failed attempts due now (all of them, or only the row `id`) and
/// wakes the relays; returns the ids of the rows it changed, in id order.
///
/// `attempts` and `last_error` stay as they are: they are the row's history, and a row that
/// fails again backs off from where it was. Per-order order is unaffected: the claim still takes
/// an order's rows one at a time, oldest first.
///
/// # Errors
/// [`OutboxError::Database`] when a statement fails.
pub async fn retry_failed(
    conn: &mut PgConnection,
    id: Option<i64>,
) -> Result<Vec<i64>, OutboxError> {
    let mut ids: Vec<i64> = sqlx::query_scalar(
        "UPDATE outbox SET next_attempt_at = now()
         WHERE published_at IS NULL AND attempts > 0 AND ($1::bigint IS NULL OR id = $1)
         RETURNING id",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    ids.sort_unstable();
    if !ids.is_empty() {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(NOTIFY_CHANNEL)
            .execute(conn)
            .await?;
    }
    Ok(ids)
}
