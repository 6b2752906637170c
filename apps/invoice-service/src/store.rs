//! The invoice-service's SQL: the order as invoiced (with the invoice a previous attempt
//! numbered), the gap-free counter, the numbered invoice row and its PDF with the order's move to
//! `invoiced`.

use chrono::{Datelike, NaiveDate};
use domain::{
    BillTo, Currency, InvoiceLine, InvoiceNumber, InvoiceTotals, TaxRate, invoice::InvalidTaxRate,
};
use sqlx::{PgConnection, types::Json};
use uuid::Uuid;

/// What an invoice needs from the order, read under the order's row lock.
#[derive(Debug, sqlx::FromRow)]
pub struct OrderForInvoice {
    /// Whether the inbox holds the event asked about: it was handled before.
    pub handled: bool,
    /// The order's status.
    pub status: String,
    /// The year of the invoice an earlier attempt numbered, if one did.
    pub invoice_year: Option<i32>,
    /// Its sequence number in that year.
    pub invoice_seq: Option<i64>,
    /// Its date.
    pub invoice_issued_on: Option<NaiveDate>,
    /// ISO currency code.
    pub currency: String,
    /// The customer's name.
    pub ship_name: String,
    /// Street line.
    pub ship_line1: String,
    /// Postal code.
    pub ship_postal_code: String,
    /// City.
    pub ship_city: String,
    /// Country code.
    pub ship_country: String,
    /// The quote stored at checkout; all four are null for an order placed before quotes were.
    pub subtotal_minor: i64,
    /// Quoted shipping fee.
    pub shipping_minor: Option<i64>,
    /// Quoted tax rate, basis points.
    pub tax_rate_bp: Option<i32>,
    /// Quoted tax.
    pub tax_minor: Option<i64>,
    /// Quoted total.
    pub total_minor: Option<i64>,
    /// The order's lines, in order.
    pub lines: Json<Vec<InvoiceLine>>,
}

impl OrderForInvoice {
    /// The quote stored with the order, if it has one.
    ///
    /// # Errors
    /// A stored tax rate out of range (the table's check forbids it).
    pub fn quote(&self) -> Result<Option<InvoiceTotals>, InvalidTaxRate> {
        let (Some(shipping_minor), Some(bp), Some(tax_minor), Some(total_minor)) = (
            self.shipping_minor,
            self.tax_rate_bp,
            self.tax_minor,
            self.total_minor,
        ) else {
            return Ok(None);
        };
        Ok(Some(InvoiceTotals {
            subtotal_minor: self.subtotal_minor,
            shipping_minor,
            tax_rate: TaxRate::from_basis_points(bp.unsigned_abs())?,
            tax_minor,
            total_minor,
        }))
    }

    /// The number and date of the invoice an earlier attempt numbered, if one did.
    pub fn numbered(&self) -> Option<(InvoiceNumber, NaiveDate)> {
        let (Some(year), Some(sequence), Some(issued_on)) =
            (self.invoice_year, self.invoice_seq, self.invoice_issued_on)
        else {
            return None;
        };
        Some((InvoiceNumber { year, sequence }, issued_on))
    }

    /// The bill-to block of the invoice.
    pub fn bill_to(&self) -> BillTo {
        BillTo {
            name: self.ship_name.clone(),
            line1: self.ship_line1.clone(),
            postal_code: self.ship_postal_code.clone(),
            city: self.ship_city.clone(),
            country: self.ship_country.clone(),
        }
    }
}

/// The order's invoicing data with its lines and the invoice numbered for it, if any, locking
/// the order's row until the transaction ends (a second delivery of the event, or a
/// cancellation, waits); and whether `consumer` has handled event `event_id` already (`false`
/// when it is `None`). One statement.
#[tracing::instrument(level = "debug", name = "invoice.lock_order", skip_all, fields(db.system.name = "postgresql"))]
pub async fn lock_order(
    conn: &mut PgConnection,
    order_id: Uuid,
    consumer: &str,
    event_id: Option<Uuid>,
) -> sqlx::Result<Option<OrderForInvoice>> {
    sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM inbox WHERE consumer = $2 AND event_id = $3) AS handled,
                o.status, o.currency::text AS currency, o.ship_name, o.ship_line1,
                o.ship_postal_code, o.ship_city, o.ship_country::text AS ship_country,
                o.subtotal_minor, o.shipping_minor, o.tax_rate_bp, o.tax_minor, o.total_minor,
                i.year AS invoice_year, i.seq AS invoice_seq, i.issued_on AS invoice_issued_on,
                (SELECT coalesce(jsonb_agg(jsonb_build_object(
                             'sku', l.sku, 'name', l.name, 'quantity', l.quantity,
                             'unit_price_minor', l.unit_price_minor,
                             'line_total_minor', l.line_total_minor) ORDER BY l.line_no), '[]')
                 FROM order_items l WHERE l.order_id = o.id) AS lines
         FROM orders o LEFT JOIN invoices i ON i.order_id = o.id
         WHERE o.id = $1
         FOR NO KEY UPDATE OF o",
    )
    .bind(order_id)
    .bind(consumer)
    .bind(event_id)
    .fetch_optional(conn)
    .await
}

