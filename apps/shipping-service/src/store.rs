//! The shipping-service's SQL: the address to ship to and the shipment row.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::partner::{Recipient, Shipment};

/// The order's shipping address, or `None` when there is no such order.
pub async fn recipient(conn: &mut PgConnection, order_id: Uuid) -> sqlx::Result<Option<Recipient>> {
    let row: Option<(String, String, String, String, String)> = sqlx::query_as(
        "SELECT ship_name, ship_line1, ship_postal_code, ship_city, ship_country::text
         FROM orders WHERE id = $1",
    )
    .bind(order_id)
    .fetch_optional(conn)
    .await?;
    Ok(
        row.map(|(name, line1, postal_code, city, country)| Recipient {
            name,
            line1,
            postal_code,
            city,
            country,
        }),
    )
}

/// Stores the partner's shipment for the order.
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
