//! Invoices: the amounts of an order's invoice and its gap-free number.
//!
//! Everything here is integer minor units. Tax is charged on the goods and the shipping fee
//! together (shipping follows the goods, as EU VAT has it) and rounded half up once, on the
//! total, so that the printed lines and totals always add up.

use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::money::{Currency, Money};

/// A tax rate in basis points: `1900` is 19 %.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxRate(u32);

/// The error for a tax rate outside 0–100 %.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a tax rate must be between 0 and 10000 basis points, not {0}")]
pub struct InvalidTaxRate(pub u32);

impl TaxRate {
    /// A rate of `basis_points / 100` percent.
    ///
    /// # Errors
    /// [`InvalidTaxRate`] above 10 000 basis points (100 %).
    pub fn from_basis_points(basis_points: u32) -> Result<Self, InvalidTaxRate> {
        if basis_points > 10_000 {
            return Err(InvalidTaxRate(basis_points));
        }
        Ok(TaxRate(basis_points))
    }

    /// The rate in basis points.
    pub fn basis_points(self) -> u32 {
        self.0
    }

    /// The tax on `amount_minor`, rounded half up to a whole minor unit.
    pub fn of(self, amount_minor: i64) -> Option<i64> {
        let scaled = i128::from(amount_minor) * i128::from(self.0);
        i64::try_from((scaled + 5_000).div_euclid(10_000)).ok()
    }
}

impl fmt::Display for TaxRate {
    /// `1900` shows as `19%`, `750` as `7.5%`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, frac) = (self.0 / 100, self.0 % 100);
        if frac == 0 {
            write!(f, "{whole}%")
        } else if frac % 10 == 0 {
            write!(f, "{whole}.{}%", frac / 10)
        } else {
            write!(f, "{whole}.{frac:02}%")
        }
    }
}

/// One line of an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceLine {
    /// The product's stock-keeping unit.
    pub sku: String,
    /// The product's name at the time of purchase.
    pub name: String,
    /// How many units.
    pub quantity: u32,
    /// The unit price charged, in minor units.
    pub unit_price_minor: i64,
    /// `unit_price_minor × quantity`.
    pub line_total_minor: i64,
}

impl InvoiceLine {
    /// A line of `quantity` units at `unit_price_minor`, its total computed (saturating: an
    /// overflowing line is refused by [`compute_totals`] as a mismatch).
    pub fn new(sku: &str, name: &str, unit_price_minor: i64, quantity: u32) -> Self {
        InvoiceLine {
            sku: sku.to_owned(),
            name: name.to_owned(),
            quantity,
            unit_price_minor,
            line_total_minor: unit_price_minor.saturating_mul(i64::from(quantity)),
        }
    }
}

/// The totals of an invoice, in minor units of its currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceTotals {
    /// The sum of the line totals.
    pub subtotal_minor: i64,
    /// The shipping fee.
    pub shipping_minor: i64,
    /// The tax rate applied to subtotal plus shipping.
    pub tax_rate: TaxRate,
    /// The tax on subtotal plus shipping, rounded half up.
    pub tax_minor: i64,
    /// `subtotal + shipping + tax`: what the customer pays.
    pub total_minor: i64,
}

/// Why an invoice cannot be computed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvoiceError {
    /// An invoice needs at least one line.
    #[error("an invoice needs at least one line")]
    NoLines,
    /// A line's total is not its unit price times its quantity, or is negative.
    #[error("line {sku}: the total does not match price × quantity")]
    LineMismatch {
        /// The SKU of the offending line.
        sku: String,
    },
    /// A sum does not fit in 64 bits.
    #[error("the invoice amounts overflow")]
    Overflow,
}

/// Computes the totals of an invoice from its lines.
///
/// # Errors
/// [`InvoiceError`] for no lines, a line whose total is not price × quantity, a negative amount,
/// or an overflow.
pub fn compute_totals(
    lines: &[InvoiceLine],
    shipping_minor: i64,
    tax_rate: TaxRate,
) -> Result<InvoiceTotals, InvoiceError> {
    if lines.is_empty() {
        return Err(InvoiceError::NoLines);
    }
    let mut subtotal_minor: i64 = 0;
    for line in lines {
        let expected = line
            .unit_price_minor
            .checked_mul(i64::from(line.quantity))
            .ok_or(InvoiceError::Overflow)?;
        if line.unit_price_minor < 0 || line.line_total_minor != expected {
            return Err(InvoiceError::LineMismatch {
                sku: line.sku.clone(),
            });
        }
        subtotal_minor = subtotal_minor
            .checked_add(line.line_total_minor)
            .ok_or(InvoiceError::Overflow)?;
    }
    if shipping_minor < 0 {
        return Err(InvoiceError::Overflow);
    }
    let taxable = subtotal_minor
        .checked_add(shipping_minor)
        .ok_or(InvoiceError::Overflow)?;
    let tax_minor = tax_rate.of(taxable).ok_or(InvoiceError::Overflow)?;
    let total_minor = taxable
        .checked_add(tax_minor)
        .ok_or(InvoiceError::Overflow)?;
    Ok(InvoiceTotals {
        subtotal_minor,
        shipping_minor,
        tax_rate,
        tax_minor,
        total_minor,
    })
}

