//! Stripe as billing uses it, through async-stripe: PaymentIntents created unconfirmed, found
//! again by order, confirmed, and refunded. Every call that creates something carries an
//! idempotency key derived from the event; answers are sorted into what may pass on a retry
//! (5xx, 429, timeouts, network) and what will not.

use std::{collections::HashMap, str::FromStr, time::Duration};

use secrecy::ExposeSecret;
use settings::StripeSettings;
use stripe::{Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeError, StripeRequest};
use stripe_core::{
    PaymentIntent, PaymentIntentStatus,
    payment_intent::{
        ConfirmPaymentIntent, CreatePaymentIntent, CreatePaymentIntentAutomaticPaymentMethods,
        CreatePaymentIntentAutomaticPaymentMethodsAllowRedirects, ListPaymentIntent,
        RetrievePaymentIntent,
    },
    refund::{CreateRefund, ListRefund},
};

/// A Stripe call that did not give an answer to act on.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// Stripe was unreachable, slow, overloaded (429) or failing (5xx): try again later.
    #[error("Stripe is unavailable for now")]
    Transient(#[source] StripeError),
    /// Stripe refused the request for good (4xx other than a card decline).
    #[error("Stripe refused the request")]
    Refused(#[source] StripeError),
    /// The client could not be built or a key was invalid.
    #[error("the Stripe client is misconfigured: {0}")]
    Config(String),
}

impl From<StripeError> for GatewayError {
    fn from(error: StripeError) -> Self {
        match &error {
            StripeError::Stripe(_, status) if *status == 429 || *status >= 500 => {
                GatewayError::Transient(error)
            }
            StripeError::Stripe(..) | StripeError::JSONDeserialize(_) => {
                GatewayError::Refused(error)
            }
            StripeError::ConfigError(message) => GatewayError::Config(message.clone()),
            StripeError::ClientError(_) | StripeError::Timeout => GatewayError::Transient(error),
        }
    }
}

/// A PaymentIntent, reduced to what billing decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    /// `pi_…`.
    pub id: String,
    /// Where it is.
    pub status: PaymentIntentStatus,
    /// The last decline's message, if the last attempt was declined.
    pub decline: Option<String>,
}

impl From<PaymentIntent> for Intent {
    fn from(intent: PaymentIntent) -> Self {
        Intent {
            id: intent.id.to_string(),
            decline: intent.last_payment_error.as_ref().map(|e| {
                e.message
                    .clone()
                    .unwrap_or_else(|| "the payment was declined".into())
            }),
            status: intent.status,
        }
    }
}

/// The answer to a confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmed {
    /// Charged.
    Succeeded,
    /// The card was declined (final), with Stripe's message.
    Declined(String),
    /// Stripe is still working on it (`processing`, `requires_action`): look again later.
    Pending(PaymentIntentStatus),
}

/// What billing needs to create a PaymentIntent.
#[derive(Debug, Clone)]
pub struct Charge<'a> {
    /// The order, stored in the intent's metadata (how intents are found again).
    pub order_id: &'a str,
    /// Amount in minor units.
    pub amount_minor: i64,
    /// ISO currency code (any case).
    pub currency: &'a str,
    /// The PaymentMethod chosen at checkout.
    pub payment_method: &'a str,
}

/// A Stripe client pointed at the configured API.
#[derive(Clone)]
pub struct Gateway {
    client: Client,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").finish_non_exhaustive()
    }
}

impl Gateway {
    /// A client for `settings.api_base` with the secret key.
    ///
    /// # Errors
    /// [`GatewayError::Config`] when the client cannot be built.
    pub fn new(settings: &StripeSettings) -> Result<Self, GatewayError> {
        let client = ClientBuilder::new(settings.secret_key.expose_secret())
            .url(settings.api_base.as_str())
            .timeout(Duration::from_millis(settings.timeout_ms))
            .build()
            .map_err(|e| GatewayError::Config(e.to_string()))?;
        Ok(Gateway { client })
    }

