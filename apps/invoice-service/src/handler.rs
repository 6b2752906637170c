//! `order.placed` → an invoice: amounts, a gap-free number, a PDF, the order moved to
//! `invoiced`, and `invoice.generated` emitted — one transaction.

use chrono::Datelike;
use domain::{
    Consumer, Currency, Event, EventBody, EventEnvelope, EventType, InvoiceDocument,
    InvoiceGenerated, InvoiceLine, InvoiceTotals, OrderStatus, PriceRules, Seller,
};
use orders::Transition;
use settings::InvoiceSettings;
use sqlx::PgConnection;
use uuid::Uuid;
use worker::{Classify, Failure, Handler};

use crate::{pdf, store};

/// Why an invoice could not be made.
#[derive(Debug, thiserror::Error)]
pub enum InvoiceError {
    /// The queue delivered an event this handler does not take.
    #[error("the invoice service does not handle `{0}` events")]
    UnexpectedEvent(EventType),
    /// The event names an order that does not exist.
    #[error("order {0} does not exist")]
    OrderNotFound(Uuid),
    /// The order's data cannot make an invoice.
    #[error("the order cannot be invoiced")]
    Amounts(#[from] domain::invoice::InvoiceError),
    /// The invoice's amounts differ from the quote stored with the order: the order is not
    /// invoiced (nor charged) with amounts the shopper was not shown.
    #[error("the invoice total {invoiced} differs from the total {quoted} quoted at checkout")]
    QuoteMismatch {
        /// The total quoted at checkout.
        quoted: i64,
        /// The total the invoice would have.
        invoiced: i64,
    },
    /// The order's currency is not a valid code.
    #[error("the order's currency is invalid")]
    Currency(#[from] domain::money::InvalidCurrency),
    /// The order's stored tax rate is out of range.
    #[error("the order's stored tax rate is invalid")]
    TaxRate(#[from] domain::invoice::InvalidTaxRate),
    /// Rendering the PDF failed.
    #[error("the invoice PDF could not be rendered")]
    Pdf(#[from] pdf::PdfError),
    /// The rendering task panicked or was cancelled.
    #[error("the invoice PDF rendering task failed")]
    RenderTask(#[from] tokio::task::JoinError),
    /// A statement failed.
    #[error("invoice statement failed")]
    Database(#[from] sqlx::Error),
    /// The order store or the outbox failed.
    #[error("order update failed")]
    Store(#[from] orders::OrdersError),
    /// The emitted event could not be encoded.
    #[error("the invoice.generated event could not be encoded")]
    Encode(#[from] serde_json::Error),
}

impl Classify for InvoiceError {
    fn failure(&self) -> Failure {
        match self {
            InvoiceError::Database(e) => e.failure(),
            InvoiceError::Store(e) => e.failure(),
            InvoiceError::RenderTask(_) => Failure::Retryable,
            _ => Failure::Permanent,
        }
    }
}

/// The invoice-service's handler.
#[derive(Debug, Clone)]
pub struct InvoiceHandler {
    seller: Seller,
    /// For orders placed before quotes were stored with them.
    prices: PriceRules,
}

impl InvoiceHandler {
    /// A handler issuing invoices as configured.
    ///
    /// # Errors
    /// A rate the settings refuse (which loading them has already refused).
    pub fn new(settings: &InvoiceSettings) -> Result<Self, settings::SettingsError> {
        let seller = Seller {
            name: settings.seller_name.clone(),
            address_lines: settings
                .seller_address
                .split('|')
                .map(str::to_owned)
                .collect(),
            vat_id: Some(settings.seller_vat_id.clone()).filter(|v| !v.is_empty()),
            email: settings.seller_email.clone(),
        };
        Ok(InvoiceHandler {
            seller,
            prices: settings.price_rules()?,
        })
    }

    async fn invoice(&self, event: &Event, tx: &mut PgConnection) -> Result<(), InvoiceError> {
        let order_id = event.order_id;
        let status = orders::lock_status(tx, order_id)
            .await?
            .ok_or(InvoiceError::OrderNotFound(order_id))?;
        // An invoice is written only by the transaction that moves the order past `placed`, so
        // this also keeps an order from getting a second one.
        if let Err(refused) = status.transition(OrderStatus::Invoiced) {
            tracing::warn!(error = %refused, "not invoicing an order in this state");
            return Ok(());
        }
        let doc = self.document(tx, order_id).await?;
        let pdf = render(doc.clone()).await?;
        store::insert(tx, &doc, &pdf).await?;
        if let Transition::Rejected(refused) =
            orders::transition(tx, order_id, status, OrderStatus::Invoiced).await?
        {
            tracing::warn!(error = %refused, "transition refused");
            return Ok(());
        }
        emit_invoice_generated(tx, event, &doc).await
    }

    async fn document(
        &self,
        tx: &mut PgConnection,
        order_id: Uuid,
    ) -> Result<InvoiceDocument, InvoiceError> {
        let order = store::order(tx, order_id)
            .await?
            .ok_or(InvoiceError::OrderNotFound(order_id))?;
        let lines = store::lines(tx, order_id).await?;
        let totals = self.totals(&order, &lines)?;
        let issued_on = store::today();
        let number = store::next_number(tx, issued_on.year()).await?;
        Ok(InvoiceDocument {
            number,
            issued_on,
            order_id,
            seller: self.seller.clone(),
            bill_to: order.bill_to(),
            currency: Currency::parse(&order.currency)?,
            lines,
            totals,
        })
    }
}

impl InvoiceHandler {
    /// The invoice's amounts: the order's stored quote, recomputed from its lines and checked
    /// against it; for an order placed before quotes were stored, today's rules for its country.
    fn totals(
        &self,
        order: &store::OrderForInvoice,
        lines: &[InvoiceLine],
    ) -> Result<InvoiceTotals, InvoiceError> {
        let Some(quote) = order.quote()? else {
            return Ok(domain::quote(lines, &self.prices, &order.ship_country)?);
        };
        let totals = domain::compute_totals(lines, quote.shipping_minor, quote.tax_rate)?;
        if totals != quote {
            return Err(InvoiceError::QuoteMismatch {
                quoted: quote.total_minor,
                invoiced: totals.total_minor,
            });
        }
        Ok(totals)
    }
}

/// Renders off the async threads: a long invoice takes milliseconds of CPU.
async fn render(doc: InvoiceDocument) -> Result<Vec<u8>, InvoiceError> {
    Ok(tokio::task::spawn_blocking(move || pdf::render(&doc)).await??)
}

async fn emit_invoice_generated(
    tx: &mut PgConnection,
    cause: &Event,
    doc: &InvoiceDocument,
) -> Result<(), InvoiceError> {
    let totals = &doc.totals;
    let payload = InvoiceGenerated {
        invoice_number: doc.number.to_string(),
        currency: doc.currency,
        subtotal_minor: totals.subtotal_minor,
        shipping_minor: totals.shipping_minor,
        tax_minor: totals.tax_minor,
        total_minor: totals.total_minor,
    };
    let envelope = EventEnvelope::new(
        EventType::InvoiceGenerated,
        cause.order_id,
        cause.correlation_id.clone(),
        cause.traceparent.clone(),
        &payload,
    )?;
    let detail = serde_json::json!({
        "invoice_number": payload.invoice_number,
        "total_minor": payload.total_minor,
    });
    orders::record_event(tx, &envelope, detail).await?;
    tracing::info!(invoice.number = %doc.number, total_minor = totals.total_minor, "invoice issued");
    Ok(())
}

impl Handler for InvoiceHandler {
    type Error = InvoiceError;

    fn consumer(&self) -> Consumer {
        Consumer::Invoice
    }

    async fn handle(&self, event: &Event, tx: &mut PgConnection) -> Result<(), InvoiceError> {
        match &event.body {
            EventBody::OrderPlaced(_) => self.invoice(event, tx).await,
            other => Err(InvoiceError::UnexpectedEvent(other.event_type())),
        }
    }
}
