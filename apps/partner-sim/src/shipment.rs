//! Shipments as the partner API knows them: the request body parsed into a [`NewShipment`]
//! ("parse, don't validate"), the `Idempotency-Key`, and the booked [`Shipment`] with its
//! [`Status`].

use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ApiError;

/// The carrier every simulated shipment goes with.
pub const CARRIER: &str = "ParcelNet";
/// Where tracking numbers can be followed (an address that resolves nowhere).
pub const TRACKING_BASE_URL: &str = "https://track.example/";
/// The longest text field accepted, in characters.
pub const MAX_TEXT_CHARS: usize = 200;
/// The most parcels in one shipment.
pub const MAX_PARCELS: i64 = 20;
/// The longest `Idempotency-Key`, in bytes.
pub const MAX_KEY_LEN: usize = 255;

/// `POST /v1/shipments` as sent. A missing text field reads as empty and is reported by name.
#[derive(Debug, Deserialize)]
pub struct ShipmentBody {
    #[serde(default)]
    reference: String,
    #[serde(default)]
    recipient: RecipientBody,
    parcels: Option<i64>,
}

/// The recipient as sent.
#[derive(Debug, Default, Deserialize)]
struct RecipientBody {
    #[serde(default)]
    name: String,
    #[serde(default)]
    line1: String,
    #[serde(default)]
    postal_code: String,
    #[serde(default)]
    city: String,
    #[serde(default)]
    country: String,
}

/// A checked shipment request. Two requests are the same when these are equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewShipment {
    /// The client's reference (the order id), exactly as sent.
    pub reference: String,
    /// Where the parcels go.
    pub recipient: Recipient,
    /// How many parcels (1 when not given).
    pub parcels: u8,
}

/// A checked address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// Name.
    pub name: String,
    /// Street line.
    pub line1: String,
    /// Postal code.
    pub postal_code: String,
    /// City.
    pub city: String,
    /// ISO 3166-1 alpha-2 code, upper case.
    pub country: String,
}

impl ShipmentBody {
    /// Checks every field and that the partner delivers there.
    ///
    /// # Errors
    /// `400` with `missing_field`, `field_too_long`, `invalid_country` or `invalid_parcels` and
    /// the field's name; `422 undeliverable_address` for country `ZZ` or a postal code that
    /// starts with `000`.
    pub fn parse(self) -> Result<NewShipment, ApiError> {
        let shipment = NewShipment {
            reference: text("reference", self.reference)?,
            recipient: self.recipient.parse()?,
            parcels: parcels(self.parcels)?,
        };
        shipment.recipient.ensure_deliverable()?;
        Ok(shipment)
    }
}

impl RecipientBody {
    fn parse(self) -> Result<Recipient, ApiError> {
        Ok(Recipient {
            name: text("recipient.name", self.name)?,
            line1: text("recipient.line1", self.line1)?,
            postal_code: text("recipient.postal_code", self.postal_code)?,
            city: text("recipient.city", self.city)?,
            country: country(self.country)?,
        })
    }
}

impl Recipient {
    fn ensure_deliverable(&self) -> Result<(), ApiError> {
        if self.country == "ZZ" {
            return Err(ApiError::Undeliverable(
                "the partner does not deliver to country ZZ".into(),
            ));
        }
        if self.postal_code.trim_start().starts_with("000") {
            return Err(ApiError::Undeliverable(format!(
                "postal code {} is not served",
                self.postal_code.trim()
            )));
        }
        Ok(())
    }
}

fn text(field: &'static str, value: String) -> Result<String, ApiError> {
    if value.trim().is_empty() {
        let message = format!("{field} is required");
        return Err(ApiError::bad_request("missing_field", message, Some(field)));
    }
    if value.chars().count() > MAX_TEXT_CHARS {
        let message = format!("{field} is longer than {MAX_TEXT_CHARS} characters");
        return Err(ApiError::bad_request(
            "field_too_long",
            message,
            Some(field),
        ));
    }
    Ok(value)
}

fn country(value: String) -> Result<String, ApiError> {
    const FIELD: &str = "recipient.country";
    let code = text(FIELD, value)?.trim().to_ascii_uppercase();
    if code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()) {
        return Ok(code);
    }
    let message = "recipient.country must be a two-letter ISO 3166-1 code";
    Err(ApiError::bad_request(
        "invalid_country",
        message,
        Some(FIELD),
    ))
}

fn parcels(value: Option<i64>) -> Result<u8, ApiError> {
    match value.unwrap_or(1) {
        n @ 1..=MAX_PARCELS => Ok(u8::try_from(n).unwrap_or(u8::MAX)),
        _ => Err(ApiError::bad_request(
            "invalid_parcels",
            format!("parcels must be from 1 to {MAX_PARCELS}"),
            Some("parcels"),
        )),
    }
}

/// The `Idempotency-Key` header: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The key of a request.
    ///
    /// # Errors
    /// `400 idempotency_key_missing` without the header; `400 idempotency_key_invalid` when it
    /// is empty, too long or not visible ASCII.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, ApiError> {
        let Some(value) = headers.get("idempotency-key") else {
            return Err(ApiError::bad_request(
                "idempotency_key_missing",
                "the Idempotency-Key header is required",
                None,
            ));
        };
        let bytes = value.as_bytes();
        let visible = bytes.iter().all(|b| b.is_ascii_graphic());
        if bytes.is_empty() || bytes.len() > MAX_KEY_LEN || !visible {
            return Err(ApiError::bad_request(
                "idempotency_key_invalid",
                format!("the Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters"),
                None,
            ));
        }
        Ok(IdempotencyKey(String::from_utf8_lossy(bytes).into_owned()))
    }
}

/// A booked shipment, as the API answers it.
#[derive(Debug, Clone, Serialize)]
pub struct Shipment {
    /// `shp_…`.
    pub id: String,
    /// The client's reference.
    pub reference: String,
    /// Always [`CARRIER`].
    pub carrier: &'static str,
    /// `PN` and twelve digits.
    pub tracking_number: String,
    /// [`TRACKING_BASE_URL`] and the tracking number.
    pub tracking_url: String,
    /// Where the parcel is.
    pub status: Status,
    /// When it was booked.
    pub created_at: DateTime<Utc>,
    /// When it was delivered (absent until then).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<DateTime<Utc>>,
    /// When it was cancelled (absent unless it was).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancelled_at: Option<DateTime<Utc>>,
}

/// The life of a shipment: `created`, then `delivered` after the delivery delay, unless it is
/// `cancelled` first. Both ends are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Booked, on its way.
    Created,
    /// Handed to the recipient.
    Delivered,
    /// Called off before delivery.
    Cancelled,
}

impl Shipment {
    /// Books `request` now, with a fresh id and tracking number.
    pub fn book(request: &NewShipment) -> Self {
        let tracking_number = format!("PN{:012}", Uuid::new_v4().as_u128() % 1_000_000_000_000);
        Shipment {
            id: format!("shp_{}", Uuid::new_v4().simple()),
            reference: request.reference.clone(),
            carrier: CARRIER,
            tracking_url: format!("{TRACKING_BASE_URL}{tracking_number}"),
            tracking_number,
            status: Status::Created,
            created_at: Utc::now(),
            delivered_at: None,
            cancelled_at: None,
        }
    }
}
