//! PaymentIntents as the web-server reads them, and what one says about its order's payment.
//!
//! The web-server learns a payment's end from two sources: Stripe's webhook
//! ([`crate::stripe::webhook`]) and, for a payment that waited for the shopper's 3-D Secure,
//! the order page's "I have confirmed" call ([`crate::stripe::action`]), which reads the intent
//! from Stripe. Both turn the intent into an outcome here, by one function ([`outcome`]), so
//! that both paths say the same about the same intent.
//!
//! [`StripeReader`] makes the one call the web-server needs, `GET /v1/payment_intents/{id}`,
//! with reqwest and the secret key, and keeps the answer as JSON: async-stripe's typed client
//! (billing's) would add a large dependency to the web-server for a single read whose fields
//! [`outcome`] reads from the webhook's JSON anyway.

use std::time::Duration;

use domain::Currency;
use orders::payments::PaymentOutcome;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use settings::StripeSettings;
use uuid::Uuid;

/// Why a PaymentIntent could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StripeReadError {
    /// Stripe was unreachable, too slow, or its answer was not JSON.
    #[error("Stripe could not be reached")]
    Unreachable(#[from] reqwest::Error),
    /// Stripe answered with an error status.
    #[error("Stripe answered HTTP {0}")]
    Refused(u16),
}

/// Reads PaymentIntents from Stripe's API with the secret key (`APP__STRIPE__API_BASE`,
/// `APP__STRIPE__SECRET_KEY`, `APP__STRIPE__TIMEOUT_MS`).
#[derive(Clone)]
pub struct StripeReader {
    client: reqwest::Client,
    api_base: String,
    secret_key: SecretString,
}

impl std::fmt::Debug for StripeReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeReader")
            .field("api_base", &self.api_base)
            .finish_non_exhaustive()
    }
}

impl StripeReader {
    /// A reader for `settings`' API.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (its TLS set-up failed).
    pub fn new(settings: &StripeSettings) -> Result<Self, StripeReadError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.timeout_ms))
            .build()?;
        Ok(StripeReader {
            client,
            api_base: settings.api_base.trim_end_matches('/').to_owned(),
            secret_key: settings.secret_key.clone(),
        })
    }

    /// The PaymentIntent `id` (a `pi_…` id from our own payments table), as Stripe's JSON.
    ///
    /// # Errors
    /// [`StripeReadError`] when Stripe cannot be reached or refuses.
    pub async fn payment_intent(&self, id: &str) -> Result<Value, StripeReadError> {
        let url = format!("{}/v1/payment_intents/{id}", self.api_base);
        let response = self
            .client
            .get(url)
            .basic_auth(self.secret_key.expose_secret(), None::<&str>)
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            return Err(StripeReadError::Refused(status.as_u16()));
        }
        Ok(response.json().await?)
    }
}

/// How a payment ended, as Stripe tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Charged (`payment_intent.succeeded`; status `succeeded`).
    Succeeded,
    /// Declined or not authenticated (`payment_intent.payment_failed`; status
    /// `requires_payment_method` with a `last_payment_error`).
    Failed,
}

/// What a PaymentIntent's status says, `None` while it has no end yet (it still waits for the
/// shopper, is processing, or was cancelled — by billing, for a cancelled order, which has no
/// outcome to apply).
pub fn verdict(intent: &Value) -> Option<Verdict> {
    match intent["status"].as_str()? {
        "succeeded" => Some(Verdict::Succeeded),
        "requires_payment_method" if intent["last_payment_error"].is_object() => {
            Some(Verdict::Failed)
        }
        _ => None,
    }
}

/// The order a PaymentIntent of ours was made for (its `metadata.order_id`).
pub fn order_of(intent: &Value) -> Option<Uuid> {
    intent["metadata"]["order_id"].as_str()?.parse().ok()
}

