#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod consume;
pub mod metrics;

use std::{collections::HashMap, sync::Arc, time::Duration};

use aws_sdk_sqs::{
    Client,
    config::{BehaviorVersion, Credentials, Region},
    error::DisplayErrorContext,
    types::{BatchResultErrorEntry, MessageAttributeValue, SendMessageBatchRequestEntry},
};
use tokio::sync::RwLock;

/// Most entries SQS takes in one `SendMessageBatch` call.
pub const MAX_BATCH: usize = 10;

/// The error type of this library.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// An SQS call failed as a whole (unreachable endpoint, throttling, missing queue…).
    #[error("SQS call `{operation}` failed: {message}")]
    Call {
        /// The SQS operation.
        operation: &'static str,
        /// The SDK's error with its context (never a message body).
        message: String,
    },
    /// A batch request was built wrongly (empty, too large, or an invalid field).
    #[error("invalid SQS batch: {0}")]
    InvalidBatch(String),
}

impl TransportError {
    fn call(operation: &'static str, err: impl std::error::Error) -> Self {
        TransportError::Call {
            operation,
            message: DisplayErrorContext(err).to_string(),
        }
    }
}

/// Builds an SQS client. With an endpoint override (LocalStack) it uses static test
/// credentials unless `AWS_ACCESS_KEY_ID` is set; otherwise the default AWS chain.
/// Also describes this library's [`metrics`] series.
pub async fn connect(settings: &settings::SqsSettings, timeout: Duration) -> Client {
    metrics::describe();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(settings.region.clone()))
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_attempt_timeout(timeout)
                .connect_timeout(Duration::from_secs(2))
                .build(),
        );
    if !settings.endpoint_url.is_empty() {
        loader = loader.endpoint_url(&settings.endpoint_url);
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            loader =
                loader.credentials_provider(Credentials::new("test", "test", None, None, "static"));
        }
    }
    Client::new(&loader.load().await)
}

/// Resolves queue names to URLs once and remembers them.
#[derive(Debug, Clone)]
pub struct QueueDirectory {
    client: Client,
    urls: Arc<RwLock<HashMap<String, String>>>,
}

impl QueueDirectory {
    /// A directory over `client`, empty until asked.
    pub fn new(client: Client) -> Self {
        QueueDirectory {
            client,
            urls: Arc::default(),
        }
    }

    /// The URL of the queue named `name`.
    ///
    /// # Errors
    /// [`TransportError::Call`] when SQS cannot be reached or the queue does not exist.
    pub async fn url(&self, name: &str) -> Result<String, TransportError> {
        if let Some(url) = self.urls.read().await.get(name) {
            return Ok(url.clone());
        }
        let out = self.client.get_queue_url().queue_name(name).send().await;
        metrics::record("GetQueueUrl", &out, 0);
        let out = out.map_err(|e| TransportError::call("GetQueueUrl", e))?;
        let url = out.queue_url.ok_or_else(|| TransportError::Call {
            operation: "GetQueueUrl",
            message: format!("no URL returned for queue {name}"),
        })?;
        self.urls.write().await.insert(name.to_owned(), url.clone());
        Ok(url)
    }
}

/// One message to send to a FIFO queue.
#[derive(Debug, Clone)]
pub struct OutgoingMessage {
    /// Unique within one batch (letters, digits, `-`, `_`; at most 80 characters).
    pub entry_id: String,
    /// The message body.
    pub body: String,
    /// The FIFO message group: messages of one group are delivered in order.
    pub group_id: String,
    /// The FIFO deduplication id: a repeat within five minutes is dropped by SQS.
    pub dedup_id: String,
    /// String message attributes (`event_type`, `traceparent`, `correlation_id`).
    pub attributes: Vec<(&'static str, String)>,
}

impl OutgoingMessage {
    /// The bytes SQS counts for this message: the body, and the name and value of each
    /// attribute that is sent (empty ones are not).
    pub fn payload_bytes(&self) -> usize {
        let attributes: usize = self
            .attributes
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(name, value)| name.len() + value.len())
            .sum();
        self.body.len() + attributes
    }
}

/// What happened to the entries of one batch.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Entry ids SQS accepted.
    pub sent: Vec<String>,
    /// Entry ids SQS refused, with its reason.
    pub failed: Vec<(String, String)>,
}

/// Sends up to [`MAX_BATCH`] messages to `queue_url` with one `SendMessageBatch` call.
///
/// # Errors
/// [`TransportError`] when the call as a whole fails; refusals of single entries are in the
/// returned [`BatchOutcome`].
pub async fn send_batch(
    client: &Client,
    queue_url: &str,
    messages: &[OutgoingMessage],
) -> Result<BatchOutcome, TransportError> {
    if messages.is_empty() || messages.len() > MAX_BATCH {
        return Err(TransportError::InvalidBatch(format!(
            "{} entries (1..={MAX_BATCH} allowed)",
            messages.len()
        )));
    }
    let entries = messages.iter().map(entry).collect::<Result<Vec<_>, _>>()?;
    let out = client
        .send_message_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await;
    let payload = messages.iter().map(OutgoingMessage::payload_bytes).sum();
    metrics::record("SendMessageBatch", &out, payload);
    let out = out.map_err(|e| TransportError::call("SendMessageBatch", e))?;
    Ok(BatchOutcome {
        sent: out.successful.into_iter().map(|s| s.id).collect(),
        failed: refusals(out.failed),
    })
}

/// The refused entries of a batch call: entry id and SQS's reason.
fn refusals(failed: Vec<BatchResultErrorEntry>) -> Vec<(String, String)> {
    failed
        .into_iter()
        .map(|f| {
            (
                f.id,
                format!("{}: {}", f.code, f.message.unwrap_or_default()),
            )
        })
        .collect()
}

fn entry(message: &OutgoingMessage) -> Result<SendMessageBatchRequestEntry, TransportError> {
    let mut builder = SendMessageBatchRequestEntry::builder()
        .id(&message.entry_id)
        .message_body(&message.body)
        .message_group_id(&message.group_id)
        .message_deduplication_id(&message.dedup_id);
    for (name, value) in message.attributes.iter().filter(|(_, v)| !v.is_empty()) {
        let attribute = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
            .map_err(|e| TransportError::InvalidBatch(e.to_string()))?;
        builder = builder.message_attributes(*name, attribute);
    }
    builder
        .build()
        .map_err(|e| TransportError::InvalidBatch(e.to_string()))
}
