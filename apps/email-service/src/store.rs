//! The email-service's SQL: who the order's e-mails go to, what to show, the sign-in request a
//! sign-in e-mail answers, the intent committed before an e-mail is handed to the server
//! ([`claim`], or [`claim_order_emails`] with the order's data) and the record of the server's
//! answer with the event's inbox row ([`record_answers`]) that together make every e-mail happen
//! at most once per event (see [`crate::delivery`]).
//!
//! An order e-mail costs two statements, each shared with the other e-mails of the moment
//! ([`crate::group`]): [`claim_order_emails`] (the inbox read, the order with its customer,
//! lines and invoice, and the intent) before the send ([`crate::claims`]), [`record_answers`]
//! after it ([`crate::answers`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::Consumer;
use sqlx::{PgConnection, PgExecutor, PgPool, types::Json};
use uuid::Uuid;

/// The inbox key of the e-mail worker.
const CONSUMER: Consumer = Consumer::Email;

/// The order as its e-mails show it.
#[derive(Debug, sqlx::FromRow)]
pub struct OrderForEmail {
    /// The customer's e-mail address (never logged).
    pub email: String,
    /// The name the order was placed with (never another order's: see the web-server's
    /// `upsert_customer`).
    pub name: String,
    /// ISO currency code.
    pub currency: String,
    /// Sum of the lines, in minor units.
    pub subtotal_minor: i64,
    /// The shipping fee quoted at checkout (null for orders placed before quotes were stored).
    pub shipping_minor: Option<i64>,
    /// The tax quoted at checkout (as `shipping_minor`).
    pub tax_minor: Option<i64>,
    /// The total quoted at checkout: what is charged (as `shipping_minor`).
    pub total_minor: Option<i64>,
}

/// One line of the order.
#[derive(Debug, sqlx::FromRow, serde::Deserialize)]
pub struct LineForEmail {
    /// SKU.
    pub sku: String,
    /// Product name at purchase.
    pub name: String,
    /// Units.
    pub quantity: i32,
    /// Unit price in minor units.
    pub unit_price_minor: i64,
    /// Line total in minor units.
    pub line_total_minor: i64,
}

/// The stored invoice of an order.
#[derive(Debug, sqlx::FromRow)]
pub struct InvoiceForEmail {
    /// `INV-…`.
    pub number: String,
    /// Total in minor units.
    pub total_minor: i64,
    /// The PDF.
    pub pdf: Vec<u8>,
}

/// A sign-in request as its e-mail needs it.
#[derive(Debug, sqlx::FromRow)]
pub struct SignInForEmail {
    /// The address the link was asked for (never logged).
    pub email: String,
    /// When the link stops working.
    pub expires_at: DateTime<Utc>,
    /// Whether the request is still unused and unexpired.
    pub usable: bool,
    /// The name given at the latest checkout of a customer with this address (in any letter
    /// case) who has orders; `None` when the address has no orders.
    pub customer_name: Option<String>,
    /// What the worker already did with the request (`sent`, `rejected`, `no_orders`, `stale`),
    /// if an earlier delivery of its event recorded it.
    pub mail_outcome: Option<String>,
}

/// The sign-in request `request_id`, or `None` when it does not exist (any more).
#[tracing::instrument(level = "debug", name = "email.sign_in_request", skip_all, fields(db.system.name = "postgresql"))]
pub async fn sign_in_request<'e>(
    executor: impl PgExecutor<'e>,
    request_id: Uuid,
) -> sqlx::Result<Option<SignInForEmail>> {
    sqlx::query_as(
        "SELECT r.email, r.expires_at, (r.used_at IS NULL AND r.expires_at > now()) AS usable,
                r.mail_outcome,
                (SELECT c.name FROM customers c
                 WHERE lower(c.email) = lower(r.email)
                   AND EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id)
                 ORDER BY (SELECT max(o.created_at) FROM orders o WHERE o.customer_id = c.id) DESC
                 LIMIT 1) AS customer_name
         FROM sign_in_requests r WHERE r.id = $1",
    )
    .bind(request_id)
    .fetch_optional(executor)
    .await
}

