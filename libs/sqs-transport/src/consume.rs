//! The receiving side: long-poll receive, batched delete, visibility changes, and the queue's
//! dead-letter queue for parking messages that can never succeed.
//!
//! These are thin, typed wrappers over single SQS calls; the consumer loop that decides what to
//! call when lives in the `worker` library.

use aws_sdk_sqs::{
    Client,
    operation::get_queue_attributes::GetQueueAttributesOutput,
    types::{
        ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
        MessageSystemAttributeName, QueueAttributeName,
    },
};

use crate::{BatchOutcome, OutgoingMessage, TransportError, entry, metrics, refusals};

/// A message taken from a queue, invisible to other consumers until its visibility ends.
#[derive(Debug, Clone)]
pub struct ReceivedMessage {
    /// SQS's id of the message (stable across receives).
    pub message_id: String,
    /// The handle of this receive, needed to delete it or change its visibility.
    pub receipt_handle: String,
    /// The body as sent.
    pub body: String,
    /// How many times it has been received, this time included.
    pub receive_count: u32,
    /// The FIFO message group, if any.
    pub group_id: Option<String>,
    /// When it was sent to this queue, in milliseconds since the Unix epoch ([`receive_inspect`]
    /// only).
    pub sent_at_ms: Option<i64>,
    /// Its string message attributes by name (`event_type`, `parked_reason`, …), sorted: all of
    /// them from [`receive_inspect`], `traceparent` alone from [`receive`].
    pub attributes: Vec<(String, String)>,
}

impl ReceivedMessage {
    /// The string message attribute `name`, if the message has it.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Receives up to `max` (1–10) messages, waiting up to `wait_s` seconds for the first one, and
/// makes them invisible for `visibility_s` seconds. Reads only the receive count, the group and
/// the `traceparent` message attribute (the publisher's trace context).
///
/// # Errors
/// [`TransportError::Call`] when the call fails.
pub async fn receive(
    client: &Client,
    queue_url: &str,
    max: i32,
    wait_s: i32,
    visibility_s: i32,
) -> Result<Vec<ReceivedMessage>, TransportError> {
    let attributes = [
        MessageSystemAttributeName::ApproximateReceiveCount,
        MessageSystemAttributeName::MessageGroupId,
    ];
    receive_with(
        client,
        queue_url,
        (max, wait_s, visibility_s),
        &attributes,
        "traceparent",
    )
    .await
}

/// Like [`receive`], but with every system and message attribute, for tools that show or move
/// messages (the admin command's dead-letter queue listing and redrive).
///
/// # Errors
/// [`TransportError::Call`] when the call fails.
pub async fn receive_inspect(
    client: &Client,
    queue_url: &str,
    max: i32,
    wait_s: i32,
    visibility_s: i32,
) -> Result<Vec<ReceivedMessage>, TransportError> {
    let attributes = [MessageSystemAttributeName::All];
    receive_with(
        client,
        queue_url,
        (max, wait_s, visibility_s),
        &attributes,
        "All",
    )
    .await
}

async fn receive_with(
    client: &Client,
    queue_url: &str,
    (max, wait_s, visibility_s): (i32, i32, i32),
    system_attributes: &[MessageSystemAttributeName],
    message_attributes: &str,
) -> Result<Vec<ReceivedMessage>, TransportError> {
    let request = client
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(max.clamp(1, 10))
        .wait_time_seconds(wait_s)
        .visibility_timeout(visibility_s)
        .set_message_system_attribute_names(Some(system_attributes.to_vec()))
        .message_attribute_names(message_attributes);
    let out = request.send().await.map(|out| {
        let messages = out.messages.unwrap_or_default().into_iter();
        messages.filter_map(received).collect::<Vec<_>>()
    });
    let counted = out
        .as_ref()
        .map(|m| (m.len(), m.iter().map(payload_bytes).sum()));
    metrics::record_receive(&counted);
    out.map_err(|e| TransportError::call("ReceiveMessage", e))
}

/// The bytes SQS counts for a received message: its body and its message attributes.
fn payload_bytes(message: &ReceivedMessage) -> usize {
    let attributes: usize = message
        .attributes
        .iter()
        .map(|(name, value)| name.len() + value.len())
        .sum();
    message.body.len() + attributes
}

fn received(message: Message) -> Option<ReceivedMessage> {
    let system = |name| message.attributes.as_ref()?.get(&name).cloned();
    let receive_count = system(MessageSystemAttributeName::ApproximateReceiveCount)
        .and_then(|count| count.parse().ok())
        .unwrap_or(1);
    let group_id = system(MessageSystemAttributeName::MessageGroupId);
    let sent_at_ms = system(MessageSystemAttributeName::SentTimestamp).and_then(|t| t.parse().ok());
    let mut attributes: Vec<(String, String)> = message
        .message_attributes
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(name, value)| Some((name, value.string_value?)))
        .collect();
    attributes.sort();
    Some(ReceivedMessage {
        message_id: message.message_id?,
        receipt_handle: message.receipt_handle?,
        body: message.body.unwrap_or_default(),
        receive_count,
        group_id,
        sent_at_ms,
        attributes,
    })
}