/// The amounts and date of an invoice about to be numbered ([`insert_next_numbered`]).
#[derive(Debug, Clone, Copy)]
pub struct Unnumbered<'a> {
    /// The invoiced order.
    pub order_id: Uuid,
    /// The invoice date; its year names the sequence.
    pub issued_on: NaiveDate,
    /// The invoice's currency.
    pub currency: Currency,
    /// Its amounts.
    pub totals: &'a InvoiceTotals,
}

/// Takes the next number of the invoice date's year and stores the numbered invoice, without
/// its PDF ([`issue`] adds it), in one statement. The counter row stays locked until the
/// transaction ends, and a rollback gives the number back with the row: no gaps. Commit soon
/// after (the handler commits before rendering): every other invoice waits meanwhile.
///
/// The stored `number` text is formatted here as [`InvoiceNumber`] shows it (`INV-2026-000001`,
/// more digits past 999999; the table's CHECK holds the shape), so that the number and its row
/// need one round trip.
#[tracing::instrument(level = "debug", name = "invoice.insert_next_numbered", skip_all, fields(db.system.name = "postgresql"))]
pub async fn insert_next_numbered(
    conn: &mut PgConnection,
    invoice: &Unnumbered<'_>,
) -> sqlx::Result<InvoiceNumber> {
    let year = invoice.issued_on.year();
    let totals = invoice.totals;
    let sequence: i64 = sqlx::query_scalar(
        "WITH counter AS (
             INSERT INTO invoice_counters (year, last_seq) VALUES ($2, 1)
             ON CONFLICT (year) DO UPDATE SET last_seq = invoice_counters.last_seq + 1
             RETURNING last_seq
         )
         INSERT INTO invoices (order_id, year, seq, number, issued_on, currency, subtotal_minor,
                               shipping_minor, tax_rate_bp, tax_minor, total_minor)
         SELECT $1, $2, last_seq,
                'INV-' || lpad($2::text, 4, '0') || '-'
                       || CASE WHEN last_seq < 1000000 THEN lpad(last_seq::text, 6, '0')
                               ELSE last_seq::text END,
                $3, $4, $5, $6, $7, $8, $9
         FROM counter
         RETURNING seq",
    )
    .bind(invoice.order_id)
    .bind(year)
    .bind(invoice.issued_on)
    .bind(invoice.currency.as_str())
    .bind(totals.subtotal_minor)
    .bind(totals.shipping_minor)
    .bind(totals.tax_rate.basis_points() as i32)
    .bind(totals.tax_minor)
    .bind(totals.total_minor)
    .fetch_one(conn)
    .await?;
    Ok(InvoiceNumber { year, sequence })
}

/// Stores the PDF of the order's numbered invoice, unless one is stored already; with `inbox`
/// (`(consumer, event id)`), writes the event's inbox row in the same statement and stores the
/// PDF only if the row is new. `false` when the inbox row was there (handled before): nothing
/// was written.
#[tracing::instrument(level = "debug", name = "invoice.store_pdf", skip_all, fields(db.system.name = "postgresql"))]
pub async fn store_pdf(
    conn: &mut PgConnection,
    order_id: Uuid,
    pdf: &[u8],
    inbox: Option<(&str, Uuid)>,
) -> sqlx::Result<bool> {
    let (consumer, event_id) = inbox.unzip();
    sqlx::query_scalar(
        "WITH handled AS (
             INSERT INTO inbox (consumer, event_id)
             SELECT $3, $4 WHERE $4::uuid IS NOT NULL
             ON CONFLICT DO NOTHING
             RETURNING 1
         ), stored AS (
             UPDATE invoices SET pdf = $2
             WHERE order_id = $1 AND pdf IS NULL
               AND ($4::uuid IS NULL OR EXISTS (SELECT 1 FROM handled))
         )
         SELECT $4::uuid IS NULL OR EXISTS (SELECT 1 FROM handled)",
    )
    .bind(order_id)
    .bind(pdf)
    .bind(consumer)
    .bind(event_id)
    .fetch_one(conn)
    .await
}

/// Today's date in UTC: the invoice date.
pub fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
}
