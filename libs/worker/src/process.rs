//! One message through one handler, whatever the transport.
//!
//! The decision what to do with a message is made here, once, and expressed as a
//! [`Disposition`]; the SQS poller and a Lambda adapter only translate it into their own
//! acknowledgement. Each failure is logged here, where it is handled, and nowhere else.

use std::time::Duration;

use domain::{Aggregate, Consumer, Event, EventEnvelope};
use outbox::inbox::{self, Inbox};
use sqlx::{PgPool, Postgres, Transaction};
use telemetry::trace::Kind;
use tracing::Instrument;
use uuid::Uuid;

use crate::{Classify, Failure, Handler, error_chain, metrics};

/// What to do with a message after it was processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Handled and committed: delete the message.
    Done,
    /// Already handled before (the inbox row exists): delete the message.
    Duplicate,
    /// Failed in a way that may pass: let the message come back later.
    Retry {
        /// What failed (for logs; never a message body).
        reason: String,
        /// The failure's own hint of when to try again ([`Classify::retry_after`]): the message
        /// stays invisible for at least this long (and at least the transport's growing delay).
        after: Option<Duration>,
    },
    /// Can never succeed: move the message to the dead-letter queue now.
    Park {
        /// Why (kept with the parked message for the operator).
        reason: String,
    },
}

/// How a decoded event's handling ended, when it did ([`Handler::run`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Handled now; its changes are committed with the inbox row.
    Done,
    /// Handled before (the inbox row exists): nothing was written.
    Duplicate,
}

/// Why running a decoded event did not finish ([`Handler::run`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError<E> {
    /// The handler's own error, sorted by its [`Classify`].
    #[error("the handler failed")]
    Handler(#[source] E),
    /// A transaction could not begin or commit (retryable unless PostgreSQL refused the data).
    #[error("the transaction failed")]
    Database(#[from] sqlx::Error),
    /// The inbox row could not be written (retryable).
    #[error("the inbox write failed")]
    Inbox(#[from] outbox::OutboxError),
    /// The handler ran past the runtime's time limit and was abandoned (retryable).
    #[error("the handler did not finish within {0:?}")]
    Timeout(Duration),
}

/// Begins the transaction that ends an event's handling and writes the event's inbox row in it,
/// so that whatever the caller then writes in it commits exactly once with that row. `None` when
/// `consumer` has handled the event already: the row exists, nothing was written (the
/// transaction is rolled back). If another delivery of the event is ending right now, the
/// insert waits for it and then sees its row.
///
/// # Errors
/// [`RunError::Database`] when the transaction cannot begin, [`RunError::Inbox`] when the inbox
/// write fails.
#[tracing::instrument(level = "debug", name = "inbox.begin", skip_all, fields(db.system.name = "postgresql"))]
pub async fn begin_with_inbox<E>(
    pool: &PgPool,
    consumer: Consumer,
    event_id: Uuid,
) -> Result<Option<Transaction<'static, Postgres>>, RunError<E>> {
    let mut tx = pool.begin().await?;
    match inbox::record(&mut tx, consumer.name(), event_id).await? {
        Inbox::New => Ok(Some(tx)),
        Inbox::Duplicate => Ok(None),
    }
}

/// [`Handler::run`]'s default: [`Handler::handle`] in one transaction that begins with the inbox
/// row ([`begin_with_inbox`]) and commits when the handler returns `Ok`.
#[tracing::instrument(level = "debug", name = "db.transaction", skip_all, fields(db.system.name = "postgresql"))]
pub(crate) async fn in_one_transaction<H: Handler + ?Sized>(
    handler: &H,
    event: &Event,
    pool: &PgPool,
) -> Result<Handled, RunError<H::Error>> {
    let Some(mut tx) = begin_with_inbox(pool, handler.consumer(), event.id).await? else {
        return Ok(Handled::Duplicate);
    };
    handler
        .handle(event, &mut tx)
        .await
        .map_err(RunError::Handler)?;
    tx.commit().await?;
    Ok(Handled::Done)
}

/// A received message, as a transport hands it to [`process_incoming`].
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    /// SQS's message id (a log field).
    pub message_id: &'a str,
    /// The body: an event envelope.
    pub body: &'a str,
    /// The message's `traceparent` attribute: the context of the relay's publish span. `None`
    /// (or empty): the envelope's own `traceparent` is the parent.
    pub traceparent: Option<&'a str>,
}

