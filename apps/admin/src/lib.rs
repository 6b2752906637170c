//! `chargeflow-admin`, the operator's command: the outbox's backlog and failed rows, the
//! messages parked in the workers' dead-letter queues, one order's whole story and its
//! cancellation, and the orders that are stuck.
//!
//! Each command is a function that reads (or changes) PostgreSQL or SQS and returns a plain,
//! serialisable report; small render functions turn a report into aligned text, or `--json`
//! prints it as is. Every command that changes something is a dry run unless given `--yes`.
//! [`cli`] holds the arguments and the dispatch; `main.rs` only loads the settings and prints.

pub mod cancel;
pub mod cli;
pub mod db;
pub mod dlq;
pub mod error;
pub mod order;
pub mod outbox;
pub mod render;
pub mod retention;
pub mod stuck;

use std::time::Duration;

pub use cli::{Cli, run};
pub use error::{AdminError, one_line};

/// The most database connections one command opens.
const MAX_CONNECTIONS: u32 = 4;
/// Timeout of one SQS call.
const SQS_TIMEOUT: Duration = Duration::from_secs(10);

/// A small pool to the configured database.
///
/// # Errors
/// [`AdminError::DatabaseUnreachable`] when PostgreSQL cannot be reached.
pub async fn connect_database(
    settings: &settings::DatabaseSettings,
) -> Result<sqlx::PgPool, AdminError> {
    let mut settings = settings.clone();
    settings.max_connections = settings.max_connections.min(MAX_CONNECTIONS);
    settings
        .connect()
        .await
        .map_err(|source| AdminError::DatabaseUnreachable {
            server: server(&settings),
            source,
        })
}

/// `host:port` of the database URL, without the credentials.
fn server(settings: &settings::DatabaseSettings) -> String {
    use secrecy::ExposeSecret;
    match settings
        .url
        .expose_secret()
        .parse::<sqlx::postgres::PgConnectOptions>()
    {
        Ok(options) => format!("{}:{}", options.get_host(), options.get_port()),
        Err(_) => "the configured URL (it does not parse)".to_owned(),
    }
}

/// An SQS client for the configured endpoint (nothing is called yet).
pub async fn connect_sqs(settings: &settings::SqsSettings) -> aws_sdk_sqs::Client {
    sqs_transport::connect(settings, SQS_TIMEOUT).await
}
