//! The shipping-service's SQL: the order as read before the partner call (no lock), its
//! cancellation as read again under the lock, the shipment row, and the mark of a shipment that
//! was booked for a cancelled order and still has to be cancelled at the partner.

use domain::OrderStatus;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::partner::{Recipient, Shipment};

/// The inbox "consumer" whose row for an event says: the shipment booked for this event belongs
/// to an order whose cancellation was accepted, and cancelling it at the partner has not
/// succeeded yet. Written on its own (not in the message's transaction, which a failed
/// cancellation rolls back) before the cancel call; deleted in the transaction that records the
/// cancellation done. The inbox's key — who, which event — is exactly what this needs, so no
/// table of its own.
pub const CANCEL_PENDING: &str = "shipping-cancel";

/// The order as the handler reads it before calling the partner.
#[derive(Debug, Clone)]
pub struct OrderToShip {
    /// Its status.
    pub status: OrderStatus,
    /// Whether a cancellation was accepted (the order is then being refunded).
    pub cancel_requested: bool,
    /// Where it goes.
    pub recipient: Recipient,
    /// Whether an earlier delivery of this event booked a shipment that must be cancelled
    /// ([`CANCEL_PENDING`]).
    pub cancel_pending: bool,
}

type OrderRow = (String, bool, String, String, String, String, String, bool);

/// The order (read without a lock) and whether `event_id`'s shipment awaits its cancellation;
/// `None` when there is no such order.
///
/// # Errors
/// When the statement fails or the stored status is unknown.
#[tracing::instrument(level = "debug", name = "shipping.order_to_ship", skip_all, fields(db.system.name = "postgresql"))]
pub async fn order_to_ship(
    conn: &mut PgConnection,
    order_id: Uuid,
    event_id: Uuid,
) -> Result<Option<OrderToShip>, orders::OrdersError> {
    let row: Option<OrderRow> = sqlx::query_as(
        "SELECT status, cancel_reason IS NOT NULL, ship_name, ship_line1, ship_postal_code,
                ship_city, ship_country::text,
                EXISTS (SELECT 1 FROM inbox WHERE consumer = $3 AND event_id = $2)
         FROM orders WHERE id = $1",
    )
    .bind(order_id)
    .bind(event_id)
    .bind(CANCEL_PENDING)
    .fetch_optional(conn)
    .await?;
    let Some((status, cancel_requested, name, line1, postal_code, city, country, pending)) = row
    else {
        return Ok(None);
    };
    Ok(Some(OrderToShip {
        status: status.parse()?,
        cancel_requested,
        recipient: Recipient {
            name,
            line1,
            postal_code,
            city,
            country,
        },
        cancel_pending: pending,
    }))
}

/// Stores the partner's shipment for the order.
#[tracing::instrument(level = "debug", name = "shipping.insert", skip_all, fields(db.system.name = "postgresql"))]
pub async fn insert(
    conn: &mut PgConnection,
    order_id: Uuid,
    shipment: &Shipment,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO shipments (order_id, partner_shipment_id, carrier, tracking_number, tracking_url)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(order_id)
    .bind(&shipment.id)
    .bind(&shipment.carrier)
    .bind(&shipment.tracking_number)
    .bind(&shipment.tracking_url)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks `event_id`'s shipment as to be cancelled ([`CANCEL_PENDING`]), committed at once.
#[tracing::instrument(level = "debug", name = "shipping.mark_cancel_pending", skip_all, fields(db.system.name = "postgresql"))]
pub async fn mark_cancel_pending(pool: &PgPool, event_id: Uuid) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(CANCEL_PENDING)
        .bind(event_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Removes the mark: the shipment was cancelled (or never existed).
#[tracing::instrument(level = "debug", name = "shipping.clear_cancel_pending", skip_all, fields(db.system.name = "postgresql"))]
pub async fn clear_cancel_pending(conn: &mut PgConnection, event_id: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM inbox WHERE consumer = $1 AND event_id = $2")
        .bind(CANCEL_PENDING)
        .bind(event_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Starts the savepoint that [`release_recheck`] returns to.
pub async fn savepoint_recheck(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query("SAVEPOINT shipping_recheck")
        .execute(conn)
        .await?;
    Ok(())
}

/// Undoes what was done since [`savepoint_recheck`]: the row lock taken since is released.
pub async fn release_recheck(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query("ROLLBACK TO SAVEPOINT shipping_recheck")
        .execute(conn)
        .await?;
    Ok(())
}