/// [`process_incoming`] for a bare body (no message id, no `traceparent` attribute: the
/// envelope's own is the parent).
pub async fn process<H: Handler>(
    handler: &H,
    pool: &PgPool,
    body: &str,
    timeout: Duration,
) -> Disposition {
    let message = Incoming {
        message_id: "",
        body,
        traceparent: None,
    };
    process_incoming(handler, pool, message, timeout).await
}

/// Decodes the message's body and runs `handler` on it ([`Handler::run`]: by default in one
/// transaction with the inbox row), giving up after `timeout` (an open transaction is then
/// rolled back). The decision is counted in
/// [`metrics::MESSAGES_TOTAL`](crate::metrics::MESSAGES_TOTAL), here and nowhere else.
///
/// The handling runs in its own span, `event` (with the event's ids), the child of the message's
/// trace context; the events the handler emits carry that span's context (the decoded event's
/// `traceparent` is replaced by it before the handler sees it), so the next hop's spans hang
/// under this one.
pub async fn process_incoming<H: Handler>(
    handler: &H,
    pool: &PgPool,
    message: Incoming<'_>,
    timeout: Duration,
) -> Disposition {
    let mut event = match decode(message.body) {
        Ok(event) => event,
        Err(reason) => {
            tracing::warn!(consumer = %handler.consumer(), message.id = message.message_id, reason, "parking a message that cannot be decoded");
            let parked = Disposition::Park { reason };
            metrics::record(handler.consumer(), &parked, None);
            return parked;
        }
    };
    let span = event_span(handler.consumer(), &event, message.message_id);
    let parent = message
        .traceparent
        .filter(|t| !t.is_empty())
        .unwrap_or(&event.traceparent);
    let own = telemetry::trace::continue_in(&span, parent, Kind::Consumer, || {
        format!("handle {}", event.event_type())
    });
    event.traceparent = own.to_string();
    async {
        let started = std::time::Instant::now();
        // Boxed: a handler's future (Stripe's, with its spans) is a deep type; boxing it here
        // keeps the transports' futures within the compiler's layout recursion limit.
        let result = tokio::time::timeout(timeout, Box::pin(run(handler, pool, &event)))
            .await
            .unwrap_or(Err(RunError::Timeout(timeout)));
        let elapsed = started.elapsed();
        let decided = disposition(result, elapsed);
        metrics::record(handler.consumer(), &decided, Some(elapsed));
        if telemetry::otel::enabled()
            && matches!(
                decided,
                Disposition::Retry { .. } | Disposition::Park { .. }
            )
        {
            tracing::Span::current().record("otel.status_code", "error");
        }
        decided
    }
    .instrument(span)
    .await
}

