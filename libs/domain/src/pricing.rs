//! The quote: what an order of these lines, shipped to this country, costs in all — lines,
//! shipping, tax and total.
//!
//! One pure function ([`quote`]) prices the cart (`GET /api/cart?country=…`), the checkout page
//! before "Place order", the order as it is placed (stored with it), its invoice and so the amount
//! charged: what the shopper is shown is what happens. The arithmetic is the invoice's
//! ([`compute_totals`]: tax on goods and shipping together, rounded half up once).
//!
//! The rules are a shipping fee and a tax rate per destination country, with one default for
//! every country without rules of its own.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::invoice::{InvoiceError, InvoiceLine, InvoiceTotals, TaxRate, compute_totals};

/// What shipping to one country costs and which tax rate applies there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rates {
    /// The flat shipping fee per order, in minor units of the order's currency.
    pub shipping_minor: i64,
    /// The tax rate on goods and shipping.
    pub tax_rate: TaxRate,
}

/// The shop's price rules: a default and per-country exceptions (ISO 3166-1 alpha-2 keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceRules {
    default: Rates,
    countries: BTreeMap<String, Rates>,
}

impl PriceRules {
    /// Rules with `default` for every country and the given exceptions; country codes are
    /// compared without regard to case.
    pub fn new(default: Rates, countries: impl IntoIterator<Item = (String, Rates)>) -> Self {
        PriceRules {
            default,
            countries: countries
                .into_iter()
                .map(|(code, rates)| (code.to_ascii_uppercase(), rates))
                .collect(),
        }
    }

    /// The rates for parcels to `country` (its own, or the default).
    pub fn for_country(&self, country: &str) -> Rates {
        self.countries
            .get(&country.to_ascii_uppercase())
            .copied()
            .unwrap_or(self.default)
    }
}

/// Prices `lines` for a parcel to `country`: the amounts the shopper is shown, the invoice
/// prints and Stripe is asked for.
///
/// # Errors
/// [`InvoiceError`] for no lines, a line whose total is not price × quantity, or an overflow.
pub fn quote(
    lines: &[InvoiceLine],
    rules: &PriceRules,
    country: &str,
) -> Result<InvoiceTotals, InvoiceError> {
    let rates = rules.for_country(country);
    compute_totals(lines, rates.shipping_minor, rates.tax_rate)
}

/// The quote of an empty basket: nothing to ship, nothing to pay.
pub fn empty_quote(rules: &PriceRules, country: &str) -> InvoiceTotals {
    InvoiceTotals {
        subtotal_minor: 0,
        shipping_minor: 0,
        tax_rate: rules.for_country(country).tax_rate,
        tax_minor: 0,
        total_minor: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates(shipping_minor: i64, bp: u32) -> Rates {
        Rates {
            shipping_minor,
            tax_rate: TaxRate::from_basis_points(bp).unwrap(),
        }
    }

    fn line(price: i64, quantity: u32) -> InvoiceLine {
        InvoiceLine {
            sku: "SKU".into(),
            name: "Thing".into(),
            quantity,
            unit_price_minor: price,
            line_total_minor: price * i64::from(quantity),
        }
    }

    fn rules() -> PriceRules {
        PriceRules::new(
            rates(490, 1900),
            [
                ("at".to_owned(), rates(690, 2000)),
                ("CH".to_owned(), rates(1490, 0)),
            ],
        )
    }

    #[test]
    fn a_country_without_rules_of_its_own_gets_the_default() {
        // The €39.00 knife of the issue: 3900 + 490 = 4390, 19 % of it is 834.1 → 834.
        let q = quote(&[line(3900, 1)], &rules(), "DE").unwrap();
        assert_eq!(
            (
                q.subtotal_minor,
                q.shipping_minor,
                q.tax_minor,
                q.total_minor
            ),
            (3900, 490, 834, 5224)
        );
    }

    #[test]
    fn a_country_with_rules_uses_them_whatever_the_case_of_its_code() {
        let q = quote(&[line(1450, 2)], &rules(), "At").unwrap();
        assert_eq!(
            (q.shipping_minor, q.tax_minor, q.total_minor),
            (690, 718, 4308)
        );
        let q = quote(&[line(1450, 2)], &rules(), "CH").unwrap();
        assert_eq!(
            (q.shipping_minor, q.tax_minor, q.total_minor),
            (1490, 0, 4390)
        );
    }

    #[test]
    fn the_total_is_always_the_sum_of_its_parts() {
        for country in ["DE", "AT", "CH", "US"] {
            for (price, qty) in [(1, 1), (990, 3), (8900, 100), (3333, 7)] {
                let q = quote(&[line(price, qty), line(1450, 1)], &rules(), country).unwrap();
                assert_eq!(
                    q.total_minor,
                    q.subtotal_minor + q.shipping_minor + q.tax_minor
                );
            }
        }
    }

    #[test]
    fn an_empty_basket_costs_nothing_and_cannot_be_ordered() {
        assert_eq!(empty_quote(&rules(), "AT").total_minor, 0);
        assert_eq!(quote(&[], &rules(), "AT"), Err(InvoiceError::NoLines));
    }
}
