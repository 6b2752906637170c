//! `order.placed` → an invoice: amounts, a gap-free number, a PDF, the order moved to
//! `invoiced`, and `invoice.generated` emitted.
//!
//! Under the worker runtime ([`Handler::run`]) that is two short transactions with the render
//! between them, so that the year's counter row is locked only from taking a number to the
//! commit right after it, never while a PDF renders (which made all invoicing serial):
//!
//! 1. **Number.** Lock the order's row; unless the order is `placed` and the inbox does not hold
//!    the event yet (read in the same statement), there is nothing to do.
//!    Reuse the number an earlier attempt committed (its row exists, without PDF), or take the
//!    year's next number and store the numbered invoice row (one statement). Commit.
//! 2. **Render** the PDF, holding no connection.
//! 3. **Issue**, in one transaction: write the event's inbox row and store the PDF (one
//!    statement; nothing if the row was there), then move the order `placed → invoiced` and
//!    record `invoice.generated`, if it is still `placed` (one statement). Commit.
//!
//! What can happen between the steps:
//! - A crash, a timeout or a failed commit after step 1 leaves the numbered row without its PDF;
//!   the redelivery finds it under the lock and renders the same number and date. A committed
//!   number is never given back nor taken twice: the numbers stay gap-free.
//! - Two deliveries at once: the second waits for the order's lock in step 1 and finds the
//!   first's number; both render, only one passes the inbox in step 3.
//! - A cancellation between steps 1 and 3: the invoice keeps its number and gets its PDF, the
//!   order stays cancelled, nothing is emitted (nothing is charged).
//! - A PDF that cannot be rendered (a permanent failure): the message is parked, the numbered
//!   row stays without PDF and the order `placed` until its expiry cancels it.
//!
//! Readers (the order page, the invoice download, the e-mail) show an invoice only once its PDF
//! is stored. [`Handler::handle`] runs the same three steps in the caller's one transaction.

use domain::{
    Consumer, Currency, Event, EventBody, EventEnvelope, EventType, InvoiceDocument,
    InvoiceGenerated, InvoiceLine, InvoiceTotals, OrderStatus, PriceRules, Seller,
};
use settings::InvoiceSettings;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;
use worker::{Classify, Failure, Handled, Handler, RunError};

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
    /// The order's stored status is not one this build knows.
    #[error("the order's status is unknown")]
    Status(#[from] domain::order::UnknownStatus),
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

    /// Step 1 (module doc): the document to render, with its number written in `conn`'s
    /// transaction, or why there is none. `event`: the event to look up in the inbox first, in
    /// the same statement as the order (`None`: the caller's transaction holds its row).
    async fn number(
        &self,
        conn: &mut PgConnection,
        order_id: Uuid,
        event: Option<Uuid>,
    ) -> Result<Numbered, InvoiceError> {
        let mut order = store::lock_order(conn, order_id, self.consumer().name(), event)
            .await?
            .ok_or(InvoiceError::OrderNotFound(order_id))?;
        if order.handled {
            return Ok(Numbered::Handled);
        }
        let status: OrderStatus = order.status.parse()?;
        // An invoice is numbered only while the order is `placed` and issued only by the
        // statement that moves it on, so an order never gets a second one.
        if status != OrderStatus::Placed {
            return Ok(Numbered::NotPlaced(status));
        }
        let lines = std::mem::take(&mut order.lines.0);
        let totals = self.totals(&order, &lines)?;
        let currency = Currency::parse(&order.currency)?;
        let (number, issued_on) = match order.numbered() {
            Some(numbered) => numbered,
            None => {
                let unnumbered = store::Unnumbered {
                    order_id,
                    issued_on: store::today(),
                    currency,
                    totals: &totals,
                };
                let number = store::insert_next_numbered(conn, &unnumbered).await?;
                (number, unnumbered.issued_on)
            }
        };
        let doc = InvoiceDocument {
            number,
            issued_on,
            order_id,
            seller: self.seller.clone(),
            bill_to: order.bill_to(),
            currency,
            lines,
            totals,
        };
        Ok(Numbered::Document(Box::new(doc)))
    }

    /// Step 1 in a transaction of its own, committed before anything renders.
    async fn number_apart(&self, pool: &PgPool, event: &Event) -> Result<Numbered, InvoiceError> {
        let mut tx = pool.begin().await?;
        let numbered = self.number(&mut tx, event.order_id, Some(event.id)).await?;
        tx.commit().await?;
        Ok(numbered)
    }

    /// Step 3 (module doc) in `conn`'s transaction: with `inbox`, the event's inbox row is
    /// written in the statement that stores the PDF (`false`, nothing written, when the row was
    /// there: handled before); without, the caller's transaction holds it. Then the order moves
    /// `placed → invoiced` with `invoice.generated` recorded, in one statement, if it is still
    /// `placed`.
    async fn issue(
        &self,
        event: &Event,
        conn: &mut PgConnection,
        doc: &InvoiceDocument,
        pdf: &[u8],
        inbox: Option<Uuid>,
    ) -> Result<bool, InvoiceError> {
        let inbox = inbox.map(|event_id| (self.consumer().name(), event_id));
        if !store::store_pdf(conn, doc.order_id, pdf, inbox).await? {
            return Ok(false);
        }
        let (envelope, detail) = invoice_generated(event, doc)?;
        let moved = orders::advance_if(
            conn,
            OrderStatus::Placed,
            OrderStatus::Invoiced,
            &envelope,
            detail,
        )
        .await?;
        if moved {
            tracing::info!(invoice.number = %doc.number, total_minor = doc.totals.total_minor, "invoice issued");
        } else {
            tracing::warn!(
                invoice.number = %doc.number,
                "the order left `placed` after its invoice was numbered: the invoice is kept, nothing is emitted"
            );
        }
        Ok(true)
    }
}

