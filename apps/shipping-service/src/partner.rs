//! The shipping partner's API as this service uses it: book a shipment, once, however the
//! partner behaves, and cancel one.
//!
//! Every booking call of one event carries the same `Idempotency-Key`, so a retry — after a
//! timeout, a 5xx, a 429, or a crash of this process, in this call or in a later delivery of the
//! message — gets the shipment the partner already made instead of a second one. Calls time out
//! on their own; a few quick retries back off exponentially with jitter and honour
//! `Retry-After`, all within `deadline_ms`. Then the call gives up with
//! [`PartnerError::Unavailable`], carrying the partner's last `Retry-After`: the handler leaves
//! the message for a later delivery through the queue. An outage never becomes a refund.
//!
//! How answers are sorted:
//!
//! | answer | outcome |
//! | --- | --- |
//! | `2xx` | the shipment ([`Created::Shipment`]), or the cancelled one |
//! | `422 undeliverable_address`, `400` whose `field` starts with `recipient.` | the partner refuses the address ([`Created::Undeliverable`]): `shipment.failed`, refund |
//! | `5xx`, `429`, `408`, `401`, `403`, timeout, connection error | retried ([`PartnerError::Unavailable`] once the deadline is spent) |
//! | `409` on a cancel (`shipment_already_delivered`) | [`PartnerError::AlreadyDelivered`] |
//! | any other `4xx` (`409 idempotency_key_reused`: our bug) | [`PartnerError::Refused`]: parked |

use std::{
    future::Future,
    time::{Duration, Instant},
};

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

/// The partner's final answer to a booking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// The shipment exists.
    Shipment(Shipment),
    /// The partner refuses the address (`422 undeliverable_address`, or a `400` on a
    /// `recipient.` field), with its reason.
    Undeliverable(String),
}

/// Why no final answer came.
#[derive(Debug, thiserror::Error)]
pub enum PartnerError {
    /// The partner kept failing, rate-limiting, refusing our credentials or not answering until
    /// the deadline: worth trying again later.
    #[error(
        "the partner gave no final answer within the deadline after {attempts} attempts; last: {last}"
    )]
    Unavailable {
        /// Calls made.
        attempts: u32,
        /// What the last one returned.
        last: String,
        /// The partner's last `Retry-After`, if it gave one.
        retry_after: Option<Duration>,
    },
    /// The partner refused the request itself: trying again will fail the same way.
    #[error("the partner refused the request with {status} {code}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The partner's error code (empty when the body had none).
        code: String,
    },
    /// The shipment to cancel was delivered already.
    #[error("shipment {0} was delivered already and cannot be cancelled")]
    AlreadyDelivered(String),
    /// A 2xx answer whose body is not a shipment.
    #[error("the partner's answer could not be read")]
    Decode(#[source] reqwest::Error),
    /// The HTTP client could not be built.
    #[error("the HTTP client could not be built")]
    Client(#[source] reqwest::Error),
}

impl PartnerError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            PartnerError::Unavailable { .. } | PartnerError::Client(_)
        )
    }

    /// The partner's `Retry-After`, when it gave one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            PartnerError::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// One call's outcome.
enum Attempt<T> {
    Done(T),
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    Fail(PartnerError),
}

