//! `orders stuck`: the orders that are not settled long after they were placed, what each one
//! waits for, and any of its messages parked in a dead-letter queue.
//!
//! The orders and the steps they wait on come from `orders::stuck` (PostgreSQL). The parked
//! messages come from the four workers' dead-letter queues, read the way `dlq list` reads them
//! (without consuming, see [`crate::dlq`]), and belong to an order when their message group or
//! their envelope's `order_id` names it. When SQS cannot be read the orders are listed all the
//! same, and the report says which dead-letter queues could not be read. The queues are read
//! only when some order is stuck.

use std::time::Duration;

use ::orders::stuck::{self as orders, PendingStep, StuckOrder};
use aws_sdk_sqs::Client;
use chrono::{DateTime, Utc};
use domain::Consumer;
use serde::Serialize;
use settings::SqsSettings;
use sqlx::PgPool;

use crate::{
    AdminError,
    dlq::{self, Listing, ParkedMessage},
    one_line, render,
};

/// Parked messages read from each dead-letter queue at most.
pub const PARKED_PER_QUEUE: usize = 100;
/// What `--older-than` takes.
const AGE_FORMAT: &str = "expected a whole number and a unit: 90s, 15m, 2h or 1d";
/// The units of `--older-than`, largest first, in seconds.
const UNITS: [(&str, u64); 4] = [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)];

/// Parses an age limit: a whole number and a unit, `90s`, `15m`, `2h` or `1d`.
///
/// # Errors
/// A sentence saying what is expected.
pub fn parse_age(text: &str) -> Result<Duration, String> {
    let unit_at = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(unit_at);
    let per_unit = UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|(_, seconds)| *seconds)
        .ok_or(AGE_FORMAT)?;
    let n: u64 = number.parse().map_err(|_| AGE_FORMAT)?;
    n.checked_mul(per_unit)
        .map(Duration::from_secs)
        .ok_or_else(|| "the age is too large".to_owned())
}

/// An age limit the way [`parse_age`] reads it, in the largest unit that divides it: `15m`.
pub fn format_age(age: Duration) -> String {
    let seconds = age.as_secs();
    let (unit, per_unit) = UNITS
        .iter()
        .find(|(_, per_unit)| seconds > 0 && seconds.is_multiple_of(*per_unit))
        .copied()
        .unwrap_or(("s", 1));
    format!("{}{unit}", seconds / per_unit)
}

/// The stuck orders and what was found about them.
#[derive(Debug, Serialize)]
pub struct StuckReport {
    /// Orders placed longer ago than this many seconds and not settled are listed.
    pub older_than_s: u64,
    /// At most this many orders are listed.
    pub limit: i64,
    /// The limit was reached: there may be more.
    pub limit_reached: bool,
    /// The stuck orders, oldest first.
    pub orders: Vec<StuckEntry>,
    /// How reading each dead-letter queue went (empty when no order is stuck).
    pub dead_letter_queues: Vec<QueueRead>,
}

/// One stuck order.
#[derive(Debug, Serialize)]
pub struct StuckEntry {
    /// Id, status, cancel reason, placed and last changed at.
    #[serde(flatten)]
    pub order: StuckOrder,
    /// Seconds since it was placed.
    pub age_s: f64,
    /// What its status waits for, in plain words.
    pub waiting_for: &'static str,
    /// The first of its events that a worker has not processed yet, if any.
    pub next_step: Option<Pending>,
    /// Its messages parked in the workers' dead-letter queues.
    pub parked: Vec<ParkedFor>,
}

/// A step an order waits on, with its description in plain words.
#[derive(Debug, Serialize)]
pub struct Pending {
    /// The event, the consumer and where publishing stands.
    #[serde(flatten)]
    pub step: PendingStep,
    /// `order.placed: published, not yet processed by invoice`.
    pub description: String,
}

impl From<PendingStep> for Pending {
    fn from(step: PendingStep) -> Self {
        Pending {
            description: step.describe(),
            step,
        }
    }
}

/// A message of the order parked in a worker's dead-letter queue.
#[derive(Debug, Serialize)]
pub struct ParkedFor {
    /// The worker (`invoice`, …).
    pub queue: String,
    /// The dead-letter queue's name.
    pub dead_letter_queue: String,
    /// The message, as `dlq list` shows it.
    #[serde(flatten)]
    pub message: ParkedMessage,
}

