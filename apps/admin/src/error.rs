//! The one error type of the admin command, each variant one clear sentence for the operator.

use uuid::Uuid;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The settings could not be loaded.
    #[error("cannot load the settings")]
    Settings(#[from] secrets::SecretsError),
    /// PostgreSQL could not be reached.
    #[error("cannot connect to PostgreSQL at {server}")]
    DatabaseUnreachable {
        /// `host:port` (never the credentials).
        server: String,
        /// What failed.
        #[source]
        source: sqlx::Error,
    },
    /// A query failed.
    #[error("database query failed")]
    Database(#[from] sqlx::Error),
    /// An outbox statement failed.
    #[error("outbox query failed")]
    Outbox(#[from] ::outbox::OutboxError),
    /// SQS could not be reached, or refused a call (a missing queue, for instance).
    #[error("SQS is unreachable or refused the call")]
    Sqs(#[from] sqs_transport::TransportError),
    /// The queue argument names no worker.
    #[error("unknown queue `{0}`: expected one of invoice, billing, shipping, email")]
    UnknownQueue(String),
    /// The queue has no redrive policy, so no dead-letter queue.
    #[error("queue {0} has no dead-letter queue (no redrive policy)")]
    NoDeadLetterQueue(String),
    /// An order statement of the `orders` library failed.
    #[error("order query failed")]
    Orders(#[from] ::orders::OrdersError),
    /// No order has this id.
    #[error("order {0} does not exist")]
    UnknownOrder(Uuid),
    /// `order cancel` named an order past the point where it can be cancelled.
    #[error("order {order_id} cannot be cancelled: it is {status}")]
    NotCancellable {
        /// The order.
        order_id: Uuid,
        /// Its status (`shipped`, `delivered`, …).
        status: domain::OrderStatus,
    },
    /// `outbox retry --id` named a row that is published, never failed, or does not exist.
    #[error("outbox row {0} is not an unpublished row with failed attempts")]
    NotAFailedRow(i64),
    /// `dlq redrive --message-id` named a message that is not (or no longer) parked.
    #[error("message {message_id} is not in {queue}")]
    UnknownMessage {
        /// The id asked for.
        message_id: String,
        /// The dead-letter queue searched.
        queue: String,
    },
    /// A redrive stopped part way.
    #[error("moved {moved} message(s) back, then failed on message {message_id}")]
    Redrive {
        /// Messages moved before the failure.
        moved: usize,
        /// The message that failed.
        message_id: String,
        /// What failed.
        #[source]
        source: sqs_transport::TransportError,
    },
    /// A migration failed (and was rolled back), or the database's migrations do not match
    /// this release's.
    #[error("the schema migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The report could not be encoded as JSON.
    #[error("cannot encode the output as JSON")]
    Json(#[from] serde_json::Error),
}

/// The error and its causes on one line, for the command's last word on stderr. The AWS SDK's
/// errors end in a debug dump of themselves (` (DispatchFailure(…))`): that part is left out.
pub fn one_line(error: &AdminError) -> String {
    let chain = telemetry::error_chain(error);
    let line = chain.split_whitespace().collect::<Vec<_>>().join(" ");
    match debug_dump_start(&line) {
        Some(cut) => line[..cut].to_owned(),
        None => line,
    }
}

/// Where a ` (TypeName(` debug dump starts, if the line has one.
fn debug_dump_start(line: &str) -> Option<usize> {
    line.match_indices(" (").map(|(at, _)| at).find(|&at| {
        let rest = &line[at + 2..];
        let name: String = rest
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect();
        name.starts_with(|c: char| c.is_ascii_uppercase()) && rest[name.len()..].starts_with('(')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sdk_debug_dump_is_left_out_of_the_one_line_error() {
        let source = sqs_transport::TransportError::Call {
            operation: "GetQueueUrl",
            message: "dispatch failure: io error: client error (Connect): tcp connect error: \
                      Connection refused (os error 111) (DispatchFailure(DispatchFailure { \
                      source: ConnectorError { kind: Io } }))"
                .into(),
        };
        assert_eq!(
            one_line(&AdminError::Sqs(source)),
            "SQS is unreachable or refused the call: SQS call `GetQueueUrl` failed: dispatch \
             failure: io error: client error (Connect): tcp connect error: Connection refused \
             (os error 111)"
        );
    }
}
