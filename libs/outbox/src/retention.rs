//! Bounded tables: rows that only guard against repeats are deleted once no repeat can come.
//!
//! | table | guards against | kept (default) |
//! | --- | --- | --- |
//! | `inbox` | an SQS redelivery of a processed message | 15 days: longer than a message can live in a queue (14 days at most) |
//! | `idempotency_keys` | a checkout retried after a lost answer | 24 hours, as Stripe keeps its keys |
//! | `stripe_events` | a webhook Stripe sends again | 3 days, Stripe's retry horizon |
//! | `partner_events` | a delivery notice the partner sends again | 3 days, as Stripe's |
//! | `sign_in_requests` | (holds an e-mail address) a sign-in link used after it expired | 1 day after its expiry |
//! | `session_grants` | a session signed in by an e-mailed link | 30 days, a session's idle life: then the shopper signs in again |
//!
//! (Published `outbox` rows have their own purge, [`crate::purge_published`].) A purge deletes
//! in batches of a bounded size, each one its own statement; rows are taken with
//! `FOR UPDATE SKIP LOCKED`, so it never waits on a row a checkout or a handler holds and never
//! takes more than row locks: the table stays readable and writable throughout.

use std::{fmt, time::Duration};

use serde::Serialize;
use sqlx::PgConnection;

use crate::OutboxError;

/// `DELETE` of up to `$2` rows of `$table` whose `$age` column is more than `$1` seconds old,
/// taken with `FOR UPDATE SKIP LOCKED` (a statement of constant text per table).
macro_rules! purge_sql {
    ($table:literal, $age:literal) => {
        concat!(
            "DELETE FROM ",
            $table,
            " WHERE ctid = ANY(ARRAY(SELECT ctid FROM ",
            $table,
            " WHERE ",
            $age,
            " < now() - make_interval(secs => $1) LIMIT $2 FOR UPDATE SKIP LOCKED))"
        )
    };
}

/// Rows, rows older than `$1` seconds, and the oldest row's age of `$table` by its `$age` column.
macro_rules! status_sql {
    ($table:literal, $age:literal) => {
        concat!(
            "SELECT count(*), count(*) FILTER (WHERE ",
            $age,
            " < now() - make_interval(secs => $1)), ",
            "COALESCE(EXTRACT(EPOCH FROM now() - min(",
            $age,
            "))::float8, 0) FROM ",
            $table
        )
    };
}

/// A table purged by age.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    /// Processed messages, by `processed_at`.
    Inbox,
    /// Saved checkout answers, by `created_at`.
    IdempotencyKeys,
    /// Handled Stripe webhook events, by `received_at`.
    StripeEvents,
    /// Handled partner notices, by `received_at`.
    PartnerEvents,
    /// "Find my orders" requests, by `expires_at`.
    SignInRequests,
    /// Sessions signed in for a customer, by `granted_at`.
    SessionGrants,
}

impl Table {
    /// Every purged table.
    pub const ALL: [Table; 6] = [
        Table::Inbox,
        Table::IdempotencyKeys,
        Table::StripeEvents,
        Table::PartnerEvents,
        Table::SignInRequests,
        Table::SessionGrants,
    ];

    /// How long the table's rows are kept, as configured (`APP__RELAY__…_RETENTION_S`).
    pub fn retention(self, relay: &settings::RelaySettings) -> Duration {
        Duration::from_secs(match self {
            Table::Inbox => relay.inbox_retention_s,
            Table::IdempotencyKeys => relay.idempotency_key_retention_s,
            Table::StripeEvents | Table::PartnerEvents => relay.webhook_event_retention_s,
            Table::SignInRequests => relay.sign_in_request_retention_s,
            Table::SessionGrants => relay.session_grant_retention_s,
        })
    }

    /// The table's name.
    pub fn name(self) -> &'static str {
        match self {
            Table::Inbox => "inbox",
            Table::IdempotencyKeys => "idempotency_keys",
            Table::StripeEvents => "stripe_events",
            Table::PartnerEvents => "partner_events",
            Table::SignInRequests => "sign_in_requests",
            Table::SessionGrants => "session_grants",
        }
    }

    /// Deletes up to `$2` rows older than `$1` seconds (each table's age column is indexed).
    fn purge_sql(self) -> &'static str {
        match self {
            Table::Inbox => purge_sql!("inbox", "processed_at"),
            Table::IdempotencyKeys => purge_sql!("idempotency_keys", "created_at"),
            Table::StripeEvents => purge_sql!("stripe_events", "received_at"),
            Table::PartnerEvents => purge_sql!("partner_events", "received_at"),
            Table::SignInRequests => purge_sql!("sign_in_requests", "expires_at"),
            Table::SessionGrants => purge_sql!("session_grants", "granted_at"),
        }
    }

    /// The row count, the rows older than `$1` seconds and the oldest row's age in seconds.
    fn status_sql(self) -> &'static str {
        match self {
            Table::Inbox => status_sql!("inbox", "processed_at"),
            Table::IdempotencyKeys => status_sql!("idempotency_keys", "created_at"),
            Table::StripeEvents => status_sql!("stripe_events", "received_at"),
            Table::PartnerEvents => status_sql!("partner_events", "received_at"),
            Table::SignInRequests => status_sql!("sign_in_requests", "expires_at"),
            Table::SessionGrants => status_sql!("session_grants", "granted_at"),
        }
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Deletes up to `limit` rows of `table` older than `retention`, in one statement; returns how
/// many went (fewer than `limit`: nothing more is due right now).
///
/// # Errors
/// [`OutboxError::Database`] when the statement fails.
pub async fn purge(
    conn: &mut PgConnection,
    table: Table,
    retention: Duration,
    limit: i64,
) -> Result<u64, OutboxError> {
    let done = sqlx::query(table.purge_sql())
        .bind(retention.as_secs_f64())
        .bind(limit)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// What a table holds, against its retention.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableStatus {
    /// The table.
    pub table: Table,
    /// How long its rows are kept, in seconds.
    pub retention_s: u64,
    /// Rows in it.
    pub rows: i64,
    /// Rows past the retention, which the next purge deletes.
    pub due: i64,
    /// Age of its oldest row in seconds (0 when empty).
    pub oldest_age_s: f64,
}

/// Counts `table`'s rows and those past `retention` (a full count: for operators, not for a
/// loop).
///
/// # Errors
/// [`OutboxError::Database`] when the statement fails.
pub async fn status(
    conn: &mut PgConnection,
    table: Table,
    retention: Duration,
) -> Result<TableStatus, OutboxError> {
    let (rows, due, oldest_age_s): (i64, i64, f64) = sqlx::query_as(table.status_sql())
        .bind(retention.as_secs_f64())
        .fetch_one(conn)
        .await?;
    Ok(TableStatus {
        table,
        retention_s: retention.as_secs(),
        rows,
        due,
        oldest_age_s,
    })
}
