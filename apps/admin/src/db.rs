//! `db status` and `db migrate`: the schema's versioned migrations (`migrations/` at the
//! repository root, embedded in this binary by `sqlx::migrate!`).
//!
//! A new database is built from `init.sql`, which is the whole current schema and records every
//! migration as applied. A database built by an older `init.sql` (before migrations existed it
//! has no `_sqlx_migrations` table) or by an older release is upgraded in place by applying the
//! pending migrations, each in its own transaction; sqlx's migrator holds an advisory lock
//! meanwhile, so two deploys running it at once apply each migration once.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, migrate::Migrator};

use crate::{AdminError, render};

/// The migrations of this release.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// One migration and whether the database has it.
#[derive(Debug, Serialize)]
pub struct MigrationState {
    /// Its version (the file name's number).
    pub version: i64,
    /// What it does (the file name's words).
    pub description: String,
    /// When it was applied; `None` while pending.
    pub applied_at: Option<DateTime<Utc>>,
}

/// The database's schema version.
#[derive(Debug, Serialize)]
pub struct DbStatus {
    /// Every migration this release knows, oldest first.
    pub migrations: Vec<MigrationState>,
    /// How many are still to apply.
    pub pending: usize,
    /// Whether `migrate` applied them (false for `status` and dry runs).
    pub applied_now: bool,
}

/// Which migrations the database has.
///
/// # Errors
/// [`AdminError::Database`] when the query fails.
pub async fn status(pool: &PgPool) -> Result<DbStatus, AdminError> {
    let applied = applied(pool).await?;
    let migrations: Vec<MigrationState> = MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .map(|m| MigrationState {
            version: m.version,
            description: m.description.to_string(),
            applied_at: applied
                .iter()
                .find(|(version, _)| *version == m.version)
                .map(|(_, at)| *at),
        })
        .collect();
    let pending = migrations.iter().filter(|m| m.applied_at.is_none()).count();
    Ok(DbStatus {
        migrations,
        pending,
        applied_now: false,
    })
}

/// Applies the pending migrations (only reports them when `dry_run`).
///
/// # Errors
/// [`AdminError::Migrate`] when a migration fails (it is rolled back) or the database has a
/// migration this release does not know or whose file changed.
pub async fn migrate(pool: &PgPool, dry_run: bool) -> Result<DbStatus, AdminError> {
    if !dry_run {
        MIGRATOR.run(pool).await?;
    }
    let mut report = status(pool).await?;
    report.applied_now = !dry_run;
    Ok(report)
}

async fn applied(pool: &PgPool) -> Result<Vec<(i64, DateTime<Utc>)>, AdminError> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if !exists {
        return Ok(Vec::new());
    }
    Ok(
        sqlx::query_as("SELECT version, installed_on FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await?,
    )
}

/// The status as text: one line per migration, then a summary.
pub fn render(status: &DbStatus) -> String {
    let rows: Vec<Vec<String>> = status
        .migrations
        .iter()
        .map(|m| {
            vec![
                m.version.to_string(),
                m.description.clone(),
                m.applied_at
                    .map_or_else(|| "pending".to_owned(), render::time),
            ]
        })
        .collect();
    let mut text = render::table(&["VERSION", "DESCRIPTION", "APPLIED"], &rows);
    let summary = match (status.pending, status.applied_now) {
        (0, true) => "the database is up to date (pending migrations applied)".to_owned(),
        (0, false) => "the database is up to date".to_owned(),
        (n, _) => format!(
            "{} pending: run `chargeflow-admin db migrate --yes` to apply",
            render::count(n, "migration", "migrations")
        ),
    };
    text.push('\n');
    text.push_str(&summary);
    text.push('\n');
    text
}
