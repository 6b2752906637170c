//! `dlq list` and `dlq redrive`: the messages parked in a worker's dead-letter queue, and
//! moving them back to the worker's queue once their cause is fixed.
//!
//! Reading a message from SQS hides it for a while; these commands hide what they read only
//! while they work ([`LIST_HOLD_S`], [`REDRIVE_HOLD_S`]) and make what they leave behind visible
//! again at once, so a listing never takes messages away.
//!
//! A redriven message keeps its body and its message group (the order), so the order's events
//! stay in sequence on the worker's queue. It gets a new deduplication id, derived from its id
//! in the dead-letter queue: the original one (the event id) would be dropped by SQS if the
//! message was first sent less than five minutes ago, and a redrive repeated after a failed
//! delete is still dropped as the duplicate it is. The worker's inbox makes any second delivery
//! harmless anyway. The copy is sent first and deleted from the dead-letter queue only after
//! SQS accepted it, so nothing is lost between the two.

use std::collections::HashSet;

use aws_sdk_sqs::Client;
use chrono::{DateTime, Utc};
use domain::{Consumer, EventType};
use serde::Serialize;
use settings::SqsSettings;
use sqs_transport::{
    OutgoingMessage, QueueDirectory, TransportError,
    consume::{self, ReceivedMessage},
};

use crate::{AdminError, render};

/// Seconds a listed message stays hidden at most (if the command dies before releasing it).
pub const LIST_HOLD_S: i32 = 10;
/// Seconds a message being redriven stays hidden at most (the send and the delete).
pub const REDRIVE_HOLD_S: i32 = 30;
/// The reason shown for a message SQS itself moved after too many receives: it has no
/// `parked_reason` attribute.
pub const MAX_RECEIVES_REASON: &str = "exceeded maxReceiveCount";
/// The message attributes a redriven message keeps (the relay's; not the parking notes).
const CARRIED_ATTRIBUTES: [&str; 3] = ["event_type", "correlation_id", "traceparent"];

/// A worker's queue and its dead-letter queue.
#[derive(Debug, Clone, Serialize)]
pub struct QueuePair {
    /// The worker (`invoice`, …).
    pub consumer: String,
    /// The worker's queue name.
    pub queue: String,
    /// The dead-letter queue's name.
    pub dead_letter_queue: String,
    #[serde(skip)]
    queue_url: String,
    #[serde(skip)]
    dlq_url: String,
}

/// The worker named `name`, or [`AdminError::UnknownQueue`].
///
/// # Errors
/// [`AdminError::UnknownQueue`] when no worker has that name.
pub fn consumer(name: &str) -> Result<Consumer, AdminError> {
    Consumer::ALL
        .into_iter()
        .find(|c| c.name() == name)
        .ok_or_else(|| AdminError::UnknownQueue(name.to_owned()))
}

/// Resolves worker `name`'s queue (`<prefix><name>.fifo`) and the dead-letter queue its redrive
/// policy names.
///
/// # Errors
/// [`AdminError::UnknownQueue`], [`AdminError::NoDeadLetterQueue`], or [`AdminError::Sqs`] when
/// SQS cannot be reached or the queue does not exist.
pub async fn resolve(
    client: &Client,
    settings: &SqsSettings,
    name: &str,
) -> Result<QueuePair, AdminError> {
    let consumer = consumer(name)?;
    let queue = settings.queue_name(consumer.name());
    let queue_url = QueueDirectory::new(client.clone()).url(&queue).await?;
    let dlq_url = consume::dead_letter_queue_url(client, &queue_url)
        .await?
        .ok_or_else(|| AdminError::NoDeadLetterQueue(queue.clone()))?;
    Ok(QueuePair {
        consumer: consumer.name().to_owned(),
        queue,
        dead_letter_queue: queue_name(&dlq_url),
        queue_url,
        dlq_url,
    })
}

fn queue_name(url: &str) -> String {
    url.rsplit('/').next().unwrap_or(url).to_owned()
}

/// A parked message, as an operator sees it (never its body: it may hold personal data).
#[derive(Debug, Clone, Serialize)]
pub struct ParkedMessage {
    /// Its id in the dead-letter queue (what `dlq redrive --message-id` takes).
    pub message_id: String,
    /// Its message group: the order id.
    pub group_id: Option<String>,
    /// The order, if the body is an event envelope (its `order_id`).
    pub order_id: Option<String>,
    /// The event type, from the body or the `event_type` attribute.
    pub event_type: Option<String>,
    /// The event id, if the body is an event envelope.
    pub event_id: Option<String>,
    /// Why it was parked: the worker's `parked_reason`, or [`MAX_RECEIVES_REASON`].
    pub reason: String,
    /// The queue it was parked from, when the worker parked it.
    pub parked_from: Option<String>,
    /// Receives from the dead-letter queue so far (listings count too).
    pub receive_count: u32,
    /// When it was sent to the dead-letter queue (for SQS's own moves: first sent).
    pub sent_at: Option<DateTime<Utc>>,
}

