//! One e-mail handed to the SMTP server as close to once as SMTP allows, with no transaction (and
//! no pool connection) held while the server is talking.
//!
//! 1. **Intent.** [`store::claim`] commits the intent to send the event's e-mail, with its
//!    `Message-ID`, in a statement of its own, before the server is contacted (for an order
//!    e-mail, [`store::claim_order_emails`] does it in the statement that reads the order's
//!    data, shared with the claims of other e-mails of the moment: [`crate::claims`]). Nothing
//!    is claimed for an event whose inbox row is committed. The delivery now holds the
//!    intent for [`INTENT_HOLD`] (at most the handler's timeout), renewed every third of it for
//!    as long as it is sending or recording ([`store::renew_hold`]). A delivery that dies (a
//!    killed worker) lets go within that time, so its message, back after the visibility
//!    timeout, finds the intent free; a hold for the whole handler timeout (30 s) made such a
//!    message wait twice and miss the 15 s recovery target.
//! 2. **Send.** The e-mail goes to the server. If it is not handed over (server down, a `4xx`, a
//!    timeout), the intent is given back ([`store::release`]) and the message comes back later.
//! 3. **Answer.** The server's answer (`sent`, or `rejected` for a `5xx`) is recorded in one
//!    statement ([`store::record_answers`]: intent answered, `sent_emails` row, timeline, a
//!    sign-in request's outcome, the event's inbox row; shared with the answers of other e-mails
//!    that come at the same time, [`crate::answers`]), retried with backoff (50 ms growing to
//!    1 s, with jitter) until it commits or until 1 s before the handler's timeout (29 s by
//!    default, measured from the start of the handler's work; at least 4 s after the slowest,
//!    10 s, SMTP conversation under the deployed e-mail function's 15 s). A PostgreSQL restart or a failed commit
//!    inside that time costs no second e-mail.
//!
//! A redelivery of the event finds the intent: answered → it sends nothing; held by a delivery
//! still within its time → it comes back once that time is over; unanswered and no longer held
//! → it sends again, with the intent's `Message-ID` and the same content (links and tokens are
//! computed from the event alone), which mail clients show once.
//!
//! **The window left.** The process is killed (or PostgreSQL stays away past the retry bound)
//! between the server's acceptance and the commit of its answer: the e-mail is sent once more,
//! with the same `Message-ID`, when the message comes back after the holder's time. The window is
//! the time from the server's answer to that commit (`window` of [`Delivered::Sent`]), logged with
//! every e-mail (`window_us`) and measured by `tests/it/window.rs` over 300 e-mails: p50 0.9–1.0 ms
//! and p99 6–9 ms one e-mail at a time, p50 1.7–3.6 ms and p99 20–23 ms with ten at once (three
//! runs of a debug build against the test PostgreSQL on the 2-core development machine while
//! other builds ran); with the inbox row in the same statement, p50 0.55 ms and p99 1.7 ms one at
//! a time, p50 0.7 ms and p99 14 ms ten at once (one run, the machine less busy; runs during
//! builds gave p99 6–23 ms and 30–69 ms). It is one pool checkout and one statement with its
//! commit: the record is written by a single statement, not a transaction of several.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use backon::{ExponentialBuilder, Retryable};
use sqlx::{PgPool, Postgres, pool::PoolConnection};
use uuid::Uuid;
use worker::{Classify, Failure};

use crate::{
    answers::Answers,
    handler::EmailError,
    mailer::{Delivery, Mailer, Outgoing},
    store::{self, Claim, Recorded, SentEmail, Unclaimed},
    templates::RenderedEmail,
};

/// Delays between attempts to record the server's answer: 50 ms, doubling to at most 1 s, each
/// with jitter; as many attempts as fit before the deadline.
const ANSWER_BACKOFF: ExponentialBuilder = ExponentialBuilder::new()
    .with_min_delay(Duration::from_millis(50))
    .with_max_delay(Duration::from_secs(1))
    .with_jitter()
    .without_max_times();

/// How long before the handler's timeout the worker stops trying to record an answer, so that
/// it gives up (and says so) rather than being abandoned mid-way by the runtime.
const ANSWER_MARGIN: Duration = Duration::from_secs(1);

