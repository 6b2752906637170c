//! Stripe as billing uses it, through async-stripe: PaymentIntents created unconfirmed, found
//! again by order, confirmed, cancelled and refunded. Every call that creates or changes
//! something carries an idempotency key derived from the event.
//!
//! Answers are sorted once, here. Stripe refusing the charge itself (a 4xx to
//! [`Gateway::create_charge`] or [`Gateway::confirm`] that [`refusal::is_the_shoppers`] calls
//! the shopper's) is not an error but an answer: [`Created::Refused`] or
//! [`Confirmed::Declined`], with the shopper's reason. Everything else is
//! a [`GatewayError`], and every kind of it but [`GatewayError::Config`] is worth retrying: Stripe
//! down or slow, our key refused (an operator must fix it; the message ends in the DLQ and the
//! order is listed as stuck until then), an answer we cannot read, or a refusal of any other
//! call (the intent moved on under us: the next delivery reads it again).

use std::{collections::HashMap, str::FromStr, time::Duration};

use secrecy::ExposeSecret;
use settings::StripeSettings;
use stripe::{Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeError, StripeRequest};
use stripe_core::{
    PaymentIntent, PaymentIntentStatus,
    payment_intent::{
        CancelPaymentIntent, ConfirmPaymentIntent, CreatePaymentIntent,
        CreatePaymentIntentAutomaticPaymentMethods,
        CreatePaymentIntentAutomaticPaymentMethodsAllowRedirects, ListPaymentIntent,
        RetrievePaymentIntent,
    },
    refund::{CreateRefund, ListRefund},
};
use worker::{Classify, Failure};

use crate::refusal::{self, Refusal};

/// A Stripe call that did not give an answer to act on.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// Stripe was unreachable, slow, busy (409, 429) or failing (5xx): try again later.
    #[error("Stripe is unavailable for now")]
    Transient(#[source] StripeError),
    /// Stripe refused our key (401, 403): an operator must fix the configuration.
    #[error("Stripe refused the API key")]
    Unauthorized(#[source] StripeError),
    /// Stripe refused a request (another 4xx) for a reason that is not the shopper's: a call other
    /// than the charge, or a charge refused for a fault on the shop's side (see [`refusal`]).
    #[error("Stripe refused the request")]
    Refused(#[source] StripeError),
    /// Stripe's answer could not be read (not Stripe's JSON, or not the shape expected).
    #[error("Stripe's answer could not be read")]
    Unreadable(#[source] StripeError),
    /// The client could not be built or a key was invalid.
    #[error("the Stripe client is misconfigured: {0}")]
    Config(String),
}

impl From<StripeError> for GatewayError {
    fn from(error: StripeError) -> Self {
        match &error {
            StripeError::Stripe(_, status) if matches!(status, 409 | 429) || *status >= 500 => {
                GatewayError::Transient(error)
            }
            StripeError::Stripe(_, 401 | 403) => GatewayError::Unauthorized(error),
            StripeError::Stripe(..) => GatewayError::Refused(error),
            StripeError::JSONDeserialize(_) => GatewayError::Unreadable(error),
            StripeError::ConfigError(message) => GatewayError::Config(message.clone()),
            StripeError::ClientError(_) | StripeError::Timeout => GatewayError::Transient(error),
        }
    }
}

impl Classify for GatewayError {
    /// Only a client that cannot be built (or a request it cannot express) fails for good;
    /// the rest may pass once Stripe, its state or our configuration has moved on.
    fn failure(&self) -> Failure {
        match self {
            GatewayError::Config(_) => Failure::Permanent,
            _ => Failure::Retryable,
        }
    }
}

/// The shopper's reason when `error` is Stripe refusing the charge itself (see [`refusal`]);
/// `None` when it is any other failure.
fn shoppers_refusal(error: &StripeError) -> Option<String> {
    match error {
        StripeError::Stripe(api, status) => {
            let refusal = Refusal::from(api.as_ref());
            refusal::is_the_shoppers(*status, &refusal).then(|| refusal::reason(&refusal))
        }
        _ => None,
    }
}

/// A PaymentIntent, reduced to what billing decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    /// `pi_…`.
    pub id: String,
    /// Where it is.
    pub status: PaymentIntentStatus,
    /// Why the last attempt failed, in the shopper's words, if it did.
    pub decline: Option<String>,
}

impl From<PaymentIntent> for Intent {
    fn from(intent: PaymentIntent) -> Self {
        Intent {
            id: intent.id.to_string(),
            decline: intent
                .last_payment_error
                .as_deref()
                .map(|e| refusal::reason(&Refusal::from(e))),
            status: intent.status,
        }
    }
}

/// The answer to creating a PaymentIntent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// Created, unconfirmed.
    Intent(Intent),
    /// Stripe refused to create it for a reason that is the shopper's (an unknown payment
    /// method, an amount it will not take): final, with the shopper's reason. Nothing exists.
    Refused(String),
}

/// The answer to a confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmed {
    /// Charged.
    Succeeded,
    /// The card was declined or Stripe refused the charge (final), with the shopper's reason.
    Declined(String),
    /// The card asks for 3-D Secure (`requires_action`): the shopper must authenticate the
    /// payment on the order page.
    NeedsAction,
    /// Stripe is still working on it (`processing`): look again later.
    Pending(PaymentIntentStatus),
}