impl From<&ReceivedMessage> for ParkedMessage {
    fn from(message: &ReceivedMessage) -> Self {
        let field = |name| body_field(&message.body, name);
        ParkedMessage {
            message_id: message.message_id.clone(),
            group_id: message.group_id.clone(),
            order_id: field("order_id"),
            event_type: field("event_type")
                .or_else(|| message.attribute("event_type").map(str::to_owned)),
            event_id: field("event_id"),
            reason: message
                .attribute("parked_reason")
                .unwrap_or(MAX_RECEIVES_REASON)
                .to_owned(),
            parked_from: message.attribute("parked_from").map(str::to_owned),
            receive_count: message.receive_count,
            sent_at: message
                .sent_at_ms
                .and_then(DateTime::<Utc>::from_timestamp_millis),
        }
    }
}

impl ParkedMessage {
    /// Whether the message belongs to the order: its message group or its envelope's
    /// `order_id` names it.
    pub fn is_for(&self, order_id: &str) -> bool {
        self.group_id.as_deref() == Some(order_id) || self.order_id.as_deref() == Some(order_id)
    }
}

/// The string field `name` of a JSON body (an event envelope's `event_id`, say), if any.
fn body_field(body: &str, name: &str) -> Option<String> {
    let body: serde_json::Value = serde_json::from_str(body).ok()?;
    body.get(name)?.as_str().map(str::to_owned)
}

/// What `dlq list` found.
#[derive(Debug, Serialize)]
pub struct Listing {
    /// The queues looked at.
    pub queue: QueuePair,
    /// The parked messages, in the order SQS returned them.
    pub messages: Vec<ParkedMessage>,
    /// The limit was reached: there may be more.
    pub limit_reached: bool,
}

/// Reads up to `limit` parked messages and makes them visible again at once.
///
/// # Errors
/// [`AdminError::Sqs`] when SQS cannot be reached.
pub async fn list(client: &Client, pair: QueuePair, limit: usize) -> Result<Listing, AdminError> {
    let held = take(client, &pair.dlq_url, limit).await?;
    release(client, &pair.dlq_url, &held).await;
    Ok(Listing {
        messages: held.iter().map(ParkedMessage::from).collect(),
        limit_reached: held.len() >= limit,
        queue: pair,
    })
}

/// Receives until `limit` messages are held or no new one comes; the messages stay hidden for
/// [`LIST_HOLD_S`] unless released. A message group of a FIFO queue shows only what SQS hands
/// out while its first message is held (all of it, in practice, up to ten per group).
async fn take(
    client: &Client,
    dlq_url: &str,
    limit: usize,
) -> Result<Vec<ReceivedMessage>, AdminError> {
    let mut held: Vec<ReceivedMessage> = Vec::new();
    while held.len() < limit {
        let want = (limit - held.len()).min(sqs_transport::MAX_BATCH) as i32;
        let batch = match consume::receive_inspect(client, dlq_url, want, 1, LIST_HOLD_S).await {
            Ok(batch) => batch,
            Err(error) => {
                release(client, dlq_url, &held).await;
                return Err(error.into());
            }
        };
        let before = held.len();
        for message in batch {
            if !held.iter().any(|h| h.message_id == message.message_id) {
                held.push(message);
            }
        }
        if held.len() == before {
            break;
        }
    }
    Ok(held)
}

/// Makes held messages visible again at once. A failure only means a message shows up again a
/// few seconds later, when its hold ends.
async fn release(client: &Client, queue_url: &str, held: &[ReceivedMessage]) {
    for message in held {
        let _ = consume::change_visibility(client, queue_url, &message.receipt_handle, 0).await;
    }
}

/// What `dlq redrive` should move.
#[derive(Debug, Clone, Default)]
pub struct RedrivePlan {
    /// Only this message (its id in the dead-letter queue); all when `None`.
    pub message_id: Option<String>,
    /// Move at most this many.
    pub limit: usize,
    /// Only say what would move.
    pub dry_run: bool,
}

/// What `dlq redrive` did, or would do.
#[derive(Debug, Serialize)]
pub struct RedriveReport {
    /// The queues.
    pub queue: QueuePair,
    /// Nothing was moved (no `--yes`).
    pub dry_run: bool,
    /// The messages moved back (or that would be), in the order they were moved.
    pub messages: Vec<ParkedMessage>,
}

