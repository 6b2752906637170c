//! The shipping partner's API as this service uses it: create a shipment, once, however the
//! partner behaves.
//!
//! Every call carries the same `Idempotency-Key`, so a retry — after a timeout, a 5xx, a 429, or
//! a crash of this process — gets the shipment the partner already made instead of a second one.
//! Calls time out on their own; retries back off exponentially with jitter and honour
//! `Retry-After`; the whole effort has a deadline, after which the shipment counts as failed.

use std::time::{Duration, Instant};

use reqwest::{StatusCode, header::RETRY_AFTER};
use serde::{Deserialize, Serialize};
use settings::ShippingSettings;

/// Where the parcel goes.
#[derive(Debug, Clone, Serialize)]
pub struct Recipient {
    /// The recipient's name.
    pub name: String,
    /// Street line.
    pub line1: String,
    /// Postal code.
    pub postal_code: String,
    /// City.
    pub city: String,
    /// ISO country code.
    pub country: String,
}

/// What the partner is asked to ship.
#[derive(Debug, Clone, Serialize)]
pub struct ShipmentRequest {
    /// Our reference: the order id.
    pub reference: String,
    /// The address.
    pub recipient: Recipient,
}

/// A shipment the partner created.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Shipment {
    /// The partner's shipment id.
    pub id: String,
    /// The carrier.
    pub carrier: String,
    /// The partner's tracking number.
    pub tracking_number: String,
    /// Where to follow the parcel.
    pub tracking_url: Option<String>,
}

/// The partner's final answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// The shipment exists.
    Shipment(Shipment),
    /// The partner cannot deliver to this address (422), with its reason.
    Undeliverable(String),
}

/// Why no final answer came.
#[derive(Debug, thiserror::Error)]
pub enum PartnerError {
    /// The deadline passed while the partner kept failing or not answering.
    #[error(
        "the partner gave no answer within the deadline after {attempts} attempts; last: {last}"
    )]
    DeadlineExceeded {
        /// Calls made.
        attempts: u32,
        /// What the last one returned.
        last: String,
    },
    /// The partner refused the request itself (a 4xx other than 408, 422 and 429).
    #[error("the partner refused the request with {status}")]
    Refused {
        /// The HTTP status.
        status: u16,
    },
    /// A 2xx answer whose body is not a shipment.
    #[error("the partner's answer could not be read")]
    Decode(#[source] reqwest::Error),
    /// The HTTP client could not be built.
    #[error("the HTTP client could not be built")]
    Client(#[source] reqwest::Error),
}

/// One call's outcome.
enum Attempt {
    Done(Created),
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    Fail(PartnerError),
}

/// A client of the partner API.
#[derive(Debug, Clone)]
pub struct PartnerClient {
    http: reqwest::Client,
    settings: ShippingSettings,
}

impl PartnerClient {
    /// A client for the configured partner.
    ///
    /// # Errors
    /// [`PartnerError::Client`] when the HTTP client cannot be built.
    pub fn new(settings: &ShippingSettings) -> Result<Self, PartnerError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(settings.attempt_timeout_ms))
            .build()
            .map_err(PartnerError::Client)?;
        Ok(PartnerClient {
            http,
            settings: settings.clone(),
        })
    }

    /// Creates the shipment, retrying until a final answer or the deadline.
    ///
    /// # Errors
    /// [`PartnerError::DeadlineExceeded`] when no final answer came in time; the other variants
    /// when the partner's answer can never succeed.
    pub async fn create_shipment(
        &self,
        request: &ShipmentRequest,
        idempotency_key: &str,
    ) -> Result<Created, PartnerError> {
        let deadline = Instant::now() + Duration::from_millis(self.settings.deadline_ms);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let left = deadline.saturating_duration_since(Instant::now());
            let (after, reason) = match self.attempt(request, idempotency_key, left).await {
                Attempt::Done(created) => return Ok(created),
                Attempt::Fail(error) => return Err(error),
                Attempt::Retry { after, reason } => (after, reason),
            };
            let delay = after.unwrap_or_else(|| self.backoff(attempts));
            if Instant::now() + delay >= deadline {
                return Err(PartnerError::DeadlineExceeded {
                    attempts,
                    last: reason,
                });
            }
            tracing::info!(
                attempts,
                delay_ms = delay.as_millis() as u64,
                reason,
                "retrying the partner call"
            );
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt(&self, request: &ShipmentRequest, key: &str, left: Duration) -> Attempt {
        let timeout = left.min(Duration::from_millis(self.settings.attempt_timeout_ms));
        let sent = self
            .http
            .post(format!("{}/v1/shipments", self.settings.partner_url))
            .header("Idempotency-Key", key)
            .timeout(timeout)
            .json(request)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => {
                return Attempt::Retry {
                    after: None,
                    reason: telemetry::error_chain(&e),
                };
            }
        };
        let status = response.status();
        match status {
            s if s.is_success() => match response.json::<Shipment>().await {
                Ok(shipment) => Attempt::Done(Created::Shipment(shipment)),
                Err(e) if e.is_timeout() => Attempt::Retry {
                    after: None,
                    reason: "timed out reading the answer".into(),
                },
                Err(e) => Attempt::Fail(PartnerError::Decode(e)),
            },
            StatusCode::UNPROCESSABLE_ENTITY => {
                Attempt::Done(Created::Undeliverable(reason_of(response).await))
            }
            StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT => {
                retry_after(&response, status)
            }
            s if s.is_server_error() => retry_after(&response, status),
            s => Attempt::Fail(PartnerError::Refused { status: s.as_u16() }),
        }
    }

    /// `base × 2^(attempt − 1)`, capped, then a uniformly random share of 50–100 % of it.
    fn backoff(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(16);
        let full = self
            .settings
            .backoff_base_ms
            .saturating_mul(1 << exponent)
            .min(self.settings.backoff_max_ms);
        let jittered = full as f64 * (0.5 + rand::random::<f64>() / 2.0);
        Duration::from_millis(jittered as u64)
    }
}

fn retry_after(response: &reqwest::Response, status: StatusCode) -> Attempt {
    let after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    Attempt::Retry {
        after,
        reason: format!("the partner answered {status}"),
    }
}

/// The partner's error message from a `{"error": {"message": …}}` body, or the status.
async fn reason_of(response: reqwest::Response) -> String {
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    body["error"]["message"]
        .as_str()
        .map_or_else(|| format!("the partner answered {status}"), str::to_owned)
}
