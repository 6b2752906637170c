//! `order show`: one order's state, what it waits for, lines, timeline, pending steps, payment,
//! shipment, e-mails and invoice, read with the `orders` library's read model (the queries
//! behind `GET /api/orders/{id}`) and its stuck-order view, plus the e-mails the email-service
//! recorded.

use ::orders::read::{
    self as orders, InvoiceSummary, OrderLine, OrderSummary, PaymentSummary, ShipmentSummary,
    TimelineEntry,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{AdminError, render, stuck::Pending};

/// Everything about one order.
#[derive(Debug, Serialize)]
pub struct OrderReport {
    /// Id, status, currency, subtotal, placed at.
    #[serde(flatten)]
    pub order: OrderSummary,
    /// What its status waits for, in plain words (`nothing: it has ended` at an end).
    pub waiting_for: &'static str,
    /// When its cancellation was accepted (the reason is `cancel_reason`).
    pub cancelled_at: Option<DateTime<Utc>>,
    /// Its events that a worker has not processed yet, oldest first.
    pub pending: Vec<Pending>,
    /// The lines.
    pub items: Vec<OrderLine>,
    /// What happened, oldest first.
    pub timeline: Vec<TimelineEntry>,
    /// The payment, once billing started it.
    pub payment: Option<PaymentSummary>,
    /// The shipment, once booked.
    pub shipment: Option<ShipmentSummary>,
    /// The e-mails sent (or refused by the server) for the order, oldest first.
    pub emails: Vec<EmailSent>,
    /// The invoice, once issued.
    pub invoice: Option<InvoiceSummary>,
}

/// One e-mail the email-service handed to the SMTP server for the order.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct EmailSent {
    /// The event it was sent for.
    pub event_id: Uuid,
    /// Which e-mail (`order_confirmation`, `invoice`, …).
    pub kind: String,
    /// `sent`, or `rejected` when the server refused the recipient.
    pub status: String,
    /// When the server answered.
    pub sent_at: DateTime<Utc>,
}

/// Reads the whole order.
///
/// # Errors
/// [`AdminError::UnknownOrder`] when no order has that id; [`AdminError::Database`] when a
/// query fails.
pub async fn show(pool: &PgPool, order_id: Uuid) -> Result<OrderReport, AdminError> {
    let order = orders::find_by_id(pool, order_id)
        .await?
        .ok_or(AdminError::UnknownOrder(order_id))?;
    let (items, timeline, payment, shipment, emails, invoice, cancelled_at) = tokio::try_join!(
        orders::lines(pool, order_id),
        orders::timeline(pool, order_id),
        orders::payment(pool, order_id),
        orders::shipment(pool, order_id),
        emails(pool, order_id),
        orders::invoice(pool, order_id),
        cancelled_at(pool, order_id),
    )?;
    let pending = ::orders::stuck::pending_steps(pool, order_id).await?;
    Ok(OrderReport {
        waiting_for: ::orders::stuck::waiting_for(&order.status, order.cancel_reason.as_deref()),
        cancelled_at,
        pending: pending.into_iter().map(Pending::from).collect(),
        order,
        items,
        timeline,
        payment,
        shipment,
        emails,
        invoice,
    })
}

/// When the order's cancellation was accepted, if it was.
async fn cancelled_at(pool: &PgPool, order_id: Uuid) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar("SELECT cancelled_at FROM orders WHERE id = $1")
        .bind(order_id)
        .fetch_one(pool)
        .await
}

/// The e-mails recorded for the order, oldest first.
async fn emails(pool: &PgPool, order_id: Uuid) -> sqlx::Result<Vec<EmailSent>> {
    sqlx::query_as(
        "SELECT event_id, kind, status, created_at AS sent_at FROM sent_emails
         WHERE order_id = $1 ORDER BY created_at, event_id",
    )
    .bind(order_id)
    .fetch_all(pool)
    .await
}

/// The order as text: a header of fields, then one section per part.
pub fn render(report: &OrderReport) -> String {
    let order = &report.order;
    let currency = order.currency.as_str();
    let mut fields = vec![
        ("order", order.order_id.to_string()),
        ("reference", order.reference.clone()),
        ("status", order.status.clone()),
        ("waiting", report.waiting_for.to_owned()),
    ];
    if let Some(reason) = &order.cancel_reason {
        fields.push(("cancelled", cancelled(reason, report.cancelled_at)));
    }
    fields.extend([
        ("placed", render::time(order.created_at)),
        ("subtotal", render::money(order.subtotal_minor, currency)),
        ("quoted", quoted(order, currency)),
        ("payment", payment(report.payment.as_ref(), currency)),
        ("shipment", shipment(report.shipment.as_ref())),
        ("invoice", invoice(report.invoice.as_ref(), currency)),
    ]);
    let mut text = render::fields(&fields);
    text.push_str("\nitems\n");
    text.push_str(&items(&report.items, currency));
    text.push_str("\ntimeline\n");
    text.push_str(&timeline(&report.timeline));
    text.push_str("\npending\n");
    text.push_str(&pending(&report.pending));
    text.push_str("\ne-mails\n");
    text.push_str(&emails_table(&report.emails));
    text
}