/// The span of one event's handling: its ids, its order (or sign-in request), the consumer.
fn event_span(consumer: Consumer, event: &Event, message_id: &str) -> tracing::Span {
    let span = tracing::info_span!(
        "event",
        event.id = %event.id,
        event.r#type = %event.event_type(),
        order.id = tracing::field::Empty,
        sign_in_request.id = tracing::field::Empty,
        message.id = message_id,
        correlation_id = %event.correlation_id,
        trace_id = tracing::field::Empty,
        consumer = %consumer,
        otel.name = tracing::field::Empty,
        otel.kind = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    // The envelope's aggregate is an order for every event type but the sign-in request.
    match event.event_type().aggregate() {
        Aggregate::Order => span.record("order.id", tracing::field::display(event.order_id)),
        Aggregate::SignInRequest => span.record(
            "sign_in_request.id",
            tracing::field::display(event.order_id),
        ),
    };
    span
}

/// The typed event in `body`, or why there is none (a permanent failure).
fn decode(body: &str) -> Result<Event, String> {
    let envelope: EventEnvelope = serde_json::from_str(body).map_err(|e| {
        // Redacted: the body's values (an e-mail address, a name) must not reach the logs
        // or the parked message's reason.
        format!(
            "not an event envelope: {}",
            domain::redact::SchemaMismatch::of(&e)
        )
    })?;
    Event::from_envelope(envelope).map_err(|e| error_chain(&e))
}

async fn run<H: Handler>(
    handler: &H,
    pool: &PgPool,
    event: &Event,
) -> Result<Disposition, RunError<H::Error>> {
    Ok(match handler.run(event, pool).await? {
        Handled::Done => Disposition::Done,
        Handled::Duplicate => Disposition::Duplicate,
    })
}

fn disposition<E: std::error::Error + Classify + 'static>(
    result: Result<Disposition, RunError<E>>,
    elapsed: Duration,
) -> Disposition {
    let duration_ms = elapsed.as_millis() as u64;
    match result {
        Ok(done) => {
            tracing::info!(duration_ms, outcome = ?done, "event handled");
            done
        }
        Err(error) => {
            let reason = error_chain(&error);
            let (failure, after) = match &error {
                RunError::Handler(e) => (e.failure(), e.retry_after()),
                RunError::Database(e) => (e.failure(), None),
                RunError::Inbox(_) | RunError::Timeout(_) => (Failure::Retryable, None),
            };
            if failure == Failure::Permanent {
                tracing::error!(duration_ms, error = %reason, "parking an event that cannot succeed");
                Disposition::Park { reason }
            } else {
                let after_s = after.map(|a| a.as_secs_f64());
                tracing::warn!(duration_ms, error = %reason, after_s, "event failed, it will be retried");
                Disposition::Retry { reason, after }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("rate limited")]
    struct RateLimited(Failure);

    impl Classify for RateLimited {
        fn failure(&self) -> Failure {
            self.0
        }

        fn retry_after(&self) -> Option<Duration> {
            Some(Duration::from_secs(30))
        }
    }

    fn decide(result: Result<Disposition, RunError<RateLimited>>) -> Disposition {
        disposition(result, Duration::ZERO)
    }

    #[test]
    fn a_retryable_failure_carries_its_retry_hint_to_the_transport() {
        let retried = decide(Err(RunError::Handler(RateLimited(Failure::Retryable))));
        assert_eq!(
            retried,
            Disposition::Retry {
                reason: "the handler failed: rate limited".into(),
                after: Some(Duration::from_secs(30)),
            }
        );
        let timed_out = decide(Err(RunError::Timeout(Duration::from_secs(1))));
        assert!(matches!(timed_out, Disposition::Retry { after: None, .. }));
        let parked = decide(Err(RunError::Handler(RateLimited(Failure::Permanent))));
        assert!(matches!(parked, Disposition::Park { .. }));
    }

    #[test]
    fn a_body_that_cannot_be_decoded_is_parked_without_the_values_it_holds() {
        let envelope = |payload: &str| {
            format!(
                r#"{{"event_id": "0190c1d2-0000-7000-8000-000000000001", "event_type": "order.placed",
                    "version": 1, "order_id": "0190c1d2-0000-7000-8000-000000000002",
                    "occurred_at": "2026-12-04T10:00:00Z", "correlation_id": "c", "traceparent": "",
                    "payload": {payload}}}"#
            )
        };
        let bodies = [
            r#"{"event_id": "ada@example.com"}"#.to_owned(),
            envelope(r#"{"customer_name": "Ada Lovelace", "customer_email": 42}"#),
            envelope(r#"{"customer_name": ["12 Analytical Row"]}"#),
        ];
        for body in bodies {
            let reason = decode(&body).expect_err("not decodable");
            for personal in ["ada@example.com", "Ada Lovelace", "Analytical"] {
                assert!(!reason.contains(personal), "{personal} in {reason}");
            }
            assert!(
                reason.contains("invalid"),
                "it still says what is wrong: {reason}"
            );
        }
    }
}
