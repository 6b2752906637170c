//! Where delivery notifications go and how one is sent: a `POST` of the event's JSON to the
//! callback URL, signed in the `Partner-Signature` header.
//!
//! The header is `t=<unix seconds>,v1=<hex>`, where `<hex>` is the lower-case hex HMAC-SHA256,
//! keyed with the callback secret (its UTF-8 bytes), of the timestamp's decimal digits, a `.`
//! and the raw request body. Each attempt is signed afresh with its own timestamp.
//!
//! One attempt waits [`ATTEMPT_TIMEOUT`] at most; a failed one is retried after [`backoff`],
//! up to [`MAX_ATTEMPTS`] in all (see `delivery`).

use std::{fmt, str::FromStr, time::Duration};

use hmac::{Hmac, Mac};
use reqwest::{
    Client, StatusCode, Url,
    header::{CONTENT_TYPE, HeaderName},
    redirect,
};
use sha2::Sha256;

use crate::delivery::Event;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: HeaderName = HeaderName::from_static("partner-signature");
/// How long one attempt may take, connection included.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per event, the first included.
pub const MAX_ATTEMPTS: u32 = 8;
/// The wait after the first failed attempt; it doubles after each further one.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The key of the signatures. Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `secret`.
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    /// Whether the secret is empty (and so no secret).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(secret: &str) -> Result<Self, Self::Err> {
        Ok(Secret::new(secret))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// Why callbacks cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    /// The callback URL is neither `http` nor `https`.
    #[error("the callback URL must be http or https, not {0}")]
    Scheme(String),
    /// The secret is empty.
    #[error("the callback secret must not be empty")]
    EmptySecret,
    /// The HTTP client could not be built.
    #[error("cannot build the callback HTTP client")]
    Client(#[source] reqwest::Error),
}

/// Why one attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    /// The receiver answered, but not with a `2xx`.
    #[error("the receiver answered {0}")]
    Status(StatusCode),
    /// No answer: connection refused or cut, or no answer within [`ATTEMPT_TIMEOUT`].
    #[error("no answer from the receiver")]
    Transport(#[from] reqwest::Error),
}

/// A callback URL, its secret, and the client that posts to it.
#[derive(Debug, Clone)]
pub struct Callback {
    url: Url,
    secret: Secret,
    client: Client,
}

impl Callback {
    /// Callbacks to `url`, signed with `secret`.
    ///
    /// # Errors
    /// [`CallbackError`] for a URL that is not `http(s)`, an empty secret, or a client that
    /// cannot be built.
    pub fn new(url: Url, secret: Secret) -> Result<Self, CallbackError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(CallbackError::Scheme(url.scheme().to_owned()));
        }
        if secret.is_empty() {
            return Err(CallbackError::EmptySecret);
        }
        let client = Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .redirect(redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(CallbackError::Client)?;
        Ok(Callback {
            url,
            secret,
            client,
        })
    }

    /// Where the callbacks go.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Posts `event` once, signed now.
    ///
    /// # Errors
    /// [`AttemptError`] unless the receiver answered a `2xx` in time.
    pub async fn post(&self, event: &Event) -> Result<(), AttemptError> {
        let timestamp = chrono::Utc::now().timestamp();
        let response = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, sign(&self.secret, timestamp, &event.body))
            .body(event.body.clone())
            .send()
            .await?;
        match response.status() {
            status if status.is_success() => Ok(()),
            status => Err(AttemptError::Status(status)),
        }
    }
}

/// The `Partner-Signature` value for `body` sent at `timestamp` (unix seconds).
pub fn sign(secret: &Secret, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.0.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    format!("t={timestamp},v1={}", hex::encode(tag))
}

/// The wait after failed attempt number `attempt` (from 1): 500 ms, doubling, at most 30 s.
pub fn backoff(attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
    FIRST_BACKOFF.saturating_mul(factor).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_starts_at_half_a_second_doubles_and_stops_at_thirty_seconds() {
        let waits: Vec<u64> = (1..=9).map(|n| backoff(n).as_millis() as u64).collect();

        assert_eq!(
            waits,
            [
                500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000
            ]
        );
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn the_signature_is_the_hex_hmac_of_the_timestamp_a_dot_and_the_body() {
        let header = sign(
            &Secret::new("whsec_test"),
            1_700_000_000,
            br#"{"id":"evt_1"}"#,
        );

        // Computed apart: Python's hmac.new(key, b'1700000000.{"id":"evt_1"}', sha256).
        let expected = "c89214b5b5da833daed6f0b8c5bb6bd58cea9022bd80ccc78230f3942d632925";
        assert_eq!(header, format!("t=1700000000,v1={expected}"));
    }

    #[test]
    fn a_callback_needs_an_http_url_and_a_secret() {
        let url = |s: &str| Url::parse(s).unwrap();

        assert!(Callback::new(url("http://127.0.0.1:9/hook"), Secret::new("s")).is_ok());
        assert!(matches!(
            Callback::new(url("ftp://127.0.0.1/hook"), Secret::new("s")),
            Err(CallbackError::Scheme(_))
        ));
        assert!(matches!(
            Callback::new(url("http://127.0.0.1:9/hook"), Secret::new("")),
            Err(CallbackError::EmptySecret)
        ));
        assert_eq!(format!("{:?}", Secret::new("hush")), "Secret(…)");
    }
}
