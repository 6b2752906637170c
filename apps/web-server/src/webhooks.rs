//! What the two signed webhook endpoints (Stripe's and the shipping partner's) share: each
//! sender's event id is recorded in the transaction of its effect, so a repeated event finds its
//! row and changes nothing.

use sqlx::PgConnection;

/// Who sent an event: each sender's ids live in a table of their own.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Sender {
    /// Stripe (`stripe_events`).
    Stripe,
    /// The shipping partner (`partner_events`).
    Partner,
}

/// Records `event_id` in the caller's transaction; false when it was recorded before (a
/// repeated event: do nothing).
pub(crate) async fn first_time(
    tx: &mut PgConnection,
    sender: Sender,
    event_id: &str,
    event_type: &str,
) -> sqlx::Result<bool> {
    let sql = match sender {
        Sender::Stripe => {
            "INSERT INTO stripe_events (event_id, event_type) VALUES ($1, $2) ON CONFLICT DO NOTHING"
        }
        Sender::Partner => {
            "INSERT INTO partner_events (event_id, event_type) VALUES ($1, $2) ON CONFLICT DO NOTHING"
        }
    };
    let inserted = sqlx::query(sql)
        .bind(event_id)
        .bind(event_type)
        .execute(tx)
        .await?;
    Ok(inserted.rows_affected() == 1)
}
