//! Every event routed to the e-mail queue → at most one e-mail to the order's customer.
//!
//! The inbox row, the sent-mail record and the SMTP hand-over share one transaction: a
//! redelivered event finds the inbox row (or waits on it while the first delivery is still
//! sending) and sends nothing. The `Message-ID` is derived from the event id, so the one window
//! left — the server accepted the e-mail and the process died before the commit — produces a
//! second copy with the same `Message-ID`, which mail clients show once.

use domain::{CancelReason, Consumer, Currency, Event, EventBody, EventType, Money};
use settings::ShopSettings;
use sqlx::PgConnection;
use uuid::Uuid;
use worker::{Classify, Failure, Handler};

use crate::{
    mailer::{Delivery, MailError, Mailer, Outgoing},
    store::{self, SentEmail},
    templates::{EmailContext, EmailKind, EmailLine, TemplateError, Templates},
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
}

impl Classify for EmailError {
    fn failure(&self) -> Failure {
        match self {
            EmailError::Mail(MailError::Transient(_)) => Failure::Retryable,
            EmailError::Database(e) => e.failure(),
            _ => Failure::Permanent,
        }
    }
}

/// The email-service's handler.
#[derive(Debug)]
pub struct EmailHandler {
    templates: Templates,
    mailer: Mailer,
    shop: ShopSettings,
}

impl EmailHandler {
    /// A handler rendering `templates` and sending through `mailer`.
    pub fn new(templates: Templates, mailer: Mailer, shop: ShopSettings) -> Self {
        EmailHandler {
            templates,
            mailer,
            shop,
        }
    }

    async fn email(
        &self,
        event: &Event,
        kind: EmailKind,
        tx: &mut PgConnection,
    ) -> Result<(), EmailError> {
        let order = store::order(tx, event.order_id)
            .await?
            .ok_or(EmailError::OrderNotFound(event.order_id))?;
        let currency = Currency::parse(&order.currency)?;
        let mut context = self.context(tx, event, &order, currency).await?;
        let pdf = self.attachment(tx, event, kind, &mut context).await?;
        let message_id = format!("<{}@{}>", event.id, self.mailer.domain());
        let outgoing = Outgoing {
            to_name: &order.name,
            to_email: &order.email,
            content: self.templates.render(kind, &context)?,
            message_id: message_id.clone(),
            pdf,
        };
        let (status, reply) = match self.mailer.send(outgoing).await? {
            Delivery::Accepted(reply) => ("sent", reply),
            Delivery::Rejected(reply) => {
                tracing::warn!(reply, "the SMTP server refused the recipient; not retrying");
                ("rejected", reply)
            }
        };
        let sent = SentEmail {
            event_id: event.id,
            order_id: event.order_id,
            kind: kind.name(),
            message_id: &message_id,
            status,
            smtp_response: &reply,
        };
        store::record(tx, &sent).await?;
        store::record_on_timeline(tx, &sent).await?;
        tracing::info!(email.kind = kind.name(), status, "e-mail handled");
        Ok(())
    }

    async fn context(
        &self,
        tx: &mut PgConnection,
        event: &Event,
        order: &store::OrderForEmail,
        currency: Currency,
    ) -> Result<EmailContext, EmailError> {
        let money = |minor| Money::new(minor, currency).to_string();
        let lines = store::lines(tx, event.order_id).await?;
        let mut context = EmailContext {
            shop_name: self.shop.name.clone(),
            customer_name: order.name.clone(),
            order_id: event.order_id.to_string(),
            order_reference: domain::order_reference(event.order_id),
            order_url: format!("{}/orders/{}", self.shop.public_url, event.order_id),
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

    /// The invoice PDF for an invoice e-mail (and its number and total in the context).
    async fn attachment(
        &self,
        tx: &mut PgConnection,
        event: &Event,
        kind: EmailKind,
        context: &mut EmailContext,
    ) -> Result<Option<(String, Vec<u8>)>, EmailError> {
        if kind != EmailKind::Invoice {
            return Ok(None);
        }
        let invoice = store::invoice(tx, event.order_id)
            .await?
            .ok_or(EmailError::InvoiceMissing(event.order_id))?;
        context.invoice_number = Some(invoice.number.clone());
        Ok(Some((format!("{}.pdf", invoice.number), invoice.pdf)))
    }
}

/// The e-mail an event type gets, if any. `shipment.failed` gets none of its own: the refund
/// that follows it is announced, with the reason, by the `payment.refunded` e-mail.
pub fn kind_of(event_type: EventType) -> Option<EmailKind> {
    match event_type {
        EventType::OrderPlaced => Some(EmailKind::OrderConfirmation),
        EventType::InvoiceGenerated => Some(EmailKind::Invoice),
        EventType::PaymentSucceeded => Some(EmailKind::PaymentReceipt),
        EventType::PaymentFailed => Some(EmailKind::PaymentFailed),
        EventType::ShipmentCreated => Some(EmailKind::Shipped),
        EventType::PaymentRefunded => Some(EmailKind::Refunded),
        EventType::ShipmentFailed => None,
        EventType::OrderCancelled => Some(EmailKind::Cancelled),
        EventType::ShipmentDelivered => Some(EmailKind::Delivered),
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
        EventBody::OrderPlaced(_) | EventBody::ShipmentFailed(_) => {}
        EventBody::InvoiceGenerated(p) => {
            context.invoice_number = Some(p.invoice_number.clone());
            context.total = Some(money(p.total_minor));
        }
        EventBody::PaymentSucceeded(p) => context.amount = Some(money(p.amount_minor)),
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

    async fn handle(&self, event: &Event, tx: &mut PgConnection) -> Result<(), EmailError> {
        match kind_of(event.event_type()) {
            Some(kind) => self.email(event, kind, tx).await,
            None => {
                tracing::info!("no e-mail for this event type");
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_but_shipment_failed_has_its_own_email() {
        let with_email: Vec<_> = EventType::ALL
            .into_iter()
            .filter(|t| kind_of(*t).is_some())
            .collect();
        assert_eq!(with_email.len(), 8);
        assert_eq!(kind_of(EventType::ShipmentFailed), None);
    }
}
