//! The email-service's SQL: who the order's e-mails go to, what to show, the sign-in request a
//! sign-in e-mail answers, and the sent-mail record that makes every e-mail happen at most once
//! per event.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// The order as its e-mails show it.
#[derive(Debug, sqlx::FromRow)]
pub struct OrderForEmail {
    /// The customer's e-mail address (never logged).
    pub email: String,
    /// The name the order was placed with (never another order's: see the web-server's
    /// `upsert_customer`).
    pub name: String,
    /// ISO currency code.
    pub currency: String,
    /// Sum of the lines, in minor units.
    pub subtotal_minor: i64,
    /// The shipping fee quoted at checkout (null for orders placed before quotes were stored).
    pub shipping_minor: Option<i64>,
    /// The tax quoted at checkout (as `shipping_minor`).
    pub tax_minor: Option<i64>,
    /// The total quoted at checkout: what is charged (as `shipping_minor`).
    pub total_minor: Option<i64>,
}

/// One line of the order.
#[derive(Debug, sqlx::FromRow)]
pub struct LineForEmail {
    /// SKU.
    pub sku: String,
    /// Product name at purchase.
    pub name: String,
    /// Units.
    pub quantity: i32,
    /// Unit price in minor units.
    pub unit_price_minor: i64,
    /// Line total in minor units.
    pub line_total_minor: i64,
}

/// The stored invoice of an order.
#[derive(Debug, sqlx::FromRow)]
pub struct InvoiceForEmail {
    /// `INV-…`.
    pub number: String,
    /// Total in minor units.
    pub total_minor: i64,
    /// The PDF.
    pub pdf: Vec<u8>,
}

/// The order with its customer, or `None` when it does not exist.
pub async fn order(conn: &mut PgConnection, order_id: Uuid) -> sqlx::Result<Option<OrderForEmail>> {
    sqlx::query_as(
        "SELECT c.email, o.ship_name AS name, o.currency::text AS currency, o.subtotal_minor, o.shipping_minor,
                o.tax_minor, o.total_minor
         FROM orders o JOIN customers c ON c.id = o.customer_id
         WHERE o.id = $1",
    )
    .bind(order_id)
    .fetch_optional(conn)
    .await
}

/// The order's lines, in order.
pub async fn lines(conn: &mut PgConnection, order_id: Uuid) -> sqlx::Result<Vec<LineForEmail>> {
    sqlx::query_as(
        "SELECT sku, name, quantity, unit_price_minor, line_total_minor
         FROM order_items WHERE order_id = $1 ORDER BY line_no",
    )
    .bind(order_id)
    .fetch_all(conn)
    .await
}

/// The order's invoice, if it has one.
pub async fn invoice(
    conn: &mut PgConnection,
    order_id: Uuid,
) -> sqlx::Result<Option<InvoiceForEmail>> {
    sqlx::query_as("SELECT number, total_minor, pdf FROM invoices WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(conn)
        .await
}

/// A sign-in request as its e-mail needs it.
#[derive(Debug, sqlx::FromRow)]
pub struct SignInForEmail {
    /// The address the link was asked for (never logged).
    pub email: String,
    /// When the link stops working.
    pub expires_at: DateTime<Utc>,
    /// Whether the request is still unused and unexpired.
    pub usable: bool,
    /// The name given at the latest checkout of a customer with this address (in any letter
    /// case) who has orders; `None` when the address has no orders.
    pub customer_name: Option<String>,
}

/// The sign-in request `request_id`, or `None` when it does not exist (any more).
pub async fn sign_in_request(
    conn: &mut PgConnection,
    request_id: Uuid,
) -> sqlx::Result<Option<SignInForEmail>> {
    sqlx::query_as(
        "SELECT r.email, r.expires_at, (r.used_at IS NULL AND r.expires_at > now()) AS usable,
                (SELECT c.name FROM customers c
                 WHERE lower(c.email) = lower(r.email)
                   AND EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id)
                 ORDER BY (SELECT max(o.created_at) FROM orders o WHERE o.customer_id = c.id) DESC
                 LIMIT 1) AS customer_name
         FROM sign_in_requests r WHERE r.id = $1",
    )
    .bind(request_id)
    .fetch_optional(conn)
    .await
}

/// Records what the worker did with a sign-in request: `sent`, `rejected`, `no_orders` or
/// `stale`.
pub async fn record_sign_in_outcome(
    conn: &mut PgConnection,
    request_id: Uuid,
    outcome: &str,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE sign_in_requests SET mail_outcome = $2 WHERE id = $1")
        .bind(request_id)
        .bind(outcome)
        .execute(conn)
        .await?;
    Ok(())
}

/// What became of one e-mail.
#[derive(Debug)]
pub struct SentEmail<'a> {
    /// The event it was sent for.
    pub event_id: Uuid,
    /// The order; `None` for a sign-in e-mail.
    pub order_id: Option<Uuid>,
    /// The template kind.
    pub kind: &'a str,
    /// The `Message-ID` header value.
    pub message_id: &'a str,
    /// `sent` or `rejected`.
    pub status: &'a str,
    /// The server's reply.
    pub smtp_response: &'a str,
}

/// Records the e-mail of an event.
pub async fn record(conn: &mut PgConnection, sent: &SentEmail<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO sent_emails (event_id, order_id, kind, message_id, status, smtp_response)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(sent.event_id)
    .bind(sent.order_id)
    .bind(sent.kind)
    .bind(sent.message_id)
    .bind(sent.status)
    .bind(sent.smtp_response)
    .execute(conn)
    .await?;
    Ok(())
}

/// Adds the e-mail to the order's timeline (`email.sent` or `email.rejected`), so the order page
/// shows it. An e-mail of no order (sign-in) goes on no timeline.
pub async fn record_on_timeline(conn: &mut PgConnection, sent: &SentEmail<'_>) -> sqlx::Result<()> {
    let Some(order_id) = sent.order_id else {
        return Ok(());
    };
    let event_type = if sent.status == "sent" {
        "email.sent"
    } else {
        "email.rejected"
    };
    sqlx::query(
        "INSERT INTO order_timeline (event_id, order_id, event_type, occurred_at, detail)
         VALUES (gen_random_uuid(), $1, $2, clock_timestamp(), jsonb_build_object('kind', $3::text))",
    )
    .bind(order_id)
    .bind(event_type)
    .bind(sent.kind)
    .execute(conn)
    .await?;
    Ok(())
}