/// What step 1 found.
enum Numbered {
    /// The inbox holds the event: handled before.
    Handled,
    /// The order is past `placed` (invoiced before, or cancelled): nothing to invoice.
    NotPlaced(OrderStatus),
    /// The numbered invoice to render and issue.
    Document(Box<InvoiceDocument>),
}

fn not_invoicing(status: OrderStatus) {
    tracing::warn!(status = %status, "not invoicing an order in this state");
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
#[tracing::instrument(level = "debug", name = "invoice.render_pdf", skip_all)]
async fn render(doc: InvoiceDocument) -> Result<Vec<u8>, InvoiceError> {
    Ok(tokio::task::spawn_blocking(move || pdf::render(&doc)).await??)
}

/// The `invoice.generated` event of `doc`, caused by `cause`, and its timeline detail.
fn invoice_generated(
    cause: &Event,
    doc: &InvoiceDocument,
) -> Result<(EventEnvelope, serde_json::Value), InvoiceError> {
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
    Ok((envelope, detail))
}

impl Handler for InvoiceHandler {
    type Error = InvoiceError;

    fn consumer(&self) -> Consumer {
        Consumer::Invoice
    }

    /// The three steps (module doc) in the caller's one transaction.
    async fn handle(&self, event: &Event, tx: &mut PgConnection) -> Result<(), InvoiceError> {
        placed(event)?;
        let doc = match self.number(tx, event.order_id, None).await? {
            Numbered::Document(doc) => doc,
            Numbered::NotPlaced(status) => {
                not_invoicing(status);
                return Ok(());
            }
            // Not asked: the caller's transaction holds the event's inbox row.
            Numbered::Handled => return Ok(()),
        };
        let pdf = render((*doc).clone()).await?;
        self.issue(event, tx, &doc, &pdf, None).await?;
        Ok(())
    }

    /// The three steps (module doc), each transaction short and none open while rendering.
    async fn run(&self, event: &Event, pool: &PgPool) -> Result<Handled, RunError<InvoiceError>> {
        placed(event).map_err(RunError::Handler)?;
        let rendered = match self.number_apart(pool, event).await {
            Ok(Numbered::Document(doc)) => {
                let pdf = render((*doc).clone()).await.map_err(RunError::Handler)?;
                Ok((doc, pdf))
            }
            Ok(Numbered::NotPlaced(status)) => Err(status),
            Ok(Numbered::Handled) => return Ok(Handled::Duplicate),
            Err(e) => return Err(RunError::Handler(e)),
        };
        let (doc, pdf) = match rendered {
            Ok(rendered) => rendered,
            Err(status) => {
                let Some(tx) = worker::begin_with_inbox(pool, self.consumer(), event.id).await?
                else {
                    return Ok(Handled::Duplicate);
                };
                // Logged only now: a redelivery of a handled event is a duplicate, not news.
                not_invoicing(status);
                tx.commit().await?;
                return Ok(Handled::Done);
            }
        };
        let mut tx = pool.begin().await?;
        let issued = self
            .issue(event, &mut tx, &doc, &pdf, Some(event.id))
            .await
            .map_err(RunError::Handler)?;
        if !issued {
            return Ok(Handled::Duplicate);
        }
        tx.commit().await?;
        Ok(Handled::Done)
    }
}

/// Refuses an event other than `order.placed`.
fn placed(event: &Event) -> Result<(), InvoiceError> {
    match &event.body {
        EventBody::OrderPlaced(_) => Ok(()),
        other => Err(InvoiceError::UnexpectedEvent(other.event_type())),
    }
}
