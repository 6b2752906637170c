//! Checkout input, parsed once into types that cannot hold invalid values
//! ("parse, don't validate").

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

/// Most units of one product in one order.
pub const MAX_QUANTITY: u32 = 100;
/// Most lines in one order.
pub const MAX_LINES: usize = 50;
/// Longest accepted free-text field (name, address line), in characters.
pub const MAX_TEXT_LEN: usize = 200;

/// Why a checkout request was refused before touching any data.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckoutError {
    /// A required field is absent or blank.
    #[error("`{0}` is required")]
    MissingField(&'static str),
    /// A text field is longer than [`MAX_TEXT_LEN`].
    #[error("`{0}` is longer than {MAX_TEXT_LEN} characters")]
    FieldTooLong(&'static str),
    /// The e-mail address is not of the form `local@domain.tld`.
    #[error("`{0}` is not a valid e-mail address")]
    InvalidEmail(String),
    /// The country is not a two-letter ISO 3166 code.
    #[error("the country must be a two-letter ISO 3166 code such as `DE`")]
    InvalidCountry,
    /// A quantity outside `1..=MAX_QUANTITY`.
    #[error("quantity {quantity} for product {product_id} is outside 1..={MAX_QUANTITY}")]
    InvalidQuantity {
        /// The product of the offending line.
        product_id: i64,
        /// The quantity asked for.
        quantity: i64,
    },
    /// More than [`MAX_LINES`] lines.
    #[error("an order holds at most {MAX_LINES} lines, this one has {0}")]
    TooManyLines(usize),
    /// No lines at all.
    #[error("the order has no items")]
    NoItems,
    /// The same product on two lines.
    #[error("product {0} appears on more than one line")]
    DuplicateProduct(i64),
    /// The payment method is not a Stripe PaymentMethod id.
    #[error("`payment_method` must be a Stripe PaymentMethod id such as `pm_card_visa`")]
    InvalidPaymentMethod,
    /// The payment method holds what looks like a card number. The shop never takes card data:
    /// the card goes from the shopper's browser to Stripe, which answers with a PaymentMethod id.
    #[error(
        "`payment_method` looks like a card number: send the Stripe PaymentMethod id (pm_…) \
         that Stripe.js created for the card, never the card's details"
    )]
    CardData,
}

