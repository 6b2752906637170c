//! Money as integer minor units plus an ISO 4217 currency code. There is no float money.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An ISO 4217 currency code: three upper-case ASCII letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

/// The error for a string that is not a three-letter upper-case currency code.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is not a three-letter ISO 4217 currency code")]
pub struct InvalidCurrency(String);

impl Currency {
    /// Parses a code such as `"EUR"`.
    ///
    /// # Errors
    /// [`InvalidCurrency`] unless the input is exactly three ASCII upper-case letters.
    pub fn parse(code: &str) -> Result<Self, InvalidCurrency> {
        match code.as_bytes() {
            [a, b, c] if [a, b, c].iter().all(|b| b.is_ascii_uppercase()) => {
                Ok(Currency([*a, *b, *c]))
            }
            _ => Err(InvalidCurrency(code.to_owned())),
        }
    }

    /// The code as a string slice.
    pub fn as_str(&self) -> &str {
        // Only ASCII letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
}

impl TryFrom<String> for Currency {
    type Error = InvalidCurrency;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Currency::parse(&value)
    }
}

impl From<Currency> for String {
    fn from(value: Currency) -> Self {
        value.as_str().to_owned()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An amount of money: integer minor units (cents) of one currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    /// The amount in minor units (for EUR and USD: cents).
    pub amount_minor: i64,
    /// The currency of the amount.
    pub currency: Currency,
}

impl Money {
    /// A new amount.
    pub fn new(amount_minor: i64, currency: Currency) -> Self {
        Money {
            amount_minor,
            currency,
        }
    }

    /// `self × quantity`, or `None` on overflow.
    pub fn times(self, quantity: u32) -> Option<Money> {
        let amount_minor = self.amount_minor.checked_mul(i64::from(quantity))?;
        Some(Money::new(amount_minor, self.currency))
    }

    /// `self + other`, or `None` on overflow or when the currencies differ.
    pub fn plus(self, other: Money) -> Option<Money> {
        if self.currency != other.currency {
            return None;
        }
        let amount_minor = self.amount_minor.checked_add(other.amount_minor)?;
        Some(Money::new(amount_minor, self.currency))
    }
}

impl fmt::Display for Money {
    /// Two decimal places and the currency code: `1450 EUR` shows as `14.50 EUR`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.amount_minor < 0 { "-" } else { "" };
        let abs = self.amount_minor.unsigned_abs();
        write!(f, "{sign}{}.{:02} {}", abs / 100, abs % 100, self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_codes_are_three_upper_case_letters() {
        assert!(Currency::parse("EUR").is_ok());
        assert!(Currency::parse("eur").is_err());
        assert!(Currency::parse("EURO").is_err());
        assert!(Currency::parse("€").is_err());
    }

    #[test]
    fn sums_refuse_mixed_currencies_and_overflow() {
        let eur = Currency::parse("EUR").unwrap();
        let usd = Currency::parse("USD").unwrap();
        assert_eq!(
            Money::new(150, eur).plus(Money::new(50, eur)),
            Some(Money::new(200, eur))
        );
        assert_eq!(Money::new(1, eur).plus(Money::new(1, usd)), None);
        assert_eq!(Money::new(i64::MAX, eur).times(2), None);
        assert_eq!(Money::new(1999, eur).times(3), Some(Money::new(5997, eur)));
    }

    #[test]
    fn amounts_show_with_two_decimals_and_their_currency() {
        let eur = Currency::parse("EUR").unwrap();
        assert_eq!(Money::new(1450, eur).to_string(), "14.50 EUR");
        assert_eq!(Money::new(5, eur).to_string(), "0.05 EUR");
        assert_eq!(Money::new(-1999, eur).to_string(), "-19.99 EUR");
    }
}