/// Deletes up to [`crate::MAX_BATCH`] received messages with one call.
///
/// # Errors
/// [`TransportError`] when the call fails as a whole; single refusals are in the outcome (entry
/// ids are the positions in `receipt_handles`).
pub async fn delete_batch(
    client: &Client,
    queue_url: &str,
    receipt_handles: &[String],
) -> Result<BatchOutcome, TransportError> {
    check_batch(receipt_handles)?;
    let entries = receipt_handles
        .iter()
        .enumerate()
        .map(|(i, handle)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(handle)
                .build()
                .map_err(|e| TransportError::InvalidBatch(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let out = client
        .delete_message_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await;
    metrics::record("DeleteMessageBatch", &out, 0);
    let out = out.map_err(|e| TransportError::call("DeleteMessageBatch", e))?;
    Ok(BatchOutcome {
        sent: out.successful.into_iter().map(|s| s.id).collect(),
        failed: refusals(out.failed),
    })
}

/// Sets the visibility of up to [`crate::MAX_BATCH`] received messages to `seconds` from now
/// with one call.
///
/// # Errors
/// [`TransportError`] when the call fails as a whole; single refusals (an expired receipt
/// handle) are in the outcome (entry ids are the positions in `receipt_handles`).
pub async fn change_visibility_batch(
    client: &Client,
    queue_url: &str,
    receipt_handles: &[String],
    seconds: i32,
) -> Result<BatchOutcome, TransportError> {
    check_batch(receipt_handles)?;
    let entries = receipt_handles
        .iter()
        .enumerate()
        .map(|(i, handle)| {
            ChangeMessageVisibilityBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(handle)
                .visibility_timeout(seconds)
                .build()
                .map_err(|e| TransportError::InvalidBatch(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let out = client
        .change_message_visibility_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await;
    metrics::record("ChangeMessageVisibilityBatch", &out, 0);
    let out = out.map_err(|e| TransportError::call("ChangeMessageVisibilityBatch", e))?;
    Ok(BatchOutcome {
        sent: out.successful.into_iter().map(|s| s.id).collect(),
        failed: refusals(out.failed),
    })
}

/// Refuses an empty batch or one larger than SQS takes.
fn check_batch(receipt_handles: &[String]) -> Result<(), TransportError> {
    if receipt_handles.is_empty() || receipt_handles.len() > crate::MAX_BATCH {
        return Err(TransportError::InvalidBatch(format!(
            "{} receipt handles (1..={} allowed)",
            receipt_handles.len(),
            crate::MAX_BATCH
        )));
    }
    Ok(())
}

/// Makes a received message visible again after `seconds` (0 = at once), or keeps it hidden
/// that much longer while its handler works.
///
/// # Errors
/// [`TransportError::Call`] when the call fails (for instance an expired receipt handle).
pub async fn change_visibility(
    client: &Client,
    queue_url: &str,
    receipt_handle: &str,
    seconds: i32,
) -> Result<(), TransportError> {
    let out = client
        .change_message_visibility()
        .queue_url(queue_url)
        .receipt_handle(receipt_handle)
        .visibility_timeout(seconds)
        .send()
        .await;
    metrics::record("ChangeMessageVisibility", &out, 0);
    out.map_err(|e| TransportError::call("ChangeMessageVisibility", e))?;
    Ok(())
}

/// Messages waiting (visible) in the queue at `queue_url`: SQS's `ApproximateNumberOfMessages`.
///
/// # Errors
/// [`TransportError::Call`] when the call fails.
pub async fn approximate_depth(client: &Client, queue_url: &str) -> Result<u64, TransportError> {
    let attribute = QueueAttributeName::ApproximateNumberOfMessages;
    let out = queue_attributes(client, queue_url, attribute.clone()).await?;
    Ok(out
        .attributes
        .and_then(|a| a.get(&attribute)?.parse().ok())
        .unwrap_or(0))
}

/// The URL of the dead-letter queue named in `queue_url`'s redrive policy, if it has one.
///
/// # Errors
/// [`TransportError::Call`] when SQS cannot be reached or the DLQ does not exist.
pub async fn dead_letter_queue_url(
    client: &Client,
    queue_url: &str,
) -> Result<Option<String>, TransportError> {
    let out = queue_attributes(client, queue_url, QueueAttributeName::RedrivePolicy).await?;
    let Some(policy) = out
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::RedrivePolicy).cloned())
    else {
        return Ok(None);
    };
    let Some(name) = dlq_name(&policy) else {
        return Ok(None);
    };
    let out = client.get_queue_url().queue_name(name).send().await;
    metrics::record("GetQueueUrl", &out, 0);
    Ok(out
        .map_err(|e| TransportError::call("GetQueueUrl", e))?
        .queue_url)
}

/// One `GetQueueAttributes` call for one attribute, counted.
async fn queue_attributes(
    client: &Client,
    queue_url: &str,
    attribute: QueueAttributeName,
) -> Result<GetQueueAttributesOutput, TransportError> {
    let out = client
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(attribute)
        .send()
        .await;
    metrics::record("GetQueueAttributes", &out, 0);
    out.map_err(|e| TransportError::call("GetQueueAttributes", e))
}

/// The queue name at the end of the `deadLetterTargetArn` of a redrive policy.
fn dlq_name(redrive_policy: &str) -> Option<String> {
    let policy: serde_json::Value = serde_json::from_str(redrive_policy).ok()?;
    let arn = policy.get("deadLetterTargetArn")?.as_str()?;
    arn.rsplit(':').next().map(str::to_owned)
}

/// Sends one message (a parked message to a DLQ, for instance).
///
/// # Errors
/// [`TransportError`] when the call fails or the message is invalid.
pub async fn send_one(
    client: &Client,
    queue_url: &str,
    message: &OutgoingMessage,
) -> Result<(), TransportError> {
    let entry = entry(message)?;
    let out = client
        .send_message()
        .queue_url(queue_url)
        .message_body(entry.message_body)
        .set_message_group_id(entry.message_group_id)
        .set_message_deduplication_id(entry.message_deduplication_id)
        .set_message_attributes(entry.message_attributes)
        .send()
        .await;
    metrics::record("SendMessage", &out, message.payload_bytes());
    out.map_err(|e| TransportError::call("SendMessage", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dlq_name_is_the_last_part_of_the_target_arn() {
        let policy = r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:cf-invoice-dlq.fifo","maxReceiveCount":5}"#;
        assert_eq!(dlq_name(policy).as_deref(), Some("cf-invoice-dlq.fifo"));
        assert_eq!(dlq_name("{}"), None);
        assert_eq!(dlq_name("not json"), None);
    }
}