/// A gap-free invoice number: one sequence per calendar year, shown as `INV-2026-000001`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InvoiceNumber {
    /// The calendar year the invoice was issued in.
    pub year: i32,
    /// The position in that year's sequence, from 1.
    pub sequence: i64,
}

impl fmt::Display for InvoiceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "INV-{:04}-{:06}", self.year, self.sequence)
    }
}

/// The party that issues the invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seller {
    /// The company name.
    pub name: String,
    /// Postal address lines, top to bottom.
    pub address_lines: Vec<String>,
    /// The VAT identification number, if any.
    pub vat_id: Option<String>,
    /// A contact e-mail address.
    pub email: String,
}

/// The party the invoice is addressed to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillTo {
    /// The customer's name.
    pub name: String,
    /// The street line.
    pub line1: String,
    /// The postal code.
    pub postal_code: String,
    /// The city.
    pub city: String,
    /// ISO 3166-1 alpha-2 country code.
    pub country: String,
}

/// Everything printed on an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceDocument {
    /// The invoice number.
    pub number: InvoiceNumber,
    /// The day the invoice was issued.
    pub issued_on: NaiveDate,
    /// The order the invoice is for.
    pub order_id: uuid::Uuid,
    /// Who issues it.
    pub seller: Seller,
    /// Who pays it.
    pub bill_to: BillTo,
    /// The currency of every amount.
    pub currency: Currency,
    /// The lines, in order.
    pub lines: Vec<InvoiceLine>,
    /// The totals.
    pub totals: InvoiceTotals,
}

impl InvoiceDocument {
    /// `amount_minor` in the invoice's currency, for printing (`14.50 EUR`).
    pub fn money(&self, amount_minor: i64) -> Money {
        Money::new(amount_minor, self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sku: &str, unit: i64, quantity: u32) -> InvoiceLine {
        InvoiceLine {
            sku: sku.into(),
            name: sku.into(),
            quantity,
            unit_price_minor: unit,
            line_total_minor: unit * i64::from(quantity),
        }
    }

    fn rate(bp: u32) -> TaxRate {
        TaxRate::from_basis_points(bp).unwrap()
    }

    #[test]
    fn totals_add_lines_shipping_and_tax_on_both() {
        let totals =
            compute_totals(&[line("A", 1450, 2), line("B", 990, 1)], 490, rate(1900)).unwrap();
        assert_eq!(totals.subtotal_minor, 3890);
        // 19 % of 43.80 = 8.322 → 8.32
        assert_eq!(totals.tax_minor, 832);
        assert_eq!(totals.total_minor, 3890 + 490 + 832);
    }

    #[test]
    fn tax_rounds_half_up_to_a_whole_cent() {
        assert_eq!(rate(1900).of(50), Some(10)); // 9.5 → 10
        assert_eq!(rate(1900).of(49), Some(9)); // 9.31 → 9
        assert_eq!(rate(0).of(12345), Some(0));
        assert_eq!(rate(10_000).of(12345), Some(12345));
    }

    #[test]
    fn a_line_whose_total_does_not_match_is_refused() {
        let mut bad = line("A", 100, 3);
        bad.line_total_minor = 299;
        assert_eq!(
            compute_totals(&[bad], 0, rate(0)),
            Err(InvoiceError::LineMismatch { sku: "A".into() })
        );
        assert_eq!(compute_totals(&[], 0, rate(0)), Err(InvoiceError::NoLines));
        let mut huge = line("A", i64::MAX, 1);
        huge.quantity = 2;
        assert_eq!(
            compute_totals(&[huge], 0, rate(0)),
            Err(InvoiceError::Overflow)
        );
    }

    #[test]
    fn rates_above_one_hundred_percent_are_refused_and_rates_print_as_percent() {
        assert!(TaxRate::from_basis_points(10_001).is_err());
        assert_eq!(rate(1900).to_string(), "19%");
        assert_eq!(rate(750).to_string(), "7.5%");
        assert_eq!(rate(1025).to_string(), "10.25%");
    }

    #[test]
    fn invoice_numbers_are_zero_padded_per_year() {
        let number = InvoiceNumber {
            year: 2026,
            sequence: 1,
        };
        assert_eq!(number.to_string(), "INV-2026-000001");
    }
}