/// Records what the worker did with a sign-in request: `sent`, `rejected`, `no_orders` or
/// `stale`; the first outcome recorded stays.
#[tracing::instrument(level = "debug", name = "email.record_sign_in_outcome", skip_all, fields(db.system.name = "postgresql"))]
pub async fn record_sign_in_outcome<'e>(
    executor: impl PgExecutor<'e>,
    request_id: Uuid,
    outcome: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE sign_in_requests SET mail_outcome = $2 WHERE id = $1 AND mail_outcome IS NULL",
    )
    .bind(request_id)
    .bind(outcome)
    .execute(executor)
    .await?;
    Ok(())
}

/// What a delivery of an event may do with the event's e-mail ([`claim`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Hand it to the server: the intent is committed and this delivery holds it.
    Send {
        /// 1 for the first attempt; more when an earlier attempt's answer was never recorded.
        attempt: i32,
        /// The `Message-ID` the intent was first recorded with: every attempt carries it.
        message_id: String,
    },
    /// Send nothing, for this reason.
    Not(Unclaimed),
}

/// Why a delivery may not send the event's e-mail ([`not_claimed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unclaimed {
    /// The server's answer to an earlier attempt is recorded.
    Answered,
    /// Another delivery holds the intent and may still be talking to the server or recording
    /// its answer, for at most this long.
    Held(Duration),
    /// The event's inbox row is committed (and it has no intent): its e-mail was handled.
    Handled,
}

/// Commits the intent to send the e-mail of `event_id` with `message_id` (the first attempt),
/// or takes over an unanswered intent whose holder's time has run out (a re-send, with the
/// intent's own `Message-ID`). The holder's time is `hold` from now: no other delivery sends
/// before it has passed, unless the holder gives the intent back ([`release`]). Claims nothing
/// when the event's inbox row is committed ([`Unclaimed::Handled`]).
#[tracing::instrument(level = "debug", name = "email.claim", skip_all, fields(db.system.name = "postgresql"))]
pub async fn claim(
    conn: &mut PgConnection,
    event_id: Uuid,
    message_id: &str,
    hold: Duration,
) -> sqlx::Result<Claim> {
    let claimed: Option<(i32, String)> = sqlx::query_as(
        "INSERT INTO email_intents AS i (event_id, message_id, claimed_until)
         SELECT $1, $2, clock_timestamp() + make_interval(secs => $3)
         WHERE NOT EXISTS (SELECT 1 FROM inbox WHERE consumer = $4 AND event_id = $1)
         ON CONFLICT (event_id) DO UPDATE
            SET attempts = i.attempts + 1, claimed_until = EXCLUDED.claimed_until
          WHERE i.answered_at IS NULL AND i.claimed_until <= clock_timestamp()
         RETURNING i.attempts, i.message_id",
    )
    .bind(event_id)
    .bind(message_id)
    .bind(hold.as_secs_f64())
    .bind(CONSUMER.name())
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match claimed {
        Some((attempt, message_id)) => Claim::Send {
            attempt,
            message_id,
        },
        None => Claim::Not(not_claimed(&mut *conn, event_id).await?),
    })
}

/// Why a claim did not take the intent of `event_id`: its answer is recorded, another delivery
/// holds it, or (no intent) the inbox holds the event.
pub async fn not_claimed<'e>(
    executor: impl PgExecutor<'e>,
    event_id: Uuid,
) -> sqlx::Result<Unclaimed> {
    let intent: Option<(bool, f64)> = sqlx::query_as(
        "SELECT answered_at IS NOT NULL,
                GREATEST(EXTRACT(EPOCH FROM claimed_until - clock_timestamp()), 0)::float8
         FROM email_intents WHERE event_id = $1",
    )
    .bind(event_id)
    .fetch_optional(executor)
    .await?;
    Ok(match intent {
        None => Unclaimed::Handled,
        Some((true, _)) => Unclaimed::Answered,
        Some((false, held_s)) => Unclaimed::Held(Duration::from_secs_f64(held_s)),
    })
}

/// An order e-mail's data and its claim, read and made in one statement
/// ([`claim_order_emails`]).
#[derive(Debug)]
pub struct OrderEmail {
    /// The event's inbox row is committed: its e-mail was handled, nothing was claimed.
    pub handled: bool,
    /// The claim taken: the attempt and the intent's `Message-ID`; `None` when the intent is
    /// answered or held by another delivery ([`not_claimed`] tells which), or nothing was
    /// claimed because the event is handled or its data is missing.
    pub claimed: Option<(i32, String)>,
    /// The order, or `None` when it does not exist.
    pub order: Option<OrderForEmail>,
    /// The order's lines, in order.
    pub lines: Vec<LineForEmail>,
    /// The order's invoice, when asked for and there is one.
    pub invoice: Option<InvoiceForEmail>,
}

