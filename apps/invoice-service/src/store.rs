//! The invoice-service's SQL: the order as invoiced, the gap-free counter, the invoice row.

use chrono::NaiveDate;
use domain::{
    BillTo, InvoiceDocument, InvoiceLine, InvoiceNumber, InvoiceTotals, TaxRate,
    invoice::InvalidTaxRate,
};
use sqlx::PgConnection;
use uuid::Uuid;

/// What an invoice needs from the order.
#[derive(Debug, sqlx::FromRow)]
pub struct OrderForInvoice {
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

/// The order's invoicing data.
pub async fn order(
    conn: &mut PgConnection,
    order_id: Uuid,
) -> sqlx::Result<Option<OrderForInvoice>> {
    sqlx::query_as(
        "SELECT currency::text AS currency, ship_name, ship_line1, ship_postal_code, ship_city,
                ship_country::text AS ship_country, subtotal_minor, shipping_minor, tax_rate_bp,
                tax_minor, total_minor
         FROM orders WHERE id = $1",
    )
    .bind(order_id)
    .fetch_optional(conn)
    .await
}

/// The order's lines, in order.
pub async fn lines(conn: &mut PgConnection, order_id: Uuid) -> sqlx::Result<Vec<InvoiceLine>> {
    let rows: Vec<(String, String, i32, i64, i64)> = sqlx::query_as(
        "SELECT sku, name, quantity, unit_price_minor, line_total_minor
         FROM order_items WHERE order_id = $1 ORDER BY line_no",
    )
    .bind(order_id)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(sku, name, quantity, unit_price_minor, line_total_minor)| InvoiceLine {
                sku,
                name,
                quantity: quantity.unsigned_abs(),
                unit_price_minor,
                line_total_minor,
            },
        )
        .collect())
}

/// Takes the next number of `year`'s sequence. The counter row stays locked until the
/// transaction ends, and a rollback gives the number back: no gaps.
pub async fn next_number(conn: &mut PgConnection, year: i32) -> sqlx::Result<InvoiceNumber> {
    let sequence: i64 = sqlx::query_scalar(
        "INSERT INTO invoice_counters (year, last_seq) VALUES ($1, 1)
         ON CONFLICT (year) DO UPDATE SET last_seq = invoice_counters.last_seq + 1
         RETURNING last_seq",
    )
    .bind(year)
    .fetch_one(conn)
    .await?;
    Ok(InvoiceNumber { year, sequence })
}

/// Stores the invoice with its PDF.
pub async fn insert(
    conn: &mut PgConnection,
    doc: &InvoiceDocument,
    pdf: &[u8],
) -> sqlx::Result<()> {
    let totals = &doc.totals;
    sqlx::query(
        "INSERT INTO invoices (order_id, year, seq, number, issued_on, currency, subtotal_minor,
                               shipping_minor, tax_rate_bp, tax_minor, total_minor, pdf)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(doc.order_id)
    .bind(doc.number.year)
    .bind(doc.number.sequence)
    .bind(doc.number.to_string())
    .bind(doc.issued_on)
    .bind(doc.currency.as_str())
    .bind(totals.subtotal_minor)
    .bind(totals.shipping_minor)
    .bind(totals.tax_rate.basis_points() as i32)
    .bind(totals.tax_minor)
    .bind(totals.total_minor)
    .bind(pdf)
    .execute(conn)
    .await?;
    Ok(())
}

/// Today's date in UTC: the invoice date.
pub fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
}
