//! The inbox: which messages a consumer has already processed.
//!
//! A handler calls [`record`] first thing in its transaction. When the row already exists the
//! message is a redelivery: the handler acknowledges it without doing anything again. Because the
//! row commits with the handler's own changes, a crash before the commit leaves neither.
//!
//! A handler that acts before that transaction (the e-mail worker talks to its SMTP server with
//! no transaction open) asks [`contains`] first, so that a redelivery acts on nothing.

use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::OutboxError;

/// Whether a message is seen for the first time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbox {
    /// First delivery: the row was written; go on and handle it.
    New,
    /// Already processed by this consumer: acknowledge and do nothing.
    Duplicate,
}

/// Records that `consumer` processes `event_id`, inside the caller's transaction.
///
/// # Errors
/// [`OutboxError::Database`] when the statement fails.
#[tracing::instrument(level = "debug", name = "inbox.record", skip_all, fields(db.system.name = "postgresql"))]
pub async fn record(
    conn: &mut PgConnection,
    consumer: &str,
    event_id: Uuid,
) -> Result<Inbox, OutboxError> {
    let done = sqlx::query(
        "INSERT INTO inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(consumer)
    .bind(event_id)
    .execute(conn)
    .await?;
    Ok(if done.rows_affected() == 1 {
        Inbox::New
    } else {
        Inbox::Duplicate
    })
}

/// Whether `consumer` has already processed `event_id`: its row is committed. A plain read,
/// outside any transaction; [`record`] still decides, in the handler's transaction.
///
/// # Errors
/// [`OutboxError::Database`] when the statement fails.
pub async fn contains<'e>(
    executor: impl PgExecutor<'e>,
    consumer: &str,
    event_id: Uuid,
) -> Result<bool, OutboxError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM inbox WHERE consumer = $1 AND event_id = $2)",
    )
    .bind(consumer)
    .bind(event_id)
    .fetch_one(executor)
    .await?)
}
