//! Parking a message: a copy, unchanged, in the queue's dead-letter queue with why and from where,
//! shared by the poller and the Lambda adapter.

use aws_sdk_sqs::Client;
use sqs_transport::{OutgoingMessage, TransportError, consume};

/// The message being parked.
pub(crate) struct Parked<'a> {
    /// SQS's id of the message: the DLQ copy's deduplication id.
    pub message_id: &'a str,
    /// Its FIFO message group, if any.
    pub group_id: Option<&'a str>,
    /// The body, unchanged.
    pub body: &'a str,
    /// Why it can never succeed.
    pub reason: &'a str,
    /// The queue it came from.
    pub from: &'a str,
}

/// Sends the copy to `dlq_url`.
pub(crate) async fn park(
    client: &Client,
    dlq_url: &str,
    message: &Parked<'_>,
) -> Result<(), TransportError> {
    let copy = OutgoingMessage {
        entry_id: "parked".into(),
        body: message.body.to_owned(),
        group_id: message.group_id.unwrap_or("parked").to_owned(),
        dedup_id: message.message_id.to_owned(),
        attributes: vec![
            ("parked_reason", truncate(message.reason, 1000)),
            ("parked_from", message.from.to_owned()),
        ],
    };
    consume::send_one(client, dlq_url, &copy).await?;
    tracing::warn!(
        message.id = message.message_id,
        reason = message.reason,
        "message parked in the dead-letter queue"
    );
    Ok(())
}

pub(crate) fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => text[..cut].to_owned(),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parked_reasons_are_cut_on_a_character_boundary() {
        assert_eq!(truncate("ééé", 2), "éé");
        assert_eq!(truncate("ab", 5), "ab");
    }
}
