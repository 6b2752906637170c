//! The checkout body as sent, and its parsing into a [`CheckoutRequest`] of domain types.

use domain::{
    Address, CheckoutError, CheckoutLine, Customer, EmailAddress,
    checkout::{is_test_payment_method, parse_lines, parse_payment_method, required_text},
};
use serde::{Deserialize, Serialize};
use settings::StripeMode;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// `POST /api/orders` as sent. Every field is optional here so that a missing one is reported by
/// name with a stable code instead of a generic deserialisation error.
#[derive(Debug, Clone, Deserialize)]
pub struct CheckoutBody {
    customer: Option<CustomerBody>,
    items: Option<Vec<ItemBody>>,
    payment_method: Option<String>,
    /// The total the page showed; the order is refused (`409 quote_changed`) when it would cost
    /// another amount.
    expected_total_minor: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
struct CustomerBody {
    name: Option<String>,
    email: Option<String>,
    address: Option<AddressBody>,
}

#[derive(Debug, Clone, Deserialize)]
struct AddressBody {
    line1: Option<String>,
    city: Option<String>,
    postal_code: Option<String>,
    country: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct ItemBody {
    product_id: i64,
    quantity: i64,
}

/// A checkout whose every field is valid; stock and prices are checked in the transaction.
#[derive(Debug, Clone)]
pub struct CheckoutRequest {
    /// The shopper.
    pub customer: Customer,
    /// The lines, sorted by product id.
    pub lines: Vec<CheckoutLine>,
    /// Stripe PaymentMethod id.
    pub payment_method: String,
    /// Whether the lines came from the session's cart (the body named no items).
    pub from_cart: bool,
    /// The total the shopper was shown, if the client sent it.
    pub expected_total_minor: Option<i64>,
}

impl CheckoutBody {
    /// Whether the body names its items (otherwise the cart is used).
    pub fn has_items(&self) -> bool {
        self.items.is_some()
    }

    /// Parses the body; `cart` supplies the lines when the body has none.
    ///
    /// # Errors
    /// A `422` [`ApiError`] naming the first invalid field.
    pub fn parse(self, cart: &[(i64, i64)]) -> Result<CheckoutRequest, ApiError> {
        let customer = self.parse_customer()?;
        let raw_lines: Vec<(i64, i64)> = match &self.items {
            Some(items) => raw(items),
            None => cart.to_vec(),
        };
        Ok(CheckoutRequest {
            customer,
            lines: parse_lines(&raw_lines).map_err(invalid)?,
            payment_method: self.parse_payment_method()?,
            from_cart: self.items.is_none(),
            expected_total_minor: self.expected_total_minor,
        })
    }

    /// The request's fingerprint (see [`CheckoutRequest::fingerprint`]), computed before the
    /// cart is read: a retried checkout is recognised before anything that depends on state.
    ///
    /// # Errors
    /// A `422` [`ApiError`] naming the first invalid field.
    pub fn fingerprint(&self) -> Result<String, ApiError> {
        let lines = match &self.items {
            Some(items) => Some(parse_lines(&raw(items)).map_err(invalid)?),
            None => None,
        };
        Ok(fingerprint(
            &self.parse_customer()?,
            lines.as_deref(),
            &self.parse_payment_method()?,
        ))
    }

    fn parse_customer(&self) -> Result<Customer, ApiError> {
        let customer = self
            .customer
            .as_ref()
            .ok_or(CheckoutError::MissingField("customer"))
            .map_err(invalid)?;
        let address = customer
            .address
            .as_ref()
            .ok_or(CheckoutError::MissingField("customer.address"))
            .map_err(invalid)?;
        Ok(Customer {
            name: required_text("customer.name", customer.name.as_deref()).map_err(invalid)?,
            email: EmailAddress::parse(customer.email.as_deref().unwrap_or_default())
                .map_err(invalid)?,
            address: Address::parse(
                address.line1.as_deref(),
                address.city.as_deref(),
                address.postal_code.as_deref(),
                address.country.as_deref(),
            )
            .map_err(invalid)?,
        })
    }

    fn parse_payment_method(&self) -> Result<String, ApiError> {
        parse_payment_method(self.payment_method.as_deref()).map_err(invalid)
    }