/// A row of [`claim_order_emails`]'s statement.
#[derive(sqlx::FromRow)]
struct OrderEmailRow {
    handled: bool,
    attempt: Option<i32>,
    message_id: Option<String>,
    email: Option<String>,
    name: Option<String>,
    currency: Option<String>,
    subtotal_minor: Option<i64>,
    shipping_minor: Option<i64>,
    tax_minor: Option<i64>,
    total_minor: Option<i64>,
    lines: Json<Vec<LineForEmail>>,
    invoice_number: Option<String>,
    invoice_total_minor: Option<i64>,
    invoice_pdf: Option<Vec<u8>>,
}

/// One order e-mail to claim ([`claim_order_emails`]).
#[derive(Debug, Clone)]
pub struct OrderEmailClaim {
    /// The event the e-mail is for.
    pub event_id: Uuid,
    /// Its order.
    pub order_id: Uuid,
    /// Whether the e-mail carries the order's invoice (and needs it to be sent).
    pub with_invoice: bool,
    /// The `Message-ID` for a first attempt.
    pub message_id: String,
    /// How long the claim holds the intent.
    pub hold: Duration,
}

/// In one statement, for each of `claims` (one result each, in their order): whether the event's
/// inbox row is committed, the order with its customer and lines (and its issued invoice, PDF
/// stored, when `with_invoice`), and — when the event is not handled and the data is there —
/// the claim [`claim`] makes, with the request's `message_id` for a first attempt and a hold of
/// its `hold`. An event asked for twice in one call is claimed for its first request only (the
/// other finds it held). One statement for many claims is what [`crate::claims`] batches with.
#[tracing::instrument(level = "debug", name = "email.claim_order_emails", skip_all, fields(db.system.name = "postgresql", claims = claims.len()))]
pub async fn claim_order_emails(
    pool: &PgPool,
    claims: &[&OrderEmailClaim],
) -> sqlx::Result<Vec<OrderEmail>> {
    let rows: Vec<OrderEmailRow> = sqlx::query_as(
        "WITH req AS (
             SELECT * FROM unnest($2::uuid[], $3::uuid[], $4::bool[], $5::text[], $6::float8[])
                           WITH ORDINALITY AS r(event_id, order_id, with_invoice, message_id, hold_s, n)
         ), found AS (
             SELECT r.*,
                    (SELECT true FROM inbox WHERE consumer = $1 AND event_id = r.event_id)
                        IS NOT NULL AS handled,
                    ord.email, ord.name, ord.currency, ord.subtotal_minor, ord.shipping_minor,
                    ord.tax_minor, ord.total_minor,
                    inv.number AS invoice_number, inv.total_minor AS invoice_total_minor,
                    inv.pdf AS invoice_pdf,
                    r.n = min(r.n) OVER (PARTITION BY r.event_id) AS first
             FROM req r
             LEFT JOIN LATERAL (
                 SELECT c.email, o.ship_name AS name, o.currency::text AS currency,
                        o.subtotal_minor, o.shipping_minor, o.tax_minor, o.total_minor
                 FROM orders o JOIN customers c ON c.id = o.customer_id
                 WHERE o.id = r.order_id
                 LIMIT 1
             ) ord ON true
             LEFT JOIN LATERAL (
                 SELECT number, total_minor, pdf FROM invoices
                 WHERE order_id = r.order_id AND r.with_invoice AND pdf IS NOT NULL
                 LIMIT 1 -- not pulled up: a generic plan would hash all the invoices
             ) inv ON true
         ), claimed AS (
             INSERT INTO email_intents AS i (event_id, message_id, claimed_until)
             SELECT event_id, message_id, clock_timestamp() + make_interval(secs => hold_s)
             FROM found
             WHERE first AND NOT handled AND email IS NOT NULL
               AND (NOT with_invoice OR invoice_number IS NOT NULL)
             ON CONFLICT (event_id) DO UPDATE
                SET attempts = i.attempts + 1, claimed_until = EXCLUDED.claimed_until
              WHERE i.answered_at IS NULL AND i.claimed_until <= clock_timestamp()
             RETURNING i.event_id, i.attempts, i.message_id
         )
         SELECT f.handled, c.attempts AS attempt, c.message_id, f.email, f.name, f.currency,
                f.subtotal_minor, f.shipping_minor, f.tax_minor, f.total_minor,
                (SELECT coalesce(jsonb_agg(jsonb_build_object(
                             'sku', sku, 'name', name, 'quantity', quantity,
                             'unit_price_minor', unit_price_minor,
                             'line_total_minor', line_total_minor) ORDER BY line_no), '[]')
                 FROM order_items WHERE order_id = f.order_id) AS lines,
                f.invoice_number, f.invoice_total_minor, f.invoice_pdf
         FROM found f LEFT JOIN claimed c ON c.event_id = f.event_id AND f.first
         ORDER BY f.n",
    )
    .bind(CONSUMER.name())
    .bind(claims.iter().map(|c| c.event_id).collect::<Vec<_>>())
    .bind(claims.iter().map(|c| c.order_id).collect::<Vec<_>>())
    .bind(claims.iter().map(|c| c.with_invoice).collect::<Vec<_>>())
    .bind(claims.iter().map(|c| c.message_id.as_str()).collect::<Vec<_>>())
    .bind(claims.iter().map(|c| c.hold.as_secs_f64()).collect::<Vec<_>>())
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(OrderEmail::from).collect())
}