/// An e-mail of one event, rendered and addressed, not yet sent.
#[derive(Debug)]
pub struct Letter<'a> {
    /// The event the e-mail is for.
    pub event_id: Uuid,
    /// The order; `None` for a sign-in e-mail.
    pub order_id: Option<Uuid>,
    /// The sign-in request a sign-in e-mail answers; its outcome is recorded with the answer.
    pub sign_in_request: Option<Uuid>,
    /// The template kind.
    pub kind: &'a str,
    /// The recipient's name.
    pub to_name: &'a str,
    /// The recipient's address.
    pub to_email: &'a str,
    /// Subject, HTML and text.
    pub content: RenderedEmail,
    /// An optional PDF attachment: file name and bytes.
    pub pdf: Option<(String, Vec<u8>)>,
}

/// What became of an event's e-mail in one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// This delivery handed the e-mail to the server and recorded its answer.
    Sent {
        /// `sent` (accepted) or `rejected` (refused for good).
        status: &'static str,
        /// 1 for the first attempt; more for a re-send after an answer that was never recorded.
        attempt: i32,
        /// From the server's answer to the commit of its record: the window in which a kill
        /// sends the e-mail once more.
        window: Duration,
    },
    /// An earlier delivery recorded the server's answer (or the sign-in request's outcome):
    /// nothing was sent; the event's inbox row may still be missing.
    Earlier,
    /// The event's inbox row is committed: an earlier delivery handled it, nothing was sent.
    Handled,
    /// The event gets no e-mail: its type has none, or its sign-in request is stale or for an
    /// address without orders.
    Nothing,
}

/// Sends the e-mails of events through `mailer`, recording intents and answers through `pool`.
#[derive(Debug, Clone, Copy)]
pub struct Sender<'a> {
    /// The SMTP client.
    pub mailer: &'a Mailer,
    /// The database pool; a connection is taken per statement or short transaction.
    pub pool: &'a PgPool,
    /// Records the server's answers, several in one statement when they come together.
    pub answers: &'a Answers,
    /// The handler's timeout: the answer is recorded until 1 s before it, and a hold is never
    /// longer.
    pub handler_timeout: Duration,
}

/// How long a delivery holds an e-mail's intent at a time; renewed every third of it while the
/// delivery works.
pub const INTENT_HOLD: Duration = Duration::from_secs(10);

