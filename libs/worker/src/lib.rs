#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod dlq;
pub mod lambda;
pub mod metrics;
mod poller;
mod process;
mod queue;

use std::error::Error as StdError;
use std::future::Future;
use std::time::Duration;

use domain::{Consumer, Event};
use sqlx::{PgConnection, PgPool};

pub use poller::Poller;
pub use process::{
    Disposition, Handled, Incoming, RunError, begin_with_inbox, process, process_incoming,
};

/// The error type of this library.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// A database statement or connection failed.
    #[error("database call failed")]
    Database(#[from] sqlx::Error),
    /// Writing an outbox row failed.
    #[error("outbox write failed")]
    Outbox(#[from] outbox::OutboxError),
    /// An SQS call failed.
    #[error("SQS transport failed")]
    Transport(#[from] sqs_transport::TransportError),
}

/// Whether a failure can go away by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Trying again later may succeed (a service down, a timeout, a lock conflict).
    Retryable,
    /// Trying again will fail the same way (invalid data, a missing order): park the message.
    Permanent,
}

/// Sorts a handler's errors into retryable and permanent.
pub trait Classify {
    /// Which kind of failure this is.
    fn failure(&self) -> Failure;

    /// For a retryable failure: the earliest the message should come back, when the failure
    /// says so (a remote service's `Retry-After`, say). The transport makes the message visible
    /// again after the longer of this and its own growing delay, at most
    /// [`MAX_RETRY_DELAY`]. `None` (the default): the growing delay alone.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

/// The longest a retried message is kept invisible: 12 hours, SQS's largest visibility timeout.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(12 * 3600);

impl Classify for sqlx::Error {
    /// Database errors are retryable, except a violated constraint or a bad value, which will
    /// violate it again.
    fn failure(&self) -> Failure {
        match self {
            sqlx::Error::Database(db)
                if db
                    .code()
                    .is_some_and(|c| c.starts_with("23") || c.starts_with("22")) =>
            {
                Failure::Permanent
            }
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => Failure::Permanent,
            _ => Failure::Retryable,
        }
    }
}

impl Classify for orders::OrdersError {
    /// Like the database's errors; an event that cannot be encoded or an unreadable stored
    /// order will fail the same way again.
    fn failure(&self) -> Failure {
        match self {
            orders::OrdersError::Database(e)
            | orders::OrdersError::Outbox(outbox::OutboxError::Database(e)) => e.failure(),
            _ => Failure::Permanent,
        }
    }
}

impl Classify for orders::payments::ApplyError {
    fn failure(&self) -> Failure {
        match self {
            orders::payments::ApplyError::Store(e) => e.failure(),
            orders::payments::ApplyError::OrderNotFound(_) => Failure::Permanent,
        }
    }
}

impl Classify for WorkerError {
    fn failure(&self) -> Failure {
        match self {
            WorkerError::Database(e) => e.failure(),
            WorkerError::Outbox(outbox::OutboxError::Database(e)) => e.failure(),
            WorkerError::Outbox(outbox::OutboxError::Encode(_)) => Failure::Permanent,
            WorkerError::Transport(_) => Failure::Retryable,
        }
    }
}

/// A worker's business logic for the events routed to it.
///
/// By default (see [`Handler::run`]) `handle` runs inside a transaction the runtime opened and
/// already wrote the inbox row in; the runtime commits when it returns `Ok` and rolls back
/// otherwise. Everything the handler writes (its state change, its outbox rows) goes through
/// `tx`, so it happens exactly once with the inbox row or not at all.
///
/// A handler that must not hold that transaction across a remote call or a long computation
/// (billing's claim, Stripe call, record; the e-mail worker's intent, SMTP, answer; the
/// invoice's number, render, issue) overrides [`Handler::run`].
pub trait Handler: Send + Sync + 'static {
    /// The handler's error, sorted by [`Classify`].
    type Error: StdError + Classify + Send + Sync + 'static;

    /// The consumer this handler is: its inbox key and its queue.
    fn consumer(&self) -> Consumer;

    /// Handles one event. Events of a type the handler does not take should fail permanently.
    fn handle(
        &self,
        event: &Event,
        tx: &mut PgConnection,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Runs one decoded event from start to end: what the runtime calls, under the poller and
    /// under Lambda alike.
    ///
    /// The default runs [`Handler::handle`] in one transaction that begins with the inbox row,
    /// which suits a handler whose work is all in the database. A handler that waits on a remote
    /// service overrides it, so that nothing — no transaction, no row lock, no second pooled
    /// connection — is held while it waits: it checks the inbox and claims what it works on in
    /// short transactions of its own on `pool`, makes its calls holding no connection, and
    /// writes its last changes in the transaction [`begin_with_inbox`] opens (answering
    /// [`Handled::Duplicate`] when that finds the event handled already). Its once-only guarantee
    /// across concurrent deliveries is then its own to argue: the inbox row alone only makes the
    /// last write happen once.
    ///
    /// # Errors
    /// [`RunError`]: the handler's own error, or the transaction's or the inbox's.
    fn run(
        &self,
        event: &Event,
        pool: &PgPool,
    ) -> impl Future<Output = Result<Handled, RunError<Self::Error>>> + Send {
        process::in_one_transaction(self, event, pool)
    }
}

pub use telemetry::error_chain;

/// Runs `handler` the way this process was started: under the Lambda runtime when
/// `AWS_LAMBDA_RUNTIME_API` is set, otherwise as the long-polling SQS consumer until `shutdown`,
/// with its metrics port (`APP__METRICS__ADDR`, by default the consumer's port of
/// [`settings::MetricsSettings::default_port`]). `pool` is the process's one database pool (the
/// handler may hold a clone of it).
///
/// # Errors
/// When the queues cannot be reached or the Lambda runtime fails.
pub async fn serve<H: Handler>(
    settings: &settings::Settings,
    pool: sqlx::PgPool,
    handler: H,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<(), lambda_runtime::Error> {
    // Boxed: the handlers' futures (Stripe's above all) are deep types; boxing keeps the
    // binaries' `main` futures within the compiler's layout recursion limit.
    if lambda::in_lambda() {
        return Box::pin(lambda::run(settings, pool, handler)).await;
    }
    if let Some(addr) = settings.metrics.listen_addr(handler.consumer().name()) {
        telemetry::metrics::spawn_server(&addr, shutdown.clone()).await;
    }
    let poller = Poller::connect_on(settings, pool, handler).await?;
    Box::pin(poller.run(shutdown)).await;
    Ok(())
}