impl Confirmed {
    /// What a PaymentIntent's status says about the charge, `None` while it still needs a
    /// confirmation.
    pub fn of(intent: &Intent) -> Option<Confirmed> {
        let declined = || {
            intent
                .decline
                .clone()
                .unwrap_or_else(|| refusal::GENERIC.into())
        };
        match &intent.status {
            PaymentIntentStatus::Succeeded => Some(Confirmed::Succeeded),
            PaymentIntentStatus::RequiresPaymentMethod | PaymentIntentStatus::Canceled => {
                Some(Confirmed::Declined(declined()))
            }
            PaymentIntentStatus::RequiresAction => Some(Confirmed::NeedsAction),
            PaymentIntentStatus::RequiresConfirmation => None,
            other => Some(Confirmed::Pending(other.clone())),
        }
    }
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
    /// [`GatewayError`] sorted by kind, Stripe's refusals included (see
    /// [`Gateway::create_charge`] for an answer that tells the shopper's refusals apart).
    pub async fn create(&self, charge: &Charge<'_>, key: &str) -> Result<Intent, GatewayError> {
        Ok(self.send_create(charge, key).await?.into())
    }

    /// [`Gateway::create`] for the charge of an order: a refusal that is the shopper's (an
    /// unknown payment method, an amount Stripe will not take) is an answer,
    /// [`Created::Refused`], rather than an error.
    ///
    /// # Errors
    /// [`GatewayError`] sorted by kind, for everything else.
    pub async fn create_charge(
        &self,
        charge: &Charge<'_>,
        key: &str,
    ) -> Result<Created, GatewayError> {
        match self.send_create(charge, key).await {
            Ok(intent) => Ok(Created::Intent(intent.into())),
            Err(error) => shoppers_refusal(&error)
                .map(Created::Refused)
                .ok_or_else(|| error.into()),
        }
    }

    #[tracing::instrument(level = "debug", name = "stripe.create_payment_intent", skip_all, fields(otel.kind = "client", peer.service = "stripe"))]
    async fn send_create(
        &self,
        charge: &Charge<'_>,
        key: &str,
    ) -> Result<PaymentIntent, StripeError> {
        let currency =
            stripe_types::Currency::from_str(&charge.currency.to_lowercase()).map_err(|_| {
                StripeError::ConfigError(format!("unknown currency {}", charge.currency))
            })?;
        let mut automatic = CreatePaymentIntentAutomaticPaymentMethods::new(true);
        automatic.allow_redirects =
            Some(CreatePaymentIntentAutomaticPaymentMethodsAllowRedirects::Never);
        let metadata = HashMap::from([("order_id".to_owned(), charge.order_id.to_owned())]);
        let key =
            IdempotencyKey::new(key).map_err(|e| StripeError::ConfigError(format!("{e:?}")))?;
        CreatePaymentIntent::new(charge.amount_minor, currency)
            .payment_method(charge.payment_method)
            .automatic_payment_methods(automatic)
            .description(format!("ChargeFlow order {}", charge.order_id))
            .metadata(metadata)
            .customize()
            .request_strategy(RequestStrategy::Idempotent(key))
            .send(&self.client)
            .await
    }

    /// The PaymentIntent with this id.
    ///
    /// # Errors
    /// [`GatewayError`] sorted by kind.
    #[tracing::instrument(level = "debug", name = "stripe.retrieve_payment_intent", skip_all, fields(otel.kind = "client", peer.service = "stripe"))]
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
    #[tracing::instrument(level = "debug", name = "stripe.search_payment_intents", skip_all, fields(otel.kind = "client", peer.service = "stripe"))]
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
    /// [`GatewayError`] sorted by kind; a card decline or another refusal that is the shopper's
    /// is not an error but [`Confirmed::Declined`].
    #[tracing::instrument(level = "debug", name = "stripe.confirm_payment_intent", skip_all, fields(otel.kind = "client", peer.service = "stripe"))]
    pub async fn confirm(&self, id: &str, key: &str) -> Result<Confirmed, GatewayError> {
        let confirmed = ConfirmPaymentIntent::new(id)
            .customize()
            .request_strategy(idempotent(key)?)
            .send(&self.client)
            .await;
        match confirmed {
            Ok(intent) => {
                let intent = Intent::from(intent);
                Ok(Confirmed::of(&intent).unwrap_or(Confirmed::Pending(
                    PaymentIntentStatus::RequiresConfirmation,
                )))
            }
            Err(error) => shoppers_refusal(&error)
                .map(Confirmed::Declined)
                .ok_or_else(|| error.into()),
        }
    }

    /// Cancels the PaymentIntent, so that it can never be confirmed (possible until it
    /// succeeded or is processing).
    ///
    /// # Errors
    /// [`GatewayError`] sorted by kind; [`GatewayError::Refused`] when the intent has moved to a
    /// state that cannot be cancelled.
    #[tracing::instrument(level = "debug", name = "stripe.cancel_payment_intent", skip_all, fields(otel.kind = "client", peer.service = "stripe"))]
    pub async fn cancel(&self, id: &str, key: &str) -> Result<Intent, GatewayError> {
        Ok(CancelPaymentIntent::new(id)
            .customize()
            .request_strategy(idempotent(key)?)
            .send(&self.client)
            .await?
            .into())
    }

    /// Refunds the PaymentIntent in full, once: an existing refund is returned instead of a second.
    ///
    /// # Errors
    /// [`GatewayError`] sorted by kind.
    #[tracing::instrument(level = "debug", name = "stripe.create_refund", skip_all, fields(otel.kind = "client", peer.service = "stripe"))]
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