/// A syntactically valid e-mail address (`local@domain.tld`, no spaces, at most 254 bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// Parses and trims an e-mail address.
    ///
    /// # Errors
    /// [`CheckoutError::InvalidEmail`] when it is not of the form `local@domain.tld`.
    pub fn parse(raw: &str) -> Result<Self, CheckoutError> {
        let email = raw.trim();
        let invalid = || CheckoutError::InvalidEmail(email.to_owned());
        if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if local.is_empty() || local.len() > 64 || local.contains('@') || !domain_ok {
            return Err(invalid());
        }
        Ok(EmailAddress(email.to_owned()))
    }

    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A quantity in `1..=MAX_QUANTITY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quantity(u32);

impl Quantity {
    /// Checks a requested quantity of `product_id`.
    ///
    /// # Errors
    /// [`CheckoutError::InvalidQuantity`] outside `1..=MAX_QUANTITY`.
    pub fn parse(product_id: i64, quantity: i64) -> Result<Self, CheckoutError> {
        match u32::try_from(quantity) {
            Ok(q @ 1..=MAX_QUANTITY) => Ok(Quantity(q)),
            _ => Err(CheckoutError::InvalidQuantity {
                product_id,
                quantity,
            }),
        }
    }

    /// The number of units.
    pub fn get(self) -> u32 {
        self.0
    }
}

/// A postal address with every required field present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    /// Street and number.
    pub line1: String,
    /// City.
    pub city: String,
    /// Postal code.
    pub postal_code: String,
    /// ISO 3166-1 alpha-2 country code, upper case.
    pub country: String,
}

impl Address {
    /// Builds an address from optional raw fields, naming the first missing one.
    ///
    /// # Errors
    /// [`CheckoutError::MissingField`], [`CheckoutError::FieldTooLong`] or
    /// [`CheckoutError::InvalidCountry`].
    pub fn parse(
        line1: Option<&str>,
        city: Option<&str>,
        postal_code: Option<&str>,
        country: Option<&str>,
    ) -> Result<Self, CheckoutError> {
        let line1 = required_text("customer.address.line1", line1)?;
        let city = required_text("customer.address.city", city)?;
        let postal_code = required_text("customer.address.postal_code", postal_code)?;
        let country = parse_country(&required_text("customer.address.country", country)?)?;
        Ok(Address {
            line1,
            city,
            postal_code,
            country,
        })
    }
}

/// Parses an ISO 3166-1 alpha-2 country code, trimmed and upper-cased.
///
/// # Errors
/// [`CheckoutError::InvalidCountry`] unless it is two ASCII letters.
pub fn parse_country(raw: &str) -> Result<String, CheckoutError> {
    let country = raw.trim().to_ascii_uppercase();
    if country.len() != 2 || !country.chars().all(|c| c.is_ascii_uppercase()) {
        return Err(CheckoutError::InvalidCountry);
    }
    Ok(country)
}

/// The shopper as given at checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    /// Full name.
    pub name: String,
    /// Where e-mails go.
    pub email: EmailAddress,
    /// Where the parcel goes.
    pub address: Address,
}

/// One requested line: a product and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckoutLine {
    /// The product's id.
    pub product_id: i64,
    /// How many units.
    pub quantity: Quantity,
}

/// Checks a trimmed, non-blank text field of bounded length.
///
/// # Errors
/// [`CheckoutError::MissingField`] or [`CheckoutError::FieldTooLong`].
pub fn required_text(field: &'static str, value: Option<&str>) -> Result<String, CheckoutError> {
    let value = value.map(str::trim).unwrap_or_default();
    if value.is_empty() {
        return Err(CheckoutError::MissingField(field));
    }
    if value.chars().count() > MAX_TEXT_LEN {
        return Err(CheckoutError::FieldTooLong(field));
    }
    Ok(value.to_owned())
}

/// Checks the requested lines: at least one, at most [`MAX_LINES`], valid quantities, each
/// product once. Lines come back sorted by product id, the order in which stock rows are locked.
///
/// # Errors
/// The first problem found, as a [`CheckoutError`].
pub fn parse_lines(raw: &[(i64, i64)]) -> Result<Vec<CheckoutLine>, CheckoutError> {
    if raw.is_empty() {
        return Err(CheckoutError::NoItems);
    }
    if raw.len() > MAX_LINES {
        return Err(CheckoutError::TooManyLines(raw.len()));
    }
    let mut seen = HashSet::new();
    let mut lines = Vec::with_capacity(raw.len());
    for &(product_id, quantity) in raw {
        if !seen.insert(product_id) {
            return Err(CheckoutError::DuplicateProduct(product_id));
        }
        let quantity = Quantity::parse(product_id, quantity)?;
        lines.push(CheckoutLine {
            product_id,
            quantity,
        });
    }
    lines.sort_by_key(|line| line.product_id);
    Ok(lines)
}

/// Longest accepted PaymentMethod id, in bytes (Stripe's own are under 40).
pub const MAX_PAYMENT_METHOD_LEN: usize = 100;

/// Fewest digits in a row (spaces and dashes between them allowed) that count as a card number:
/// card numbers have 12 to 19 digits, ids Stripe makes never hold such a run in practice.
const CARD_NUMBER_DIGITS: usize = 12;

/// Checks a Stripe PaymentMethod id: `pm_` followed by letters, digits and underscores, at most
/// [`MAX_PAYMENT_METHOD_LEN`] bytes, and no run of digits that could be a card number.
///
/// # Errors
/// [`CheckoutError::MissingField`], [`CheckoutError::CardData`] (checked first, whatever the
/// value's length or form) or [`CheckoutError::InvalidPaymentMethod`].
pub fn parse_payment_method(raw: Option<&str>) -> Result<String, CheckoutError> {
    let value = raw.map(str::trim).unwrap_or_default();
    if value.is_empty() {
        return Err(CheckoutError::MissingField("payment_method"));
    }
    if looks_like_card_number(value) {
        return Err(CheckoutError::CardData);
    }
    let valid = value.len() <= MAX_PAYMENT_METHOD_LEN
        && value.strip_prefix("pm_").is_some_and(|rest| {
            !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    if valid {
        Ok(value.to_owned())
    } else {
        Err(CheckoutError::InvalidPaymentMethod)
    }
}

/// Whether a PaymentMethod id is one of Stripe's test-mode shortcuts (`pm_card_visa`,
/// `pm_card_chargeDeclined`, …). The ids Stripe gives the PaymentMethods it creates are `pm_`
/// and letters and digits only; the shortcuts exist in test mode and nowhere in live mode.
pub fn is_test_payment_method(id: &str) -> bool {
    id.strip_prefix("pm_")
        .is_some_and(|rest| rest.contains('_'))
}

/// Whether `value` holds [`CARD_NUMBER_DIGITS`] or more digits in a row, spaces and dashes
/// between them not counting (`4242 4242 4242 4242`, `4242-4242-…`).
fn looks_like_card_number(value: &str) -> bool {
    let mut run = 0;
    for c in value.chars() {
        if c.is_ascii_digit() {
            run += 1;
            if run >= CARD_NUMBER_DIGITS {
                return true;
            }
        } else if c != ' ' && c != '-' {
            run = 0;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plausible_email_addresses_are_accepted() {
        for ok in [
            "a@b.co",
            "first.last+tag@example.com",
            " x@sub.example.org ",
        ] {
            assert!(EmailAddress::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn malformed_email_addresses_are_rejected() {
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a b@c.de",
            "a@-b.com",
            "a@b..com",
            "a@@b.com",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn quantities_must_be_between_one_and_a_hundred() {
        assert!(Quantity::parse(1, 1).is_ok());
        assert!(Quantity::parse(1, 100).is_ok());
        assert!(Quantity::parse(1, 0).is_err());
        assert!(Quantity::parse(1, 101).is_err());
        assert!(Quantity::parse(1, -1).is_err());
    }

    #[test]
    fn lines_are_checked_and_sorted_by_product() {
        let lines = parse_lines(&[(3, 1), (1, 2)]).unwrap();
        assert_eq!(
            lines.iter().map(|l| l.product_id).collect::<Vec<_>>(),
            [1, 3]
        );
        assert_eq!(parse_lines(&[]), Err(CheckoutError::NoItems));
        assert_eq!(
            parse_lines(&[(1, 1), (1, 2)]),
            Err(CheckoutError::DuplicateProduct(1))
        );
        let many: Vec<_> = (0..51).map(|id| (id, 1)).collect();
        assert_eq!(parse_lines(&many), Err(CheckoutError::TooManyLines(51)));
    }

    #[test]
    fn an_address_names_its_first_missing_field() {
        assert_eq!(
            Address::parse(Some("Main St 1"), Some(" "), None, Some("de")),
            Err(CheckoutError::MissingField("customer.address.city"))
        );
        let address =
            Address::parse(Some("Main St 1"), Some("Berlin"), Some("10115"), Some("de")).unwrap();
        assert_eq!(address.country, "DE");
        assert_eq!(
            Address::parse(Some("a"), Some("b"), Some("c"), Some("Germany")),
            Err(CheckoutError::InvalidCountry)
        );
    }

    #[test]
    fn payment_methods_must_look_like_stripe_ids() {
        assert!(parse_payment_method(Some("pm_card_visa")).is_ok());
        assert!(parse_payment_method(Some("pm_card_chargeDeclined")).is_ok());
        assert!(parse_payment_method(Some("card_123")).is_err());
        assert!(parse_payment_method(Some("pm_")).is_err());
        assert!(parse_payment_method(Some("pm_1PqRsT2eZvKYlo2CdEf3GhIj")).is_ok());
        assert_eq!(
            parse_payment_method(Some(&format!("pm_{}", "a".repeat(98)))),
            Err(CheckoutError::InvalidPaymentMethod)
        );
        assert_eq!(
            parse_payment_method(None),
            Err(CheckoutError::MissingField("payment_method"))
        );
    }

    #[test]
    fn anything_that_looks_like_a_card_number_is_refused_as_card_data() {
        for card in [
            "4242424242424242",
            "4242 4242 4242 4242",
            "4000-0027-6000-3184",
            "pm_4242424242424242",
            "card 378282246310005 exp 12/34",
            &format!("{}4242424242424242", "x".repeat(300)),
        ] {
            assert_eq!(
                parse_payment_method(Some(card)),
                Err(CheckoutError::CardData),
                "{card}"
            );
        }
        assert_eq!(
            parse_payment_method(Some("pm_12345678901")),
            Ok("pm_12345678901".to_owned()),
            "11 digits are not a card number"
        );
    }

    #[test]
    fn stripe_test_shortcuts_are_told_from_ids_stripe_makes() {
        assert!(is_test_payment_method("pm_card_visa"));
        assert!(is_test_payment_method("pm_card_authenticationRequired"));
        assert!(!is_test_payment_method("pm_1PqRsT2eZvKYlo2CdEf3GhIj"));
    }
}