impl Sender<'_> {
    /// The `Message-ID` a first attempt at the e-mail of `event_id` gets: `<event id@domain of
    /// the From address>`.
    pub fn message_id_for(&self, event_id: Uuid) -> String {
        format!("<{event_id}@{}>", self.mailer.domain())
    }

    /// Sends `letter` at most once per attempt, as the module documentation says. The intent is
    /// claimed on `conn` (the connection the letter's data was read on), which is given back to
    /// the pool before the server is contacted. `started` is when the handler began work on the
    /// event; the answer is recorded until 1 s before its timeout.
    ///
    /// # Errors
    /// As [`Sender::send_claimed`], and [`EmailError::Held`] when another delivery holds the
    /// intent.
    pub async fn send(
        &self,
        mut conn: PoolConnection<Postgres>,
        letter: Letter<'_>,
        started: Instant,
    ) -> Result<Delivered, EmailError> {
        let proposed = self.message_id_for(letter.event_id);
        let claim = store::claim(&mut conn, letter.event_id, &proposed, self.hold()).await;
        drop(conn);
        match claim? {
            Claim::Send {
                attempt,
                message_id,
            } => {
                self.send_claimed(letter, attempt, message_id, started)
                    .await
            }
            Claim::Not(why) => unclaimed(why),
        }
    }

    /// Sends `letter`, whose intent this delivery has claimed (attempt `attempt`, with
    /// `message_id`), and records the server's answer with the event's inbox row.
    ///
    /// # Errors
    /// [`EmailError::Mail`] when the e-mail was not handed over; [`EmailError::AnswerNotRecorded`]
    /// when the server answered but its answer could not be recorded in time;
    /// [`EmailError::Answer`] when the answer's record failed for good.
    pub async fn send_claimed(
        &self,
        letter: Letter<'_>,
        attempt: i32,
        message_id: String,
        started: Instant,
    ) -> Result<Delivered, EmailError> {
        if attempt > 1 {
            tracing::warn!(
                attempt,
                "sending the e-mail again with the same Message-ID: no earlier attempt recorded an answer (it was not handed over, or the answer was lost)"
            );
        }
        let event_id = letter.event_id;
        tokio::select! {
            delivered = self.send_and_record(letter, attempt, message_id, started) => delivered,
            never = self.keep_holding(event_id, attempt) => match never {},
        }
    }

    /// How long this delivery holds an intent at a time: [`INTENT_HOLD`], at most the handler's
    /// timeout.
    pub fn hold(&self) -> Duration {
        INTENT_HOLD.min(self.handler_timeout)
    }

    /// Renews the hold on the intent every third of [`Sender::hold`], until dropped (when the
    /// delivery is done). A failed renewal is logged: the message stays invisible while its
    /// handler runs, so no other delivery comes for it meanwhile.
    async fn keep_holding(&self, event_id: Uuid, attempt: i32) -> std::convert::Infallible {
        let hold = self.hold();
        loop {
            tokio::time::sleep(hold / 3).await;
            if let Err(error) = store::renew_hold(self.pool, event_id, attempt, hold).await {
                tracing::warn!(error = %worker::error_chain(&error), "could not renew the hold on the e-mail's intent");
            }
        }
    }

    async fn send_and_record(
        &self,
        letter: Letter<'_>,
        attempt: i32,
        message_id: String,
        started: Instant,
    ) -> Result<Delivered, EmailError> {
        let outgoing = Outgoing {
            to_name: letter.to_name,
            to_email: letter.to_email,
            content: letter.content,
            message_id: message_id.clone(),
            pdf: letter.pdf,
        };
        let answer = self.hand_over(outgoing, letter.event_id, attempt).await?;
        let answered = Instant::now();
        let (status, reply) = sorted(answer);
        let sent = SentEmail {
            event_id: letter.event_id,
            order_id: letter.order_id,
            sign_in_request: letter.sign_in_request,
            kind: letter.kind.to_owned(),
            message_id,
            status,
            smtp_response: reply,
        };
        let deadline = started + self.handler_timeout - ANSWER_MARGIN.min(self.handler_timeout / 2);
        self.record_answer(sent, deadline).await?;
        Ok(Delivered::Sent {
            status,
            attempt,
            window: answered.elapsed(),
        })
    }

    /// Hands the e-mail to the server; gives the intent back when it was not handed over.
    async fn hand_over(
        &self,
        outgoing: Outgoing<'_>,
        event_id: Uuid,
        attempt: i32,
    ) -> Result<Delivery, EmailError> {
        match self.mailer.send(outgoing).await {
            Ok(answer) => Ok(answer),
            Err(error) => {
                // If this fails too, the hold simply runs out: nothing is lost by ignoring it.
                let _ = store::release(self.pool, event_id, attempt).await;
                Err(error.into())
            }
        }
    }

    /// Records the answer ([`Answers`]'s `run`), retrying with [`ANSWER_BACKOFF`] until it
    /// commits or `deadline`.
    async fn record_answer(
        &self,
        sent: SentEmail,
        deadline: Instant,
    ) -> Result<Recorded, EmailError> {
        let started = Instant::now();
        let recording = (|| self.answers.run(sent.clone()))
            .retry(ANSWER_BACKOFF)
            .sleep(tokio::time::sleep)
            .when(|error: &Arc<sqlx::Error>| error.failure() == Failure::Retryable)
            .notify(|error: &Arc<sqlx::Error>, delay: Duration| {
                tracing::warn!(
                    error = %worker::error_chain(error.as_ref()),
                    delay_ms = delay.as_millis() as u64,
                    "recording the SMTP server's answer failed; trying again"
                );
            });
        match tokio::time::timeout_at(deadline.into(), recording).await {
            Ok(recorded) => recorded.map_err(EmailError::Answer),
            Err(_) => Err(EmailError::AnswerNotRecorded(started.elapsed())),
        }
    }
}

/// What a claim that sent nothing means for the delivery: [`Delivered::Earlier`] (answered),
/// [`Delivered::Handled`] (in the inbox) or [`EmailError::Held`].
///
/// # Errors
/// [`EmailError::Held`] when another delivery holds the intent.
pub fn unclaimed(why: Unclaimed) -> Result<Delivered, EmailError> {
    match why {
        Unclaimed::Answered => Ok(Delivered::Earlier),
        Unclaimed::Handled => Ok(Delivered::Handled),
        Unclaimed::Held(remaining) => Err(EmailError::Held(remaining)),
    }
}

/// The status recorded for the server's answer, and the answer's text.
fn sorted(answer: Delivery) -> (&'static str, String) {
    match answer {
        Delivery::Accepted(reply) => ("sent", reply),
        Delivery::Rejected(reply) => {
            tracing::warn!(reply, "the SMTP server refused the recipient; not retrying");
            ("rejected", reply)
        }
    }
}