    /// Refuses Stripe's test-mode shortcuts (`pm_card_visa`, …) when the shop takes live
    /// payments (`mode`: the publishable key's). A live account does not know them: the order
    /// would hold its stock until billing failed it. In test mode (a `pk_test_` key, or none
    /// locally) they are Stripe's documented way to pay without a card form, and stay accepted.
    ///
    /// # Errors
    /// `422 test_payment_method_in_live_mode` for a test shortcut in live mode; anything else
    /// (a malformed value included) is left to [`CheckoutBody::parse`].
    pub fn refuse_test_method(&self, mode: Option<StripeMode>) -> Result<(), ApiError> {
        let shortcut = self
            .payment_method
            .as_deref()
            .is_some_and(|id| is_test_payment_method(id.trim()));
        if mode == Some(StripeMode::Live) && shortcut {
            return Err(ApiError::invalid(
                "test_payment_method_in_live_mode",
                "`payment_method` is one of Stripe's test payment methods, which do not exist \
                 in live mode: pay with a card entered in the payment form",
                Some("payment_method".into()),
            ));
        }
        Ok(())
    }
}

fn raw(items: &[ItemBody]) -> Vec<(i64, i64)> {
    items.iter().map(|i| (i.product_id, i.quantity)).collect()
}

impl CheckoutRequest {
    /// SHA-256 of the request in canonical form: equal for equal checkouts, whatever the JSON
    /// key order or whitespace. A checkout from the cart is fingerprinted by what its body says
    /// (customer, payment method, "from the cart"), not by the cart's lines: the first call
    /// empties the cart, so a retry after a lost answer must still be recognised; the lines it
    /// was made of are in the saved answer. A body that names its items is fingerprinted with
    /// them, so another basket under the same key is refused.
    pub fn fingerprint(&self) -> String {
        let lines = (!self.from_cart).then_some(self.lines.as_slice());
        fingerprint(&self.customer, lines, &self.payment_method)
    }
}

/// The canonical form's hash; `lines` is `None` for a checkout from the cart.
fn fingerprint(
    customer: &Customer,
    lines: Option<&[CheckoutLine]>,
    payment_method: &str,
) -> String {
    #[derive(Serialize)]
    struct Canonical<'a> {
        name: &'a str,
        email: &'a str,
        address: &'a Address,
        lines: Option<Vec<(i64, u32)>>,
        payment_method: &'a str,
    }
    let canonical = Canonical {
        name: &customer.name,
        email: customer.email.as_str(),
        address: &customer.address,
        lines: lines.map(|lines| {
            lines
                .iter()
                .map(|l| (l.product_id, l.quantity.get()))
                .collect()
        }),
        payment_method,
    };
    let json = serde_json::to_vec(&canonical).unwrap_or_default();
    hex::encode(Sha256::digest(json))
}

/// Maps a domain validation error to its `422` and stable code.
fn invalid(error: CheckoutError) -> ApiError {
    let (code, field): (&'static str, Option<String>) = match &error {
        CheckoutError::MissingField(field) => ("missing_field", Some((*field).into())),
        CheckoutError::FieldTooLong(field) => ("field_too_long", Some((*field).into())),
        CheckoutError::InvalidEmail(_) => ("invalid_email", Some("customer.email".into())),
        CheckoutError::InvalidCountry => {
            ("invalid_country", Some("customer.address.country".into()))
        }
        CheckoutError::InvalidQuantity { product_id, .. } => (
            "invalid_quantity",
            Some(format!("items.{product_id}.quantity")),
        ),
        CheckoutError::TooManyLines(_) => ("too_many_lines", Some("items".into())),
        CheckoutError::NoItems => ("empty_order", Some("items".into())),
        CheckoutError::DuplicateProduct(id) => ("duplicate_product", Some(format!("items.{id}"))),
        CheckoutError::InvalidPaymentMethod => {
            ("invalid_payment_method", Some("payment_method".into()))
        }
        CheckoutError::CardData => ("card_data_not_accepted", Some("payment_method".into())),
    };
    ApiError::invalid(code, error.to_string(), field)
}