/// Moves parked messages back to the worker's queue as [`RedrivePlan`] says; see the module
/// documentation for how.
///
/// # Errors
/// [`AdminError::UnknownMessage`] when `message_id` is not parked there;
/// [`AdminError::Redrive`] when a move fails part way (the messages before it are moved, the
/// others stay parked); [`AdminError::Sqs`] when SQS cannot be reached.
pub async fn redrive(
    client: &Client,
    pair: QueuePair,
    plan: &RedrivePlan,
) -> Result<RedriveReport, AdminError> {
    let mut round = Round::default();
    let result = redrive_rounds(client, &pair, plan, &mut round).await;
    release(client, &pair.dlq_url, &round.held).await;
    result?;
    if let Some(message_id) = &plan.message_id
        && round.moved.is_empty()
    {
        return Err(AdminError::UnknownMessage {
            message_id: message_id.clone(),
            queue: pair.dead_letter_queue,
        });
    }
    Ok(RedriveReport {
        queue: pair,
        dry_run: plan.dry_run,
        messages: round.moved,
    })
}

/// What a redrive holds and has moved so far.
#[derive(Default)]
struct Round {
    seen: HashSet<String>,
    /// Received and not moved: released at the end.
    held: Vec<ReceivedMessage>,
    moved: Vec<ParkedMessage>,
}

/// Receives in rounds until no new message comes (a moved message frees the next one of its
/// FIFO group), the one asked for is moved, or the limit is reached.
async fn redrive_rounds(
    client: &Client,
    pair: &QueuePair,
    plan: &RedrivePlan,
    round: &mut Round,
) -> Result<(), AdminError> {
    while round.moved.len() < plan.limit {
        let batch = consume::receive_inspect(client, &pair.dlq_url, 10, 1, REDRIVE_HOLD_S).await?;
        let fresh: Vec<ReceivedMessage> = batch
            .into_iter()
            .filter(|m| round.seen.insert(m.message_id.clone()))
            .collect();
        if fresh.is_empty() {
            return Ok(());
        }
        for message in fresh {
            let wanted = plan
                .message_id
                .as_ref()
                .is_none_or(|id| *id == message.message_id);
            if !wanted || round.moved.len() >= plan.limit {
                round.held.push(message);
                continue;
            }
            if !plan.dry_run
                && let Err(source) = move_back(client, pair, &message).await
            {
                let message_id = message.message_id.clone();
                round.held.push(message);
                return Err(AdminError::Redrive {
                    moved: round.moved.len(),
                    message_id,
                    source,
                });
            }
            round.moved.push(ParkedMessage::from(&message));
            if plan.dry_run {
                round.held.push(message);
            }
        }
        if plan.message_id.is_some() && !round.moved.is_empty() {
            return Ok(());
        }
    }
    Ok(())
}

/// Sends a copy to the worker's queue, then deletes the parked message.
async fn move_back(
    client: &Client,
    pair: &QueuePair,
    message: &ReceivedMessage,
) -> Result<(), TransportError> {
    consume::send_one(client, &pair.queue_url, &redriven(message)).await?;
    let outcome = consume::delete_batch(
        client,
        &pair.dlq_url,
        std::slice::from_ref(&message.receipt_handle),
    )
    .await?;
    match outcome.failed.into_iter().next() {
        Some((_, reason)) => Err(TransportError::Call {
            operation: "DeleteMessageBatch",
            message: format!("sent back, but not deleted from the dead-letter queue: {reason}"),
        }),
        None => Ok(()),
    }
}

/// The copy to send back: same body and group, the relay's attributes, a new deduplication id.
fn redriven(message: &ReceivedMessage) -> OutgoingMessage {
    let group_id = message
        .group_id
        .clone()
        .or_else(|| body_field(&message.body, "order_id"))
        .unwrap_or_else(|| "redriven".to_owned());
    OutgoingMessage {
        entry_id: "redrive".into(),
        body: message.body.clone(),
        group_id,
        dedup_id: format!("redrive-{}", message.message_id),
        attributes: CARRIED_ATTRIBUTES
            .iter()
            .filter_map(|name| Some((*name, message.attribute(name)?.to_owned())))
            .collect(),
    }
}

/// The listing as text: one block per message.
pub fn render_list(listing: &Listing) -> String {
    let queue = &listing.queue;
    let n = render::count(listing.messages.len(), "parked message", "parked messages");
    let more = if listing.limit_reached {
        " (limit reached: there may be more)"
    } else {
        ""
    };
    let mut text = format!(
        "{}: {n}{more} (dead-letter queue of {})\n",
        queue.dead_letter_queue, queue.queue
    );
    for message in &listing.messages {
        text.push('\n');
        text.push_str(&render_message(message));
    }
    text
}

