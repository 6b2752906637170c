//! Every event routed to the e-mail queue → at most one e-mail to the order's customer, or for
//! `customer.sign_in_requested` at most one sign-in e-mail to the address that asked.
//!
//! Every order e-mail's link carries a signed token valid for `shop.order_link_ttl_s` from the
//! event's `occurred_at` (`domain::links`), and the sign-in link's token is an HMAC of the
//! request id: both are computed from the event alone, so a re-send has the same content. A
//! sign-in request is answered only while it is unused and unexpired, and only for an address
//! that has orders; otherwise nothing is sent, and what happened is recorded on the request.
//!
//! The e-mail is handed to the SMTP server with no transaction open: the handler runs the whole
//! delivery itself ([`Handler::run`], in place of the runtime's transaction). An order e-mail is
//! two statements, each shared with the e-mails handled at the same moment: before the send, one
//! that reads the inbox and the order's data and commits the intent ([`crate::claims`]); after
//! it, one that records the server's answer together with the event's inbox row
//! ([`crate::answers`]). [`crate::delivery`] tells how, and what window is left. A redelivery
//! of a handled event finds its inbox row in the first statement and sends nothing; an event
//! with nothing to send gets its inbox row in a statement of its own ([`store::mark_handled`]).
//! A sign-in request's outcome is written once whatever comes again: the first one stays.

use std::{
    sync::OnceLock,
    time::{Duration, Instant},
};

use domain::{CancelReason, Consumer, Currency, Event, EventBody, EventType, Money, links};
use secrecy::ExposeSecret;
use settings::{SettingsError, ShopSettings};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;
use worker::{Classify, Failure, Handled, Handler, RunError};

use crate::{
    answers::Answers,
    claims::Claims,
    delivery::{Delivered, Letter, Sender, unclaimed},
    mailer::{MailError, Mailer},
    store,
    templates::{EmailContext, EmailKind, EmailLine, SignInContext, TemplateError, Templates},
};