impl From<OrderEmailRow> for OrderEmail {
    fn from(row: OrderEmailRow) -> Self {
        let order = row.email.map(|email| OrderForEmail {
            email,
            name: row.name.unwrap_or_default(),
            currency: row.currency.unwrap_or_default(),
            subtotal_minor: row.subtotal_minor.unwrap_or_default(),
            shipping_minor: row.shipping_minor,
            tax_minor: row.tax_minor,
            total_minor: row.total_minor,
        });
        let invoice = row.invoice_number.map(|number| InvoiceForEmail {
            number,
            total_minor: row.invoice_total_minor.unwrap_or_default(),
            pdf: row.invoice_pdf.unwrap_or_default(),
        });
        OrderEmail {
            handled: row.handled,
            claimed: row.attempt.zip(row.message_id),
            order,
            lines: row.lines.0,
            invoice,
        }
    }
}

/// Records that the e-mail worker handled `event_id` (an event with no e-mail to send, or whose
/// e-mail an earlier delivery recorded) in a statement of its own: `true` when this call wrote
/// the inbox row, `false` when it was there.
#[tracing::instrument(level = "debug", name = "email.mark_handled", skip_all, fields(db.system.name = "postgresql"))]
pub async fn mark_handled(pool: &PgPool, event_id: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(CONSUMER.name())
    .bind(event_id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Renews the hold of `attempt` on the intent of `event_id` to `hold` from now, while it is
/// unanswered: the delivery holding it is still at work. `false` when it holds it no more.
#[tracing::instrument(level = "debug", name = "email.renew_hold", skip_all, fields(db.system.name = "postgresql"))]
pub async fn renew_hold(
    pool: &PgPool,
    event_id: Uuid,
    attempt: i32,
    hold: Duration,
) -> sqlx::Result<bool> {
    let renewed = sqlx::query(
        "UPDATE email_intents SET claimed_until = clock_timestamp() + make_interval(secs => $3)
         WHERE event_id = $1 AND attempts = $2 AND answered_at IS NULL",
    )
    .bind(event_id)
    .bind(attempt)
    .bind(hold.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(renewed.rows_affected() == 1)
}

/// Gives back the intent of `event_id` held by `attempt` when its e-mail was not handed over (the
/// server was down or answered "try later"), so that the next delivery need not wait out the
/// hold.
#[tracing::instrument(level = "debug", name = "email.release", skip_all, fields(db.system.name = "postgresql"))]
pub async fn release(pool: &PgPool, event_id: Uuid, attempt: i32) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE email_intents SET claimed_until = clock_timestamp()
         WHERE event_id = $1 AND attempts = $2 AND answered_at IS NULL",
    )
    .bind(event_id)
    .bind(attempt)
    .execute(pool)
    .await?;
    Ok(())
}

/// Whether [`record_answers`] wrote the answer or found it written already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// This call recorded it.
    Now,
    /// It was recorded before (by an attempt whose commit went through unseen, or by another
    /// delivery): nothing was written.
    Before,
}