fn render_message(message: &ParkedMessage) -> String {
    let unknown = || "?".to_owned();
    let event = format!(
        "{} {}",
        message.event_type.clone().unwrap_or_else(unknown),
        message.event_id.clone().unwrap_or_else(unknown)
    );
    let sent = message.sent_at.map_or_else(unknown, render::time);
    // The message group is the event's aggregate: an order, or a sign-in request.
    let sign_in = message.event_type.as_deref() == Some(EventType::SignInRequested.as_str());
    let group = if sign_in { "sign-in" } else { "order" };
    let mut fields = vec![
        ("message", message.message_id.clone()),
        (group, message.group_id.clone().unwrap_or_else(unknown)),
        ("event", event),
        (
            "parked",
            format!(
                "{sent}, received {}",
                render::count(message.receive_count as usize, "time", "times")
            ),
        ),
        ("reason", message.reason.clone()),
    ];
    if let Some(from) = &message.parked_from {
        fields.push(("from", queue_name(from)));
    }
    render::fields(&fields)
}

/// The redrive report as text.
pub fn render_redrive(report: &RedriveReport) -> String {
    let queue = &report.queue;
    if report.messages.is_empty() {
        return format!(
            "{}: no parked messages, nothing to move\n",
            queue.dead_letter_queue
        );
    }
    let n = render::count(report.messages.len(), "message", "messages");
    let head = if report.dry_run {
        format!(
            "dry run: would move {n} from {} back to {} (add --yes to move)\n",
            queue.dead_letter_queue, queue.queue
        )
    } else {
        format!(
            "moved {n} from {} back to {}\n",
            queue.dead_letter_queue, queue.queue
        )
    };
    let rows: Vec<Vec<String>> = report
        .messages
        .iter()
        .map(|m| {
            vec![
                m.message_id.clone(),
                m.group_id.clone().unwrap_or_default(),
                m.event_type.clone().unwrap_or_default(),
                render::excerpt(&m.reason, 60),
            ]
        })
        .collect();
    head + &render::table(&["MESSAGE", "ORDER", "EVENT", "REASON"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inspected(attributes: &[(&str, &str)], body: &str) -> ReceivedMessage {
        ReceivedMessage {
            message_id: "m-1".into(),
            receipt_handle: "h".into(),
            body: body.into(),
            receive_count: 2,
            group_id: Some("order-1".into()),
            sent_at_ms: Some(1_767_225_600_000),
            attributes: attributes
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn a_parked_message_shows_its_event_and_reason() {
        let message = inspected(
            &[
                ("parked_reason", "order x does not exist"),
                ("parked_from", "q.fifo"),
            ],
            r#"{"event_id":"e-1","event_type":"order.placed"}"#,
        );
        let parked = ParkedMessage::from(&message);
        assert_eq!(parked.event_type.as_deref(), Some("order.placed"));
        assert!(parked.is_for("order-1"), "by its message group");
        assert_eq!(parked.event_id.as_deref(), Some("e-1"));
        assert_eq!(parked.reason, "order x does not exist");
        assert_eq!(
            parked.sent_at.map(render::time).as_deref(),
            Some("2026-01-01 00:00:00 UTC")
        );
    }

    #[test]
    fn a_parked_message_belongs_to_the_order_its_envelope_names() {
        let parked = ParkedMessage::from(&inspected(&[], r#"{"order_id":"order-9"}"#));
        assert_eq!(parked.order_id.as_deref(), Some("order-9"));
        assert!(parked.is_for("order-9") && parked.is_for("order-1"));
        assert!(!parked.is_for("order-2"));
    }

    #[test]
    fn a_message_moved_by_sqs_itself_exceeded_its_receives() {
        let parked = ParkedMessage::from(&inspected(
            &[("event_type", "invoice.generated")],
            "{not json",
        ));
        assert_eq!(parked.reason, MAX_RECEIVES_REASON);
        assert!(!parked.is_for("order-2"));
        assert_eq!(parked.event_type.as_deref(), Some("invoice.generated"));
        assert_eq!(parked.event_id, None);
    }

    #[test]
    fn a_redriven_copy_keeps_body_group_and_relay_attributes_with_a_new_dedup_id() {
        let message = inspected(
            &[
                ("event_type", "order.placed"),
                ("parked_reason", "r"),
                ("traceparent", "00-a-b-01"),
            ],
            "{}",
        );
        let copy = redriven(&message);
        assert_eq!(copy.body, "{}");
        assert_eq!(copy.group_id, "order-1");
        assert_eq!(copy.dedup_id, "redrive-m-1");
        assert_eq!(
            copy.attributes,
            vec![
                ("event_type", "order.placed".to_owned()),
                ("traceparent", "00-a-b-01".to_owned())
            ]
        );
    }

    #[test]
    fn unknown_queue_names_are_refused() {
        assert!(consumer("invoice").is_ok());
        assert!(matches!(
            consumer("invoices"),
            Err(AdminError::UnknownQueue(_))
        ));
    }
}
