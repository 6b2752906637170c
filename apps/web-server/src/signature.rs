//! Checking a webhook signature header — Stripe's `Stripe-Signature` and the shipping
//! partner's `Partner-Signature` use the same scheme: `t=<unix time>,v1=<hex HMAC-SHA256>`
//! (possibly several `v1` entries while a secret is being rolled), where the MAC is over
//! `"<t>.<raw body>"` with the endpoint's signing secret. The comparison is constant-time; a timestamp further than the
//! tolerance from now is refused so that a captured request cannot be replayed later.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No signature header.
    #[error("the signature header is missing")]
    Missing,
    /// The header has no timestamp or no `v1` signature.
    #[error("the signature header is malformed")]
    Malformed,
    /// The timestamp is outside the tolerance.
    #[error("the signature's timestamp is outside the tolerance")]
    Stale,
    /// No `v1` signature matches.
    #[error("no signature matches the payload")]
    Mismatch,
}

/// Checks `header` for `payload` with `secret`, at time `now` (unix seconds).
///
/// # Errors
/// [`SignatureError`] saying what is wrong.
pub fn verify(
    payload: &[u8],
    header: Option<&str>,
    secret: &str,
    now: i64,
    tolerance_s: i64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let (timestamp, signatures) = parse(header)?;
    if (now - timestamp).abs() > tolerance_s {
        return Err(SignatureError::Stale);
    }
    let matches = signatures.iter().any(|signature| {
        let mac = mac(secret, timestamp, payload);
        hex::decode(signature).is_ok_and(|bytes| mac.verify_slice(&bytes).is_ok())
    });
    if matches {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The header value Stripe (or the partner) would send for `payload` at `timestamp` (for tests and tools).
pub fn sign(payload: &[u8], secret: &str, timestamp: i64) -> String {
    let tag = mac(secret, timestamp, payload).finalize().into_bytes();
    format!("t={timestamp},v1={}", hex::encode(tag))
}

fn mac(secret: &str, timestamp: i64, payload: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac
}

fn parse(header: &str) -> Result<(i64, Vec<&str>), SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => signatures.push(value),
            _ => {}
        }
    }
    match (timestamp, signatures.is_empty()) {
        (Some(t), false) => Ok((t, signatures)),
        _ => Err(SignatureError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test";
    const BODY: &[u8] = br#"{"id":"evt_1","type":"payment_intent.succeeded"}"#;

    #[test]
    fn a_signature_made_with_the_secret_is_accepted() {
        let header = sign(BODY, SECRET, 1_000);
        assert_eq!(verify(BODY, Some(&header), SECRET, 1_010, 300), Ok(()));
    }

    #[test]
    fn a_forged_or_tampered_signature_is_refused() {
        let header = sign(BODY, "whsec_other", 1_000);
        assert_eq!(
            verify(BODY, Some(&header), SECRET, 1_000, 300),
            Err(SignatureError::Mismatch)
        );
        let header = sign(BODY, SECRET, 1_000);
        assert_eq!(
            verify(b"{}", Some(&header), SECRET, 1_000, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_stale_or_future_timestamp_is_refused() {
        let header = sign(BODY, SECRET, 1_000);
        assert_eq!(
            verify(BODY, Some(&header), SECRET, 1_301, 300),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(BODY, Some(&header), SECRET, 699, 300),
            Err(SignatureError::Stale)
        );
    }

    #[test]
    fn a_missing_or_malformed_header_is_refused() {
        assert_eq!(
            verify(BODY, None, SECRET, 0, 300),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(BODY, Some("v1=abc"), SECRET, 0, 300),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(BODY, Some("t=5"), SECRET, 5, 300),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(BODY, Some("t=5,v1=zz"), SECRET, 5, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn any_of_several_v1_signatures_may_match_while_a_secret_is_rolled() {
        let good = sign(BODY, SECRET, 1_000);
        let v1 = good.split("v1=").nth(1).unwrap();
        let header = format!("t=1000,v1={},v1={v1}", "00".repeat(32));
        assert_eq!(verify(BODY, Some(&header), SECRET, 1_000, 300), Ok(()));
    }
}