/// How reading one worker's dead-letter queue went.
#[derive(Debug, Serialize)]
pub struct QueueRead {
    /// The worker (`invoice`, …).
    pub queue: String,
    /// The dead-letter queue's name, once resolved.
    pub dead_letter_queue: Option<String>,
    /// Parked messages read.
    pub parked: usize,
    /// [`PARKED_PER_QUEUE`] were read: there may be more, not matched to any order.
    pub limit_reached: bool,
    /// Why it could not be read, on one line.
    pub error: Option<String>,
}

/// What reading one dead-letter queue gave.
type Read = (Consumer, Result<Listing, AdminError>);

/// Lists up to `limit` orders that are not settled and were placed more than `older_than` ago,
/// with what each waits for and its parked messages.
///
/// # Errors
/// [`AdminError::Orders`] or [`AdminError::Database`] when a query fails. SQS failures are not
/// errors: they are reported in [`StuckReport::dead_letter_queues`].
pub async fn stuck(
    pool: &PgPool,
    sqs: (&Client, &SqsSettings),
    older_than: Duration,
    limit: i64,
) -> Result<StuckReport, AdminError> {
    let found = orders::stuck(pool, older_than, limit).await?;
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()").fetch_one(pool).await?;
    let reads = if found.is_empty() {
        Vec::new()
    } else {
        read_dead_letter_queues(sqs.0, sqs.1).await
    };
    let limit_reached = found.len() as i64 >= limit;
    let mut entries = Vec::with_capacity(found.len());
    for order in found {
        entries.push(entry(pool, order, now, &reads).await?);
    }
    Ok(StuckReport {
        older_than_s: older_than.as_secs(),
        limit,
        limit_reached,
        orders: entries,
        dead_letter_queues: reads.iter().map(queue_read).collect(),
    })
}

/// Reads the four dead-letter queues at once.
async fn read_dead_letter_queues(client: &Client, settings: &SqsSettings) -> Vec<Read> {
    let reads = Consumer::ALL.map(|consumer| async move {
        (
            consumer,
            read_dead_letter_queue(client, settings, consumer).await,
        )
    });
    futures::future::join_all(reads).await
}

async fn read_dead_letter_queue(
    client: &Client,
    settings: &SqsSettings,
    consumer: Consumer,
) -> Result<Listing, AdminError> {
    let pair = dlq::resolve(client, settings, consumer.name()).await?;
    dlq::list(client, pair, PARKED_PER_QUEUE).await
}

fn queue_read((consumer, read): &Read) -> QueueRead {
    match read {
        Ok(listing) => QueueRead {
            queue: consumer.name().to_owned(),
            dead_letter_queue: Some(listing.queue.dead_letter_queue.clone()),
            parked: listing.messages.len(),
            limit_reached: listing.limit_reached,
            error: None,
        },
        Err(error) => QueueRead {
            queue: consumer.name().to_owned(),
            dead_letter_queue: None,
            parked: 0,
            limit_reached: false,
            error: Some(one_line(error)),
        },
    }
}

/// The order with its next step and its parked messages.
async fn entry(
    pool: &PgPool,
    order: StuckOrder,
    now: DateTime<Utc>,
    reads: &[Read],
) -> Result<StuckEntry, AdminError> {
    let steps = orders::pending_steps(pool, order.order_id).await?;
    Ok(StuckEntry {
        age_s: (now - order.created_at).num_milliseconds() as f64 / 1000.0,
        waiting_for: orders::waiting_for(&order.status, order.cancel_reason.as_deref()),
        next_step: steps.into_iter().next().map(Pending::from),
        parked: parked_for(&order.order_id.to_string(), reads),
        order,
    })
}

/// The messages of `order_id` among those read.
fn parked_for(order_id: &str, reads: &[Read]) -> Vec<ParkedFor> {
    reads
        .iter()
        .filter_map(|(_, read)| read.as_ref().ok())
        .flat_map(|listing| {
            listing
                .messages
                .iter()
                .filter(|message| message.is_for(order_id))
                .map(|message| ParkedFor {
                    queue: listing.queue.consumer.clone(),
                    dead_letter_queue: listing.queue.dead_letter_queue.clone(),
                    message: message.clone(),
                })
        })
        .collect()
}

