//! The read model of orders: what the order page, a session's list and the operator's
//! `order show` read. The queries take a pool, or a connection when several must read one
//! snapshot (the order page: one read-only transaction), and return plain rows. Which request may see which
//! order is decided by the caller (the web-server's access rule) and passed in as a [`Viewer`]:
//! the queries of a shopper's request apply it in SQL, so an order the viewer may not see is
//! simply not found.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

/// The PostgreSQL notification channel on which every change to what the order page shows is
/// announced, with the order's id as the payload: triggers on `orders`, `order_timeline`,
/// `invoices`, `payments` and `shipments` notify it, at commit (`init.sql`, migration
/// `20261204000005_order_change_notify`). The web-server's live order streams listen to it.
pub const CHANGES_CHANNEL: &str = "order_changed";

/// An order in the session's list.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct OrderSummary {
    /// The order's id.
    pub order_id: Uuid,
    /// The reference shoppers see (`domain::order_reference`).
    #[sqlx(skip)]
    pub reference: String,
    /// Where it is in its life.
    pub status: String,
    /// Currency of every amount.
    pub currency: String,
    /// Sum of the line totals.
    pub subtotal_minor: i64,
    /// The shipping fee quoted at checkout (for an order placed before quotes were stored: its
    /// invoice's, null until it has one).
    pub shipping_minor: Option<i64>,
    /// The tax rate quoted, in basis points (as `shipping_minor`).
    pub tax_rate_bp: Option<i32>,
    /// The tax quoted (as `shipping_minor`).
    pub tax_minor: Option<i64>,
    /// What the order costs in all, the amount charged (as `shipping_minor`).
    pub total_minor: Option<i64>,
    /// When it was placed.
    pub created_at: DateTime<Utc>,
    /// Why it was cancelled, once a cancellation was accepted (`shopper`, `operator`,
    /// `expired`, `payment_unusable`).
    pub cancel_reason: Option<String>,
}

impl OrderSummary {
    /// The row with its reference filled in.
    fn referenced(mut self) -> Self {
        self.reference = domain::order_reference(self.order_id);
        self
    }

    /// Whether a cancellation would be accepted now: not shipped or ended, none accepted yet.
    pub fn cancellable(&self) -> bool {
        self.cancel_reason.is_none()
            && self
                .status
                .parse::<domain::OrderStatus>()
                .is_ok_and(domain::OrderStatus::is_cancellable)
    }
}

/// One line of an order.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct OrderLine {
    /// The product's id.
    pub product_id: i64,
    /// Stock-keeping unit at purchase.
    pub sku: String,
    /// Name at purchase.
    pub name: String,
    /// Price at purchase.
    pub unit_price_minor: i64,
    /// Units.
    pub quantity: i32,
    /// Price × units.
    pub line_total_minor: i64,
}

/// One entry of an order's timeline.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct TimelineEntry {
    /// The event's id.
    pub event_id: Uuid,
    /// What happened (`order.placed`, …).
    pub event_type: String,
    /// When.
    pub occurred_at: DateTime<Utc>,
    /// Extra facts of the event.
    pub detail: serde_json::Value,
}

/// `SELECT <the columns of an OrderSummary> FROM orders <rest>`. An order placed before quotes
/// were stored shows its invoice's amounts.
macro_rules! summary {
    ($rest:literal) => {
        concat!(
            "SELECT o.id AS order_id, o.status, o.currency::text AS currency, o.subtotal_minor,
                    o.created_at, o.cancel_reason,
                    COALESCE(o.tax_rate_bp, i.tax_rate_bp) AS tax_rate_bp,
                    COALESCE(o.shipping_minor, i.shipping_minor) AS shipping_minor,
                    COALESCE(o.tax_minor, i.tax_minor) AS tax_minor,
                    COALESCE(o.total_minor, i.total_minor) AS total_minor
             FROM orders o LEFT JOIN invoices i ON i.order_id = o.id ",
            $rest
        )
    };
}

/// The access facts of a shopper's request, gathered by the web-server's access rule.
#[derive(Debug, Clone, Copy)]
pub struct Viewer<'a> {
    /// SHA-256 (hex) of the request's session id, as orders store their `owner_session`.
    pub owner: &'a str,
    /// Whether the request carries a valid signed link (`domain::links`) to the very order
    /// asked for.
    pub has_order_link: bool,
}

/// The orders `owner`'s session may list, newest first (at most 100): the ones it placed, and
/// those of the customers a sign-in link granted it (`session_grants`).
///
/// # Errors
/// When the query fails.
pub async fn list(pool: &PgPool, owner: &str) -> sqlx::Result<Vec<OrderSummary>> {
    sqlx::query_as(concat!(
        summary!("WHERE o.owner_session = $1"),
        " UNION ",
        summary!(
            "WHERE o.customer_id IN (SELECT g.customer_id FROM session_grants g
                                     WHERE g.owner_session = $1)"
        ),
        " ORDER BY created_at DESC LIMIT 100"
    ))
    .bind(owner)
    .fetch_all(pool)
    .await
    .map(|rows: Vec<OrderSummary>| rows.into_iter().map(OrderSummary::referenced).collect())
}

