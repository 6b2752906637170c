//! The sign-in SQL: the request row, consuming it once, and the session's grants.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// Stores a sign-in request for `email`, usable until `expires_at`.
pub async fn insert_request(
    conn: &mut PgConnection,
    request_id: Uuid,
    email: &str,
    expires_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO sign_in_requests (id, email, expires_at) VALUES ($1, $2, $3)")
        .bind(request_id)
        .bind(email)
        .bind(expires_at)
        .execute(conn)
        .await?;
    Ok(())
}

/// Marks the request used if it is unused and unexpired, and returns its address; `None` when
/// it is unknown, used or expired. Two concurrent calls for one request: one gets the address.
pub async fn consume(conn: &mut PgConnection, request_id: Uuid) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "UPDATE sign_in_requests SET used_at = now()
         WHERE id = $1 AND used_at IS NULL AND expires_at > now()
         RETURNING email",
    )
    .bind(request_id)
    .fetch_optional(conn)
    .await
}

/// Lets session `owner` see the orders of every customer with address `email` (in any letter
/// case); returns how many customers that is.
pub async fn grant(conn: &mut PgConnection, owner: &str, email: &str) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "INSERT INTO session_grants (owner_session, customer_id)
         SELECT $1, id FROM customers WHERE lower(email) = lower($2)
         ON CONFLICT DO NOTHING",
    )
    .bind(owner)
    .bind(email)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