    /// Creates an unconfirmed PaymentIntent: nothing is charged until [`Gateway::confirm`].
    ///
    /// # Errors
    /// [`GatewayError`] sorted by kind.
    pub async fn create(&self, charge: &Charge<'_>, key: &str) -> Result<Intent, GatewayError> {
        let currency = stripe_types::Currency::from_str(&charge.currency.to_lowercase())
            .map_err(|_| GatewayError::Config(format!("unknown currency {}", charge.currency)))?;
        let mut automatic = CreatePaymentIntentAutomaticPaymentMethods::new(true);
        automatic.allow_redirects =
            Some(CreatePaymentIntentAutomaticPaymentMethodsAllowRedirects::Never);
        let metadata = HashMap::from([("order_id".to_owned(), charge.order_id.to_owned())]);
        let intent = CreatePaymentIntent::new(charge.amount_minor, currency)
            .payment_method(charge.payment_method)
            .automatic_payment_methods(automatic)
            .description(format!("ChargeFlow order {}", charge.order_id))
            .metadata(metadata)
            .customize()
            .request_strategy(idempotent(key)?)
            .send(&self.client)
            .await?;
        Ok(intent.into())
    }

    /// The PaymentIntent with this id.
    ///
    /// # Errors
    /// [`GatewayError`] sorted by kind.
    pub async fn retrieve(&self, id: &str) -> Result<Intent, GatewayError> {
        Ok(RetrievePaymentIntent::new(id)
            .send(&self.client)
            .await?
            .into())
    }

    /// The PaymentIntent created for the order, if any, found by its metadata. Used only when an
    /// earlier attempt may have created one and died before recording its id.
    ///
    /// # Errors
    /// [`GatewayError`] sorted by kind.
    pub async fn find_for_order(&self, order_id: &str) -> Result<Option<Intent>, GatewayError> {
        let mut after: Option<String> = None;
        loop {
            let mut list = ListPaymentIntent::new().limit(100);
            if let Some(id) = &after {
                list = list.starting_after(id.as_str());
            }
            let page = list.send(&self.client).await?;
            let found = page
                .data
                .iter()
                .find(|pi| pi.metadata.get("order_id").map(String::as_str) == Some(order_id));
            if let Some(intent) = found {
                return Ok(Some(intent.clone().into()));
            }
            match (page.has_more, page.data.last()) {
                (true, Some(last)) => after = Some(last.id.to_string()),
                _ => return Ok(None),
            }
        }
    }

    /// Confirms the PaymentIntent: this is the charge.
    ///
    /// # Errors
    /// [`GatewayError`] sorted by kind; a card decline is not an error but [`Confirmed::Declined`].
    pub async fn confirm(&self, id: &str, key: &str) -> Result<Confirmed, GatewayError> {
        let confirmed = ConfirmPaymentIntent::new(id)
            .customize()
            .request_strategy(idempotent(key)?)
            .send(&self.client)
            .await;
        match confirmed {
            Ok(intent) if intent.status == PaymentIntentStatus::Succeeded => {
                Ok(Confirmed::Succeeded)
            }
            Ok(intent) => Ok(Confirmed::Pending(intent.status)),
            Err(StripeError::Stripe(error, 402)) => Ok(Confirmed::Declined(
                error
                    .message
                    .clone()
                    .unwrap_or_else(|| "the payment was declined".into()),
            )),
            Err(other) => Err(other.into()),
        }
    }

    /// Refunds the PaymentIntent in full, once: an existing refund is returned instead of a second.
    ///
    /// # Errors
    /// [`GatewayError`] sorted by kind.
    pub async fn refund(&self, payment_intent_id: &str, key: &str) -> Result<String, GatewayError> {
        let existing = ListRefund::new()
            .payment_intent(payment_intent_id)
            .send(&self.client)
            .await?;
        if let Some(refund) = existing.data.first() {
            return Ok(refund.id.to_string());
        }
        let refund = CreateRefund::new()
            .payment_intent(payment_intent_id)
            .customize()
            .request_strategy(idempotent(key)?)
            .send(&self.client)
            .await?;
        Ok(refund.id.to_string())
    }
}

fn idempotent(key: &str) -> Result<RequestStrategy, GatewayError> {
    let key = IdempotencyKey::new(key).map_err(|e| GatewayError::Config(format!("{e:?}")))?;
    Ok(RequestStrategy::Idempotent(key))
}