/// The order and the outcome of `intent` ended as `verdict` says, if it is one of ours.
pub fn outcome(intent: &Value, verdict: Verdict) -> Option<(Uuid, PaymentOutcome)> {
    let order_id = order_of(intent)?;
    let payment_intent_id = intent["id"].as_str()?.to_owned();
    let amount_minor = intent["amount"].as_i64()?;
    let currency = Currency::parse(&intent["currency"].as_str()?.to_uppercase()).ok()?;
    let outcome = match verdict {
        Verdict::Succeeded => PaymentOutcome::Succeeded {
            payment_intent_id,
            amount_minor,
            currency,
        },
        Verdict::Failed => {
            let reason = intent["last_payment_error"]["message"]
                .as_str()
                .unwrap_or("the payment was declined")
                .to_owned();
            PaymentOutcome::Failed {
                payment_intent_id,
                reason,
                amount_minor,
                currency,
            }
        }
    };
    Some((order_id, outcome))
}

/// Where the shopper authenticates the payment without Stripe.js, if the intent says: a
/// `redirect_to_url` next action's URL, or the page of a `use_stripe_sdk` 3-D Secure redirect
/// (the local fake Stripe's test bank puts its page there).
pub fn redirect_url(intent: &Value) -> Option<&str> {
    let next = &intent["next_action"];
    [
        &next["redirect_to_url"]["url"],
        &next["use_stripe_sdk"]["stripe_js"],
    ]
    .into_iter()
    .filter_map(Value::as_str)
    .find(|url| url.starts_with("https://") || url.starts_with("http://"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn intent(status: &str, error: Value) -> Value {
        json!({
            "id": "pi_1", "status": status, "amount": 3900, "currency": "eur",
            "metadata": {"order_id": Uuid::nil().to_string()},
            "last_payment_error": error,
        })
    }

    #[test]
    fn only_a_succeeded_or_refused_intent_has_a_verdict() {
        let failed = json!({"message": "The provided PaymentMethod has failed authentication."});
        assert_eq!(
            verdict(&intent("succeeded", Value::Null)),
            Some(Verdict::Succeeded)
        );
        assert_eq!(
            verdict(&intent("requires_payment_method", failed)),
            Some(Verdict::Failed)
        );
        for waiting in [
            "requires_action",
            "processing",
            "canceled",
            "requires_payment_method",
        ] {
            assert_eq!(verdict(&intent(waiting, Value::Null)), None, "{waiting}");
        }
    }

    #[test]
    fn a_failed_intent_gives_stripes_message_as_the_reason() {
        let failed = json!({"message": "The provided PaymentMethod has failed authentication."});
        let (order_id, outcome) =
            outcome(&intent("requires_payment_method", failed), Verdict::Failed).unwrap();
        assert_eq!(order_id, Uuid::nil());
        assert!(matches!(
            outcome,
            PaymentOutcome::Failed { reason, amount_minor: 3900, .. }
                if reason == "The provided PaymentMethod has failed authentication."
        ));
    }

    #[test]
    fn the_redirect_url_comes_from_either_kind_of_next_action_and_only_as_http() {
        let sdk = json!({"next_action": {"type": "use_stripe_sdk", "use_stripe_sdk": {
            "type": "three_d_secure_redirect", "stripe_js": "http://127.0.0.1:8420/_test_bank/pi_1"}}});
        assert_eq!(
            redirect_url(&sdk),
            Some("http://127.0.0.1:8420/_test_bank/pi_1")
        );
        let redirect = json!({"next_action": {"type": "redirect_to_url",
            "redirect_to_url": {"url": "https://hooks.stripe.com/3d_secure/x"}}});
        assert_eq!(
            redirect_url(&redirect),
            Some("https://hooks.stripe.com/3d_secure/x")
        );
        let script =
            json!({"next_action": {"use_stripe_sdk": {"stripe_js": "javascript:alert(1)"}}});
        assert_eq!(redirect_url(&script), None);
        assert_eq!(redirect_url(&json!({"next_action": null})), None);
    }
}
