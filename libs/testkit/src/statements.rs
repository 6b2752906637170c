//! What PostgreSQL's `pg_stat_statements` counted for a test's database: how often a statement
//! ran, how often it was planned, and how many blocks it read — for tests that a statement is
//! planned once per session, or stays a key lookup as its tables grow.

use sqlx::PgPool;

use crate::TestResult;

/// The counts of one statement (or of every statement whose text matches), summed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatementCounts {
    /// Executions.
    pub calls: i64,
    /// Plannings (counted only by sessions with `pg_stat_statements.track_planning` on: see
    /// [`tracking_planning`]).
    pub plans: i64,
    /// Shared blocks read, from the cache or not.
    pub blocks: i64,
}

/// Creates `pg_stat_statements` in the pool's database (the server preloads it, see
/// scripts/services.sh) and forgets what it counted there so far.
///
/// # Errors
/// When the extension cannot be created.
pub async fn start_counting(pool: &PgPool) -> TestResult<()> {
    sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .execute(pool)
        .await?;
    sqlx::query(
        "SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database
                                             WHERE datname = current_database()), 0)",
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// `url` with `pg_stat_statements.track_planning` on for its sessions, so that their plannings
/// are counted.
pub fn tracking_planning(url: &str) -> String {
    format!("{url}?options=-c%20pg_stat_statements.track_planning%3Don")
}

/// The counts of the statements of the pool's database whose normalised text is `LIKE`
/// `pattern`, since [`start_counting`].
///
/// # Errors
/// When `pg_stat_statements` cannot be read.
pub async fn counts(pool: &PgPool, pattern: &str) -> TestResult<StatementCounts> {
    let (calls, plans, blocks): (i64, i64, i64) = sqlx::query_as(
        "SELECT coalesce(sum(calls), 0)::int8, coalesce(sum(plans), 0)::int8,
                coalesce(sum(shared_blks_hit + shared_blks_read), 0)::int8
         FROM pg_stat_statements
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND query LIKE $1",
    )
    .bind(pattern)
    .fetch_one(pool)
    .await?;
    Ok(StatementCounts {
        calls,
        plans,
        blocks,
    })
}