/// The partner's `{"error": {"code", "message", "field"}}` body.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: ErrorDetail,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    field: Option<String>,
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

    /// The settings the client runs with.
    pub fn settings(&self) -> &ShippingSettings {
        &self.settings
    }

    /// Books the shipment, retrying until a final answer or the deadline.
    ///
    /// # Errors
    /// [`PartnerError::Unavailable`] when no final answer came in time; the other variants
    /// when the partner's answer can never succeed.
    #[tracing::instrument(level = "debug", name = "partner.create_shipment", skip_all, fields(otel.kind = "client", peer.service = "shipping-partner"))]
    pub async fn create_shipment(
        &self,
        request: &ShipmentRequest,
        idempotency_key: &str,
    ) -> Result<Created, PartnerError> {
        let url = &format!("{}/v1/shipments", self.settings.partner_url);
        self.with_retries(|timeout| async move {
            let sent = self
                .http
                .post(url)
                .header("Idempotency-Key", idempotency_key)
                .timeout(timeout)
                .json(request)
                .send()
                .await;
            match sent {
                Ok(response) => created(response).await,
                Err(e) => retry_on(&e),
            }
        })
        .await
    }

    /// Cancels the shipment (idempotent: a shipment already cancelled answers the same), retrying
    /// until a final answer or the deadline.
    ///
    /// # Errors
    /// [`PartnerError::Unavailable`] when no final answer came in time,
    /// [`PartnerError::AlreadyDelivered`] when it is too late, the others when the partner
    /// refuses.
    #[tracing::instrument(level = "debug", name = "partner.cancel_shipment", skip_all, fields(otel.kind = "client", peer.service = "shipping-partner"))]
    pub async fn cancel_shipment(&self, shipment_id: &str) -> Result<(), PartnerError> {
        let url = &format!(
            "{}/v1/shipments/{shipment_id}/cancel",
            self.settings.partner_url
        );
        self.with_retries(|timeout| async move {
            let sent = self.http.post(url).timeout(timeout).send().await;
            match sent {
                Ok(response) => cancelled(response, shipment_id).await,
                Err(e) => retry_on(&e),
            }
        })
        .await
    }

    /// Runs `attempt` (given its timeout) until it is done or fails for good, or until the next
    /// try would start after the deadline. The error names the partner's last answer: an attempt
    /// the deadline cut short reports the one before it.
    async fn with_retries<T, F, Fut>(&self, mut attempt: F) -> Result<T, PartnerError>
    where
        F: FnMut(Duration) -> Fut,
        Fut: Future<Output = Attempt<T>>,
    {
        let deadline = Instant::now() + Duration::from_millis(self.settings.deadline_ms);
        let per_attempt = Duration::from_millis(self.settings.attempt_timeout_ms);
        let mut attempts = 0;
        let mut previous: Option<String> = None;
        loop {
            attempts += 1;
            let left = deadline.saturating_duration_since(Instant::now());
            let timeout = left.min(per_attempt);
            let (after, reason) = match attempt(timeout).await {
                Attempt::Done(done) => return Ok(done),
                Attempt::Fail(error) => return Err(error),
                Attempt::Retry { after, reason } => (after, reason),
            };
            // An attempt the deadline cut short failed on our clock, not the partner's: the
            // partner's last answer is the one before it, and that is what the operator needs.
            let cut_short = timeout < per_attempt && Instant::now() >= deadline;
            let reason = match previous.take() {
                Some(answer) if cut_short => answer,
                _ => reason,
            };
            let delay = after.unwrap_or_else(|| self.backoff(attempts));
            if Instant::now() + delay >= deadline {
                return Err(PartnerError::Unavailable {
                    attempts,
                    last: reason,
                    retry_after: after,
                });
            }
            tracing::info!(
                attempts,
                delay_ms = delay.as_millis() as u64,
                reason,
                "retrying the partner call"
            );
            previous = Some(reason);
            tokio::time::sleep(delay).await;
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

/// A booking's answer sorted.
async fn created(response: reqwest::Response) -> Attempt<Created> {
    let status = response.status();
    if status.is_success() {
        return match response.json::<Shipment>().await {
            Ok(shipment) => Attempt::Done(Created::Shipment(shipment)),
            Err(e) => unreadable(e),
        };
    }
    if is_transient(status) {
        return retry_after(&response, status);
    }
    let detail = match error_detail(response).await {
        Ok(detail) => detail,
        Err(retry) => return retry,
    };
    let address_refused = (status == StatusCode::UNPROCESSABLE_ENTITY
        && detail.code == "undeliverable_address")
        || (status == StatusCode::BAD_REQUEST
            && detail
                .field
                .as_deref()
                .is_some_and(|f| f.starts_with("recipient.")));
    if address_refused {
        let reason = if detail.message.is_empty() {
            format!("the partner refused the address with {status}")
        } else {
            detail.message
        };
        return Attempt::Done(Created::Undeliverable(reason));
    }
    Attempt::Fail(PartnerError::Refused {
        status: status.as_u16(),
        code: detail.code,
    })
}

/// A cancellation's answer sorted.
async fn cancelled(response: reqwest::Response, shipment_id: &str) -> Attempt<()> {
    let status = response.status();
    if status.is_success() {
        return Attempt::Done(());
    }
    if is_transient(status) {
        return retry_after(&response, status);
    }
    let detail = match error_detail(response).await {
        Ok(detail) => detail,
        Err(retry) => return retry,
    };
    if status == StatusCode::CONFLICT && detail.code == "shipment_already_delivered" {
        return Attempt::Fail(PartnerError::AlreadyDelivered(shipment_id.to_owned()));
    }
    Attempt::Fail(PartnerError::Refused {
        status: status.as_u16(),
        code: detail.code,
    })
}

/// Statuses that say nothing about the request itself: the partner is down, overloaded,
/// rate-limiting, or does not take our credentials right now (a rotated key, say).
fn is_transient(status: StatusCode) -> bool {
    status.is_server_error()
        || matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS
                | StatusCode::REQUEST_TIMEOUT
                | StatusCode::UNAUTHORIZED
                | StatusCode::FORBIDDEN
        )
}

/// A request that got no (full) answer: retried, whatever happened to it at the partner.
fn retry_on<T>(error: &reqwest::Error) -> Attempt<T> {
    Attempt::Retry {
        after: None,
        reason: telemetry::error_chain(error),
    }
}

/// A 2xx whose body did not arrive in time is retried; one that is not what was asked, not.
fn unreadable<T>(error: reqwest::Error) -> Attempt<T> {
    if error.is_timeout() || error.is_body() {
        Attempt::Retry {
            after: None,
            reason: "the answer did not arrive in full".into(),
        }
    } else {
        Attempt::Fail(PartnerError::Decode(error))
    }
}

fn retry_after<T>(response: &reqwest::Response, status: StatusCode) -> Attempt<T> {
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

/// The error body of a 4xx; one that does not arrive in time is retried, one that is not the
/// partner's error JSON reads as empty.
async fn error_detail<T>(response: reqwest::Response) -> Result<ErrorDetail, Attempt<T>> {
    let status = response.status();
    match response.bytes().await {
        Ok(body) => Ok(serde_json::from_slice::<ErrorBody>(&body)
            .unwrap_or_default()
            .error),
        Err(e) => Err(Attempt::Retry {
            after: None,
            reason: format!(
                "the partner answered {status}; its body: {}",
                telemetry::error_chain(&e)
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(attempt_timeout_ms: u64, deadline_ms: u64) -> PartnerClient {
        let settings = ShippingSettings {
            attempt_timeout_ms,
            deadline_ms,
            backoff_base_ms: 1,
            backoff_max_ms: 1,
            ..ShippingSettings::default()
        };
        PartnerClient::new(&settings).expect("client")
    }

    #[tokio::test]
    async fn an_attempt_the_deadline_cuts_short_reports_the_partners_answer_before_it() {
        let client = client(10_000, 300);
        let mut calls = 0;
        let failed = client
            .with_retries(|timeout| {
                calls += 1;
                let first = calls == 1;
                async move {
                    if first {
                        return Attempt::<()>::Retry {
                            after: None,
                            reason: "503 Service Unavailable".into(),
                        };
                    }
                    // The rest of the deadline runs out inside this attempt.
                    tokio::time::sleep(timeout).await;
                    Attempt::Retry {
                        after: None,
                        reason: "operation timed out".into(),
                    }
                }
            })
            .await;
        match failed {
            Err(PartnerError::Unavailable { last, attempts, .. }) => {
                assert_eq!(last, "503 Service Unavailable");
                assert_eq!(attempts, 2);
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_first_attempt_that_times_out_on_its_own_clock_says_so() {
        let client = client(50, 30);
        let failed = client
            .with_retries(|timeout| async move {
                tokio::time::sleep(timeout).await;
                Attempt::<()>::Retry {
                    after: None,
                    reason: "operation timed out".into(),
                }
            })
            .await;
        match failed {
            Err(PartnerError::Unavailable { last, .. }) => {
                assert_eq!(last, "operation timed out")
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }
}
