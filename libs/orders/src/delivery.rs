//! The partner's word that a parcel arrived: `shipped → delivered` once, with
//! `shipment.delivered` emitted for the e-mail. A repeated notice finds the order delivered and
//! changes nothing.

use chrono::{DateTime, Utc};
use domain::{EventEnvelope, EventType, OrderStatus, ShipmentDelivered};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    OrdersError,
    lifecycle::{self, Transition},
};

/// What recording a delivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The order moved to `delivered`.
    Delivered(Uuid),
    /// It was delivered before: nothing changed.
    AlreadyDelivered(Uuid),
    /// The order is not `shipped` (yet): nothing changed. A notice that overtook the shipping
    /// worker's commit is accepted again when the partner retries it.
    NotShipped(Uuid, OrderStatus),
}

/// Records the delivery of the partner's shipment `partner_shipment_id` in the caller's
/// transaction; `None` when no order has that shipment.
///
/// # Errors
/// [`OrdersError`] when a statement fails.
#[tracing::instrument(level = "debug", name = "orders.record_delivery", skip_all, fields(db.system.name = "postgresql"))]
pub async fn record_delivery(
    conn: &mut PgConnection,
    partner_shipment_id: &str,
    delivered_at: DateTime<Utc>,
    correlation_id: &str,
) -> Result<Option<Delivery>, OrdersError> {
    let shipment: Option<(Uuid, String, String)> = sqlx::query_as(
        "SELECT order_id, carrier, tracking_number FROM shipments WHERE partner_shipment_id = $1",
    )
    .bind(partner_shipment_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((order_id, carrier, tracking_number)) = shipment else {
        return Ok(None);
    };
    let Some(status) = lifecycle::lock_status(conn, order_id).await? else {
        return Ok(None);
    };
    match status {
        OrderStatus::Delivered => return Ok(Some(Delivery::AlreadyDelivered(order_id))),
        OrderStatus::Shipped => {}
        other => return Ok(Some(Delivery::NotShipped(order_id, other))),
    }
    let payload = ShipmentDelivered {
        carrier,
        tracking_number,
        delivered_at,
    };
    let envelope = EventEnvelope::new(
        EventType::ShipmentDelivered,
        order_id,
        correlation_id,
        "",
        &payload,
    )?;
    let detail = serde_json::json!({
        "delivered_at": delivered_at,
        "carrier": payload.carrier,
        "tracking_number": payload.tracking_number,
    });
    let moved = lifecycle::advance(conn, status, OrderStatus::Delivered, &envelope, detail).await?;
    if let Transition::Rejected(_) = moved {
        return Ok(Some(Delivery::NotShipped(order_id, status)));
    }
    sqlx::query("UPDATE shipments SET delivered_at = $2 WHERE order_id = $1")
        .bind(order_id)
        .bind(delivered_at)
        .execute(&mut *conn)
        .await?;
    Ok(Some(Delivery::Delivered(order_id)))
}