/// In one statement (so in one round trip, keeping the window after the server's answer
/// short), for each of `answers`: marks the e-mail's intent answered and records the answer
/// ([`SentEmail`]), adds it to the order's timeline (`email.sent` or `email.rejected`, so the
/// order page shows it; an e-mail of no order, sign-in, goes on no timeline), for a sign-in
/// e-mail sets the request's outcome, and writes the event's inbox row: the event is handled
/// when its e-mail's answer is recorded, so both commit together. Writes only the inbox row (if
/// missing) for an intent already answered. Returns the events whose answers this call
/// recorded; the others had theirs recorded before. One statement for many answers is what
/// [`crate::answers`] batches with; an answer given twice is recorded once.
#[tracing::instrument(level = "debug", name = "email.record_answers", skip_all, fields(db.system.name = "postgresql", answers = answers.len()))]
pub async fn record_answers(pool: &PgPool, answers: &[&SentEmail]) -> sqlx::Result<Vec<Uuid>> {
    let column =
        |field: fn(&SentEmail) -> &str| -> Vec<&str> { answers.iter().map(|a| field(a)).collect() };
    sqlx::query_scalar(
        "WITH answer AS (
             SELECT DISTINCT ON (event_id) *
             FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::uuid[])
                  AS a(event_id, order_id, kind, message_id, status, smtp_response, sign_in_request)
             ORDER BY event_id
         ), marked AS (
             -- `= ANY` rather than a join with `answer`: its plan probes the key even when
             -- made for a table that looked empty (a join's would scan it all).
             UPDATE email_intents i SET answered_at = clock_timestamp()
             WHERE i.event_id = ANY($1) AND i.answered_at IS NULL
             RETURNING i.event_id
         ), answered AS (
             SELECT a.* FROM answer a JOIN marked USING (event_id)
         ), sent AS (
             INSERT INTO sent_emails (event_id, order_id, kind, message_id, status, smtp_response)
             SELECT event_id, order_id, kind, message_id, status, smtp_response FROM answered
         ), timeline AS (
             INSERT INTO order_timeline (event_id, order_id, event_type, occurred_at, detail)
             SELECT gen_random_uuid(), order_id,
                    CASE WHEN status = 'sent' THEN 'email.sent' ELSE 'email.rejected' END,
                    clock_timestamp(), jsonb_build_object('kind', kind)
             FROM answered WHERE order_id IS NOT NULL
         ), sign_in AS (
             UPDATE sign_in_requests r SET mail_outcome = a.status
             FROM answered a
             WHERE r.id = a.sign_in_request AND r.mail_outcome IS NULL
         ), handled AS (
             INSERT INTO inbox (consumer, event_id)
             SELECT $8, event_id FROM answer
             ON CONFLICT DO NOTHING
         )
         SELECT event_id FROM answered",
    )
    .bind(answers.iter().map(|a| a.event_id).collect::<Vec<_>>())
    .bind(answers.iter().map(|a| a.order_id).collect::<Vec<_>>())
    .bind(column(|a| &a.kind))
    .bind(column(|a| &a.message_id))
    .bind(column(|a| a.status))
    .bind(column(|a| &a.smtp_response))
    .bind(
        answers
            .iter()
            .map(|a| a.sign_in_request)
            .collect::<Vec<_>>(),
    )
    .bind(CONSUMER.name())
    .fetch_all(pool)
    .await
}

/// What became of one e-mail: the server's answer, as [`record_answers`] records it.
#[derive(Debug, Clone)]
pub struct SentEmail {
    /// The event it was sent for.
    pub event_id: Uuid,
    /// The order; `None` for a sign-in e-mail.
    pub order_id: Option<Uuid>,
    /// The sign-in request a sign-in e-mail answers (its outcome is set with the answer).
    pub sign_in_request: Option<Uuid>,
    /// The template kind.
    pub kind: String,
    /// The `Message-ID` header value.
    pub message_id: String,
    /// `sent` or `rejected`.
    pub status: &'static str,
    /// The server's reply.
    pub smtp_response: String,
}