/// Why an e-mail could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    /// The event names an order that does not exist.
    #[error("order {0} does not exist")]
    OrderNotFound(Uuid),
    /// An invoice e-mail for an order without an invoice.
    #[error("order {0} has no invoice to attach")]
    InvoiceMissing(Uuid),
    /// The order's currency is not a valid code.
    #[error("the order's currency is invalid")]
    Currency(#[from] domain::money::InvalidCurrency),
    /// A template failed to render.
    #[error("the e-mail could not be rendered")]
    Template(#[from] TemplateError),
    /// SMTP failed.
    #[error("the e-mail could not be sent")]
    Mail(#[from] MailError),
    /// A statement failed.
    #[error("e-mail statement failed")]
    Database(#[from] sqlx::Error),
    /// Another delivery of the event holds its e-mail's intent and may still be sending it, for
    /// at most this long.
    #[error("another delivery of this event may still be sending its e-mail (for {0:?})")]
    Held(Duration),
    /// The server answered, but its answer could not be recorded before the handler's time ran
    /// out (the database stayed away): the e-mail will be sent again, with the same Message-ID.
    #[error("the SMTP server's answer could not be recorded within {0:?}")]
    AnswerNotRecorded(Duration),
    /// Recording the server's answer failed for good (its statement's error, shared with the
    /// other answers recorded by that statement: [`crate::answers`]).
    #[error("the SMTP server's answer could not be recorded")]
    Answer(#[source] std::sync::Arc<sqlx::Error>),
    /// Claiming the e-mail (with reading its order) failed (its statement's error, shared with
    /// the other claims made by that statement: [`crate::claims`]).
    #[error("the e-mail's intent could not be claimed")]
    Claim(#[source] std::sync::Arc<sqlx::Error>),
}

impl Classify for EmailError {
    fn failure(&self) -> Failure {
        match self {
            EmailError::Mail(MailError::Transient(_))
            | EmailError::Held(_)
            | EmailError::AnswerNotRecorded(_) => Failure::Retryable,
            EmailError::Database(e) => e.failure(),
            EmailError::Answer(e) | EmailError::Claim(e) => e.failure(),
            _ => Failure::Permanent,
        }
    }

    /// A held e-mail comes back once its holder's time is over.
    fn retry_after(&self) -> Option<Duration> {
        match self {
            EmailError::Held(remaining) => Some(*remaining),
            _ => None,
        }
    }
}

/// The email-service's handler.
#[derive(Debug)]
pub struct EmailHandler {
    templates: Templates,
    mailer: Mailer,
    shop: ShopSettings,
    handler_timeout: Duration,
    /// The answers' recorder, started over the pool of the first delivery (a handler serves one
    /// database).
    answers: OnceLock<Answers>,
    /// The order e-mails' claimer, started like the answers' recorder.
    claims: OnceLock<Claims>,
}

impl EmailHandler {
    /// A handler rendering `templates` and sending through `mailer`, with links signed by the
    /// shop's link secret, run by a worker that abandons a handler after `handler_timeout`
    /// (`worker.handler_timeout_s`): how long it records an answer, and the longest hold on an
    /// e-mail's intent.
    ///
    /// # Errors
    /// [`SettingsError::Invalid`] when `shop.link_secret` is missing or too short.
    pub fn new(
        templates: Templates,
        mailer: Mailer,
        shop: ShopSettings,
        handler_timeout: Duration,
    ) -> Result<Self, SettingsError> {
        shop.link_key()?;
        Ok(EmailHandler {
            templates,
            mailer,
            shop,
            handler_timeout,
            answers: OnceLock::new(),
            claims: OnceLock::new(),
        })
    }

    /// Sends the e-mail `event` gets, if any, at most once per attempt (see
    /// [`crate::delivery`]), and logs what became of it.
    ///
    /// # Errors
    /// [`EmailError`]: data missing, a template failing, the server or the database failing.
    pub async fn deliver(&self, event: &Event, pool: &PgPool) -> Result<Delivered, EmailError> {
        let started = Instant::now();
        let sender = Sender {
            mailer: &self.mailer,
            pool,
            answers: self.answers.get_or_init(|| Answers::start(pool.clone())),
            handler_timeout: self.handler_timeout,
        };
        let delivered = match kind_of(event.event_type()) {
            Some(EmailKind::SignIn) => self.sign_in(event, sender, started).await?,
            Some(kind) => self.email(event, kind, sender, started).await?,
            None => {
                tracing::info!("no e-mail for this event type");
                Delivered::Nothing
            }
        };
        log_delivered(&delivered, kind_of(event.event_type()));
        Ok(delivered)
    }

    /// The link secret (checked by [`EmailHandler::new`]).
    fn link_key(&self) -> &[u8] {
        self.shop.link_secret.expose_secret().as_bytes()
    }

    /// The order page's address with a token valid for `order_link_ttl_s` from the event.
    fn order_url(&self, event: &Event) -> String {
        let ttl = chrono::Duration::seconds(self.shop.order_link_ttl_s as i64);
        let token = links::sign(self.link_key(), event.order_id, event.occurred_at + ttl);
        format!(
            "{}/orders/{}?t={token}",
            self.shop.public_url, event.order_id
        )
    }

    /// An order's e-mail: its data read and its intent claimed in one statement, shared with the
    /// claims of the moment ([`crate::claims`]), then rendered and sent holding no connection.
    async fn email(
        &self,
        event: &Event,
        kind: EmailKind,
        sender: Sender<'_>,
        started: Instant,
    ) -> Result<Delivered, EmailError> {
        let claims = self
            .claims
            .get_or_init(|| Claims::start(sender.pool.clone()));
        let found = claims
            .run(store::OrderEmailClaim {
                event_id: event.id,
                order_id: event.order_id,
                with_invoice: kind == EmailKind::Invoice,
                message_id: sender.message_id_for(event.id),
                hold: sender.hold(),
            })
            .await
            .map_err(EmailError::Claim)?;
        if found.handled {
            return Ok(Delivered::Handled);
        }
        let order = found
            .order
            .as_ref()
            .ok_or(EmailError::OrderNotFound(event.order_id))?;
        let mut context = self.context(event, order, &found.lines)?;
        let pdf = attachment(event, kind, found.invoice, &mut context)?;
        let Some((attempt, message_id)) = found.claimed else {
            return unclaimed(store::not_claimed(sender.pool, event.id).await?);
        };
        let letter = Letter {
            event_id: event.id,
            order_id: Some(event.order_id),
            sign_in_request: None,
            kind: kind.name(),
            to_name: &order.name,
            to_email: &order.email,
            content: self.templates.render(kind, &context)?,
            pdf,
        };
        sender
            .send_claimed(letter, attempt, message_id, started)
            .await
    }

    fn context(
        &self,
        event: &Event,
        order: &store::OrderForEmail,
        lines: &[store::LineForEmail],
    ) -> Result<EmailContext, EmailError> {
        let currency = Currency::parse(&order.currency)?;
        let money = |minor| Money::new(minor, currency).to_string();
        let mut context = EmailContext {
            shop_name: self.shop.name.clone(),
            customer_name: order.name.clone(),
            order_id: event.order_id.to_string(),
            order_reference: domain::order_reference(event.order_id),
            order_url: self.order_url(event),
            lines: lines.iter().map(|l| email_line(l, &money)).collect(),
            subtotal: money(order.subtotal_minor),
            shipping: order.shipping_minor.map(money),
            tax: order.tax_minor.map(money),
            total: order.total_minor.map(money),
            invoice_number: None,
            amount: None,
            failure_reason: None,
            carrier: None,
            tracking_number: None,
            tracking_url: None,
            cancellation: None,
            refund_follows: false,
            delivered_on: None,
        };
        fill_from_payload(&mut context, &event.body, &money);
        Ok(context)
    }

    /// `customer.sign_in_requested`: the sign-in e-mail, if the request is still usable and its
    /// address has orders; the outcome is recorded on the request either way (with the server's
    /// answer when an e-mail is sent), once.
    async fn sign_in(
        &self,
        event: &Event,
        sender: Sender<'_>,
        started: Instant,
    ) -> Result<Delivered, EmailError> {
        let mut conn = sender.pool.acquire().await?;
        let Some(request) = store::sign_in_request(&mut *conn, event.order_id).await? else {
            tracing::warn!("the sign-in request no longer exists: nothing to send");
            return Ok(Delivered::Nothing);
        };
        if request.mail_outcome.is_some() {
            return Ok(Delivered::Earlier);
        }
        let outcome = match (request.usable, request.customer_name.as_deref()) {
            (false, _) => "stale",
            (true, None) => "no_orders",
            (true, Some(name)) => {
                let letter = self.sign_in_letter(event, &request, name)?;
                return sender.send(conn, letter, started).await;
            }
        };
        store::record_sign_in_outcome(&mut *conn, event.order_id, outcome).await?;
        tracing::info!(email.kind = "sign_in", outcome, "sign-in request handled");
        Ok(Delivered::Nothing)
    }

    /// The sign-in e-mail answering `request`.
    fn sign_in_letter<'a>(
        &self,
        event: &Event,
        request: &'a store::SignInForEmail,
        name: &'a str,
    ) -> Result<Letter<'a>, EmailError> {
        let token = links::sign_in_token(self.link_key(), event.order_id);
        let valid_s = (request.expires_at - event.occurred_at)
            .num_seconds()
            .max(60);
        let context = SignInContext {
            shop_name: self.shop.name.clone(),
            customer_name: name.to_owned(),
            sign_in_url: format!("{}/sign-in?token={token}", self.shop.public_url),
            valid_minutes: (valid_s as u64).div_ceil(60),
            find_orders_url: format!("{}/find-orders", self.shop.public_url),
        };
        Ok(Letter {
            event_id: event.id,
            order_id: None,
            sign_in_request: Some(event.order_id),
            kind: EmailKind::SignIn.name(),
            to_name: name,
            to_email: &request.email,
            content: self.templates.render_sign_in(&context)?,
            pdf: None,
        })
    }
}

/// The invoice PDF for an invoice e-mail (and its number in the context); `invoice` is the
/// order's invoice, read for invoice e-mails only.
fn attachment(
    event: &Event,
    kind: EmailKind,
    invoice: Option<store::InvoiceForEmail>,
    context: &mut EmailContext,
) -> Result<Option<(String, Vec<u8>)>, EmailError> {
    if kind != EmailKind::Invoice {
        return Ok(None);
    }
    let invoice = invoice.ok_or(EmailError::InvoiceMissing(event.order_id))?;
    context.invoice_number = Some(invoice.number.clone());
    Ok(Some((format!("{}.pdf", invoice.number), invoice.pdf)))
}

/// Logs what became of an event's e-mail (never its address or content).
fn log_delivered(delivered: &Delivered, kind: Option<EmailKind>) {
    let kind = kind.map(EmailKind::name);
    match delivered {
        Delivered::Sent {
            status,
            attempt,
            window,
        } => tracing::info!(
            email.kind = kind,
            status,
            attempt,
            window_us = window.as_micros() as u64,
            "e-mail handled"
        ),
        Delivered::Earlier | Delivered::Handled => tracing::info!(
            email.kind = kind,
            "an earlier delivery of this event already handled its e-mail: nothing sent"
        ),
        Delivered::Nothing => {}
    }
}

/// The e-mail an event type gets, if any. `shipment.failed` gets none of its own: the refund
/// that follows it is announced, with the reason, by the `payment.refunded` e-mail.
/// `customer.sign_in_requested` gets [`EmailKind::SignIn`] when its request is usable and its
/// address has orders.
pub fn kind_of(event_type: EventType) -> Option<EmailKind> {
    match event_type {
        EventType::OrderPlaced => Some(EmailKind::OrderConfirmation),
        EventType::InvoiceGenerated => Some(EmailKind::Invoice),
        EventType::PaymentSucceeded => Some(EmailKind::PaymentReceipt),
        EventType::PaymentFailed => Some(EmailKind::PaymentFailed),
        EventType::PaymentActionRequired => Some(EmailKind::PaymentActionRequired),
        EventType::ShipmentCreated => Some(EmailKind::Shipped),
        EventType::PaymentRefunded => Some(EmailKind::Refunded),
        EventType::ShipmentFailed => None,
        EventType::OrderCancelled => Some(EmailKind::Cancelled),
        EventType::ShipmentDelivered => Some(EmailKind::Delivered),
        EventType::SignInRequested => Some(EmailKind::SignIn),
    }
}

fn email_line(line: &store::LineForEmail, money: &impl Fn(i64) -> String) -> EmailLine {
    EmailLine {
        sku: line.sku.clone(),
        name: line.name.clone(),
        quantity: line.quantity.unsigned_abs(),
        unit_price: money(line.unit_price_minor),
        line_total: money(line.line_total_minor),
    }
}

fn fill_from_payload(context: &mut EmailContext, body: &EventBody, money: &impl Fn(i64) -> String) {
    match body {
        EventBody::OrderPlaced(_)
        | EventBody::ShipmentFailed(_)
        | EventBody::SignInRequested(_) => {}
        EventBody::InvoiceGenerated(p) => {
            context.invoice_number = Some(p.invoice_number.clone());
            context.total = Some(money(p.total_minor));
        }
        EventBody::PaymentSucceeded(p) => context.amount = Some(money(p.amount_minor)),
        EventBody::PaymentActionRequired(p) => context.amount = Some(money(p.amount_minor)),
        EventBody::PaymentFailed(p) => {
            context.amount = Some(money(p.amount_minor));
            context.failure_reason = Some(p.reason.clone());
        }
        EventBody::ShipmentCreated(p) => {
            context.carrier = Some(p.carrier.clone());
            context.tracking_number = Some(p.tracking_number.clone());
            context.tracking_url = p.tracking_url.clone();
        }
        EventBody::PaymentRefunded(p) => {
            context.amount = Some(money(p.amount_minor));
            context.failure_reason = p.reason.clone();
        }
        EventBody::OrderCancelled(p) => {
            context.cancellation = Some(cancellation_words(p.reason).to_owned());
            context.refund_follows = p.paid;
        }
        EventBody::ShipmentDelivered(p) => {
            context.carrier = Some(p.carrier.clone());
            context.tracking_number = Some(p.tracking_number.clone());
            context.delivered_on = Some(p.delivered_at.format("%-d %B %Y").to_string());
        }
    }
}

/// Why an order was cancelled, as the e-mail says it ("… because {words}").
fn cancellation_words(reason: CancelReason) -> &'static str {
    match reason {
        CancelReason::Shopper => "you asked us to cancel it",
        CancelReason::Operator => "our team had to cancel it",
        CancelReason::Expired => "the payment was not completed in time",
        CancelReason::PaymentUnusable => "the payment could not be taken",
    }
}

impl Handler for EmailHandler {
    type Error = EmailError;

    fn consumer(&self) -> Consumer {
        Consumer::Email
    }

    /// Not called: [`EmailHandler::run`] writes the inbox row itself.
    async fn handle(&self, _event: &Event, _tx: &mut PgConnection) -> Result<(), EmailError> {
        Ok(())
    }

    /// The whole e-mail ([`EmailHandler::deliver`]), with no transaction open. The inbox row
    /// commits with the server's answer when this delivery sent the e-mail
    /// ([`store::record_answers`]), and in a statement of its own when there was nothing to send
    /// or an earlier delivery had recorded the answer ([`store::mark_handled`]).
    async fn run(&self, event: &Event, pool: &PgPool) -> Result<Handled, RunError<EmailError>> {
        let delivered = self.deliver(event, pool).await.map_err(RunError::Handler)?;
        match delivered {
            Delivered::Sent { .. } => Ok(Handled::Done),
            Delivered::Handled => Ok(Handled::Duplicate),
            Delivered::Earlier | Delivered::Nothing => {
                let marked = store::mark_handled(pool, event.id)
                    .await
                    .map_err(|e| RunError::Handler(e.into()))?;
                Ok(if marked {
                    Handled::Done
                } else {
                    Handled::Duplicate
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn the_handler_refuses_to_be_made_without_a_link_secret_of_32_bytes() {
        let templates_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let make = |secret: &str| {
            let settings =
                settings::Settings::from_sources(&[("APP__SHOP__LINK_SECRET", secret)]).unwrap();
            let templates = Templates::load(&templates_dir).unwrap();
            let mailer = Mailer::new(&settings.smtp).unwrap();
            EmailHandler::new(templates, mailer, settings.shop, Duration::from_secs(30))
        };
        for short in ["", "thirty-one bytes are not enough"] {
            let error = make(short).unwrap_err();
            assert!(error.to_string().contains("shop.link_secret"), "{error}");
        }
        assert!(make(&"k".repeat(32)).is_ok());
    }

    #[test]
    fn every_event_type_but_shipment_failed_has_its_own_email() {
        let with_email: Vec<_> = EventType::ALL
            .into_iter()
            .filter(|t| kind_of(*t).is_some())
            .collect();
        assert_eq!(with_email.len(), 10);
        assert_eq!(kind_of(EventType::ShipmentFailed), None);
        assert_eq!(kind_of(EventType::SignInRequested), Some(EmailKind::SignIn));
    }
}