/// The order, if it exists and `viewer` may see it: its session placed it, a sign-in link
/// granted its session the order's customer, or it carries a valid link to this order.
///
/// # Errors
/// When the query fails.
pub async fn find_for(
    db: impl PgExecutor<'_>,
    order_id: Uuid,
    viewer: &Viewer<'_>,
) -> sqlx::Result<Option<OrderSummary>> {
    sqlx::query_as(summary!(
        "WHERE o.id = $1
           AND ($3 OR o.owner_session = $2
                OR EXISTS (SELECT 1 FROM session_grants g
                           WHERE g.owner_session = $2 AND g.customer_id = o.customer_id))"
    ))
    .bind(order_id)
    .bind(viewer.owner)
    .bind(viewer.has_order_link)
    .fetch_optional(db)
    .await
    .map(|row: Option<OrderSummary>| row.map(OrderSummary::referenced))
}

/// The order, whoever placed it: for operator tools, never for a shopper's request.
///
/// # Errors
/// When the query fails.
pub async fn find_by_id(pool: &PgPool, order_id: Uuid) -> sqlx::Result<Option<OrderSummary>> {
    sqlx::query_as(summary!("WHERE o.id = $1"))
        .bind(order_id)
        .fetch_optional(pool)
        .await
        .map(|row: Option<OrderSummary>| row.map(OrderSummary::referenced))
}

/// The order's lines.
///
/// # Errors
/// When the query fails.
pub async fn lines(db: impl PgExecutor<'_>, order_id: Uuid) -> sqlx::Result<Vec<OrderLine>> {
    sqlx::query_as(
        "SELECT product_id, sku, name, unit_price_minor, quantity, line_total_minor
         FROM order_items WHERE order_id = $1 ORDER BY line_no",
    )
    .bind(order_id)
    .fetch_all(db)
    .await
}

/// The order's timeline, oldest first.
///
/// # Errors
/// When the query fails.
pub async fn timeline(db: impl PgExecutor<'_>, order_id: Uuid) -> sqlx::Result<Vec<TimelineEntry>> {
    sqlx::query_as(
        "SELECT event_id, event_type, occurred_at, detail FROM order_timeline
         WHERE order_id = $1 ORDER BY occurred_at, event_id",
    )
    .bind(order_id)
    .fetch_all(db)
    .await
}

/// An order's invoice as shown with the order.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct InvoiceSummary {
    /// `INV-2026-000001`.
    pub number: String,
    /// Tax in minor units.
    pub tax_minor: i64,
    /// Shipping fee in minor units.
    pub shipping_minor: i64,
    /// What the customer pays, in minor units.
    pub total_minor: i64,
}

/// The order's invoice, if it has one (issued: its PDF is stored).
///
/// # Errors
/// When the query fails.
pub async fn invoice(
    db: impl PgExecutor<'_>,
    order_id: Uuid,
) -> sqlx::Result<Option<InvoiceSummary>> {
    sqlx::query_as(
        "SELECT number, tax_minor, shipping_minor, total_minor FROM invoices
         WHERE order_id = $1 AND pdf IS NOT NULL",
    )
    .bind(order_id)
    .fetch_optional(db)
    .await
}

/// The invoice number and PDF of the order, if it has an issued invoice (a row still waiting
/// for its PDF is not one).
///
/// # Errors
/// When the query fails.
pub async fn invoice_pdf(pool: &PgPool, order_id: Uuid) -> sqlx::Result<Option<(String, Vec<u8>)>> {
    sqlx::query_as("SELECT number, pdf FROM invoices WHERE order_id = $1 AND pdf IS NOT NULL")
        .bind(order_id)
        .fetch_optional(pool)
        .await
}

/// An order's shipment as shown with the order.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct ShipmentSummary {
    /// The carrier.
    pub carrier: String,
    /// The partner's tracking number.
    pub tracking_number: String,
    /// Where to follow the parcel.
    pub tracking_url: Option<String>,
    /// When the partner delivered it.
    pub delivered_at: Option<DateTime<Utc>>,
}

/// The order's shipment, if it has one.
///
/// # Errors
/// When the query fails.
pub async fn shipment(
    db: impl PgExecutor<'_>,
    order_id: Uuid,
) -> sqlx::Result<Option<ShipmentSummary>> {
    sqlx::query_as(
        "SELECT carrier, tracking_number, tracking_url, delivered_at FROM shipments
         WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_optional(db)
    .await
}

/// An order's payment as shown with the order.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct PaymentSummary {
    /// `pending`, `requires_action` (waiting for the shopper's 3-D Secure), `succeeded`,
    /// `failed`, `refunded` or `cancelled`.
    pub status: String,
    /// The amount charged or attempted, in minor units.
    pub amount_minor: i64,
    /// Why it failed, if it did.
    pub failure_reason: Option<String>,
}

/// The order's payment, if billing has started it.
///
/// # Errors
/// When the query fails.
pub async fn payment(
    db: impl PgExecutor<'_>,
    order_id: Uuid,
) -> sqlx::Result<Option<PaymentSummary>> {
    sqlx::query_as("SELECT status, amount_minor, failure_reason FROM payments WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(db)
        .await
}

/// How many orders are in each status (statuses without orders are left out), for the
/// `chargeflow_orders` gauge.
///
/// # Errors
/// When the query fails.
pub async fn count_by_status(pool: &PgPool) -> sqlx::Result<Vec<(String, i64)>> {
    sqlx::query_as("SELECT status, count(*) FROM orders GROUP BY status")
        .fetch_all(pool)
        .await
}