/// The report as text: a summary, what could not be read, then one block per order.
pub fn render(report: &StuckReport) -> String {
    let age = format_age(Duration::from_secs(report.older_than_s));
    if report.orders.is_empty() {
        return format!("no stuck orders: every order placed more than {age} ago is settled\n");
    }
    let n = render::count(report.orders.len(), "stuck order", "stuck orders");
    let more = if report.limit_reached {
        " (limit reached: there may be more)"
    } else {
        ""
    };
    let mut text = format!("{n}{more}: not settled and placed more than {age} ago, oldest first\n");
    text.push_str(&queue_notes(&report.dead_letter_queues));
    for entry in &report.orders {
        text.push('\n');
        text.push_str(&render_entry(entry));
    }
    text
}

/// A line per dead-letter queue that could not be read (one line when none could, for the same
/// reason) or held more than was read.
fn queue_notes(reads: &[QueueRead]) -> String {
    let errors: Vec<(&str, &str)> = reads
        .iter()
        .filter_map(|r| Some((r.queue.as_str(), r.error.as_deref()?)))
        .collect();
    let all_alike = errors.len() == reads.len() && errors.windows(2).all(|w| w[0].1 == w[1].1);
    let mut text = match errors.first() {
        Some((_, error)) if all_alike => format!(
            "the dead-letter queues could not be read, parked messages are not shown: {error}\n"
        ),
        _ => errors
            .iter()
            .map(|(queue, error)| {
                format!("the {queue} dead-letter queue could not be read: {error}\n")
            })
            .collect(),
    };
    for read in reads.iter().filter(|r| r.limit_reached) {
        text.push_str(&format!(
            "{}: only the first {PARKED_PER_QUEUE} parked messages were matched to orders\n",
            read.dead_letter_queue.as_deref().unwrap_or(&read.queue)
        ));
    }
    text
}

fn render_entry(entry: &StuckEntry) -> String {
    let order = &entry.order;
    let mut fields = vec![
        ("order", order.order_id.to_string()),
        ("status", order.status.clone()),
        ("age", render::age(entry.age_s)),
    ];
    if let Some(reason) = &order.cancel_reason {
        fields.push(("cancelled", reason.clone()));
    }
    fields.push(("waiting", entry.waiting_for.to_owned()));
    if let Some(step) = &entry.next_step {
        fields.push(("next", step.description.clone()));
    }
    for parked in &entry.parked {
        fields.push(("parked", parked_line(parked)));
    }
    render::fields(&fields)
}

/// `chargeflow-invoice-dlq.fifo: <reason> (order.placed, message <id>)`.
fn parked_line(parked: &ParkedFor) -> String {
    let message = &parked.message;
    format!(
        "{}: {} ({}, message {})",
        parked.dead_letter_queue,
        render::excerpt(&message.reason, 100),
        message.event_type.as_deref().unwrap_or("?"),
        message.message_id
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_a_whole_number_and_a_unit() {
        assert_eq!(parse_age("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_age("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_age("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_age("1d"), Ok(Duration::from_secs(86_400)));
        for bad in ["15", "m", "1w", "1.5h", "-1m", "", " 2h", "2 h"] {
            assert_eq!(parse_age(bad), Err(AGE_FORMAT.to_owned()), "{bad:?}");
        }
    }

    #[test]
    fn ages_are_written_in_their_largest_whole_unit() {
        assert_eq!(format_age(Duration::from_secs(900)), "15m");
        assert_eq!(format_age(Duration::from_secs(90)), "90s");
        assert_eq!(format_age(Duration::from_secs(7200)), "2h");
        assert_eq!(format_age(Duration::from_secs(172_800)), "2d");
        assert_eq!(format_age(Duration::ZERO), "0s");
    }

    fn unread(queue: &str, error: &str) -> QueueRead {
        QueueRead {
            queue: queue.to_owned(),
            dead_letter_queue: None,
            parked: 0,
            limit_reached: false,
            error: Some(error.to_owned()),
        }
    }

    #[test]
    fn queues_unreadable_for_one_reason_are_one_line() {
        let reads: Vec<QueueRead> = ["invoice", "billing", "shipping", "email"]
            .into_iter()
            .map(|q| unread(q, "SQS is unreachable"))
            .collect();
        assert_eq!(
            queue_notes(&reads),
            "the dead-letter queues could not be read, parked messages are not shown: SQS is unreachable\n"
        );
        let read = QueueRead {
            error: None,
            dead_letter_queue: Some("q-invoice-dlq.fifo".to_owned()),
            ..unread("invoice", "")
        };
        let one_missing = [read, unread("billing", "no such queue")];
        assert_eq!(
            queue_notes(&one_missing),
            "the billing dead-letter queue could not be read: no such queue\n"
        );
    }
}