/// `operator, 2026-05-01 12:00:03 UTC`.
fn cancelled(reason: &str, at: Option<DateTime<Utc>>) -> String {
    match at {
        Some(at) => format!("{reason}, {}", render::time(at)),
        None => reason.to_owned(),
    }
}

/// One line per step a worker has not taken yet.
fn pending(steps: &[Pending]) -> String {
    if steps.is_empty() {
        return "  (nothing: every event was processed)\n".to_owned();
    }
    steps
        .iter()
        .map(|step| format!("  {}\n", step.description))
        .collect()
}

/// `53.88 EUR (shipping 6.90 EUR, tax 20% 8.98 EUR)`: the total quoted at checkout, the amount
/// charged; `none stored` for an order placed before quotes were stored.
fn quoted(order: &::orders::read::OrderSummary, currency: &str) -> String {
    match (order.total_minor, order.shipping_minor, order.tax_minor) {
        (Some(total), Some(shipping), Some(tax)) => format!(
            "{} (shipping {}, tax {}{})",
            render::money(total, currency),
            render::money(shipping, currency),
            order
                .tax_rate_bp
                .map(|bp| format!("{}% ", f64::from(bp) / 100.0))
                .unwrap_or_default(),
            render::money(tax, currency)
        ),
        _ => "none stored".to_owned(),
    }
}

fn payment(payment: Option<&PaymentSummary>, currency: &str) -> String {
    let Some(payment) = payment else {
        return "none yet".to_owned();
    };
    let amount = render::money(payment.amount_minor, currency);
    match &payment.failure_reason {
        Some(reason) => format!(
            "{}, {amount} ({})",
            payment.status,
            render::excerpt(reason, 80)
        ),
        None => format!("{}, {amount}", payment.status),
    }
}

fn shipment(shipment: Option<&ShipmentSummary>) -> String {
    let Some(shipment) = shipment else {
        return "none yet".to_owned();
    };
    let url = shipment.tracking_url.as_deref().unwrap_or_default();
    format!("{} {} {url}", shipment.carrier, shipment.tracking_number)
}

fn invoice(invoice: Option<&InvoiceSummary>, currency: &str) -> String {
    let Some(invoice) = invoice else {
        return "not issued yet".to_owned();
    };
    format!(
        "{}, total {} (shipping {}, tax {})",
        invoice.number,
        render::money(invoice.total_minor, currency),
        render::money(invoice.shipping_minor, currency),
        render::money(invoice.tax_minor, currency)
    )
}

fn items(lines: &[OrderLine], currency: &str) -> String {
    let rows: Vec<Vec<String>> = lines
        .iter()
        .map(|l| {
            vec![
                l.sku.clone(),
                l.name.clone(),
                l.quantity.to_string(),
                render::money(l.unit_price_minor, currency),
                render::money(l.line_total_minor, currency),
            ]
        })
        .collect();
    render::table(&["SKU", "NAME", "QTY", "UNIT", "TOTAL"], &rows)
}

fn timeline(entries: &[TimelineEntry]) -> String {
    if entries.is_empty() {
        return "  (no events yet)\n".to_owned();
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                render::time(e.occurred_at),
                e.event_type.clone(),
                detail(&e.detail),
            ]
        })
        .collect();
    render::table(&["TIME", "EVENT", "DETAIL"], &rows)
}

/// A timeline entry's facts as `key=value` pairs.
fn detail(detail: &serde_json::Value) -> String {
    let Some(fields) = detail.as_object() else {
        return detail.to_string();
    };
    let pairs: Vec<String> = fields
        .iter()
        .map(|(key, value)| match value {
            serde_json::Value::String(s) => format!("{key}={s}"),
            other => format!("{key}={other}"),
        })
        .collect();
    render::excerpt(&pairs.join(" "), 100)
}

fn emails_table(emails: &[EmailSent]) -> String {
    if emails.is_empty() {
        return "  (none sent yet)\n".to_owned();
    }
    let rows: Vec<Vec<String>> = emails
        .iter()
        .map(|e| vec![render::time(e.sent_at), e.kind.clone(), e.status.clone()])
        .collect();
    render::table(&["SENT", "KIND", "STATUS"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_details_are_key_value_pairs() {
        let detail_json =
            serde_json::json!({"invoice_number": "INV-2026-000001", "total_minor": 3941});
        assert_eq!(
            detail(&detail_json),
            "invoice_number=INV-2026-000001 total_minor=3941"
        );
        assert_eq!(detail(&serde_json::json!({})), "");
    }

    #[test]
    fn missing_parts_say_so() {
        assert_eq!(payment(None, "EUR"), "none yet");
        assert_eq!(shipment(None), "none yet");
        assert_eq!(invoice(None, "EUR"), "not issued yet");
    }
}
