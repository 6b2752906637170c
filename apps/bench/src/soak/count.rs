//! Counting at the sources, once the run has settled: the orders in the database, the
//! PaymentIntents and refunds at the fake Stripe, the shipments at the partner simulator, the
//! e-mails in the SMTP sink's Maildir, the products' stock and the dead-letter queues.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant, SystemTime},
};

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{START_STOCK, Stack, load::Checkout};
use crate::workers::Setup;

/// The states an order ends in.
pub(crate) const ENDS: [&str; 5] = [
    "shipped",
    "delivered",
    "payment_failed",
    "cancelled",
    "refunded",
];

/// The states of an order that has been charged.
const CHARGED: [&str; 4] = ["paid", "shipped", "delivered", "refunded"];

/// The event types that get no e-mail of their own (`shipment.failed`: the refund's e-mail
/// tells it), as the email-service decides.
pub(crate) fn silent_event_types() -> Vec<&'static str> {
    domain::EventType::ALL
        .into_iter()
        .filter(|t| email_service::handler::kind_of(*t).is_none())
        .map(domain::EventType::as_str)
        .collect()
}

/// Waits until every order is settled, the outbox is published and the queues are empty, for at
/// most `deadline`; whether that happened.
pub(crate) async fn wait_settled(setup: &Setup, deadline: Duration) -> bool {
    let until = Instant::now() + deadline;
    while Instant::now() < until {
        // An error (PostgreSQL or LocalStack still coming back) is "not yet".
        if settled(setup).await.unwrap_or(false) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}

async fn settled(setup: &Setup) -> anyhow::Result<bool> {
    let open: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM orders WHERE status <> ALL($1))
              + (SELECT count(*) FROM outbox WHERE published_at IS NULL)
              + (SELECT count(*) FROM outbox o
                 WHERE event_type <> ALL($2)
                   AND NOT EXISTS (SELECT 1 FROM sent_emails s WHERE s.event_id = o.event_id))",
    )
    .bind(&ENDS[..])
    .bind(silent_event_types())
    .fetch_one(&setup.pool)
    .await?;
    if open > 0 {
        return Ok(false);
    }
    for (_, url, _) in &setup.queues.urls {
        if testkit::queue_depth(&setup.sqs, url)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            > 0
        {
            return Ok(false);
        }
    }
    Ok(true)
}

/// One event of an order and the copies of its e-mail in the sink.
#[derive(Debug, Clone)]
pub(crate) struct Mail {
    pub(crate) event_type: String,
    /// The `Message-ID` the e-mail of this event carries (`<event id>@…`), without brackets.
    pub(crate) message_id: String,
    /// When each copy arrived, earliest first.
    pub(crate) copies: Vec<SystemTime>,
}

/// Everything counted about one order.
#[derive(Debug, Clone, Default)]
pub(crate) struct OrderCount {
    /// `None`: not in the database.
    pub(crate) status: Option<String>,
    /// The latest of its timeline entries and recorded e-mails.
    pub(crate) settled_at: Option<SystemTime>,
    /// PaymentIntents for it, and the succeeded ones (charges).
    pub(crate) intents: usize,
    pub(crate) charges: usize,
    pub(crate) refunds: usize,
    /// Shipments the partner booked for it.
    pub(crate) shipments: i64,
    pub(crate) mails: Vec<Mail>,
}

impl OrderCount {
    /// Whether it is in an end state.
    pub(crate) fn ended(&self) -> bool {
        self.status.as_deref().is_some_and(|s| ENDS.contains(&s))
    }

    /// Whether it was paid (so exactly one charge is due).
    pub(crate) fn charged(&self) -> bool {
        self.status.as_deref().is_some_and(|s| CHARGED.contains(&s))
    }

    /// Whether it was shipped (so exactly one shipment is due).
    pub(crate) fn shipped(&self) -> bool {
        matches!(self.status.as_deref(), Some("shipped" | "delivered"))
    }
}

/// What the sources hold at the end of the run.
#[derive(Debug)]
pub(crate) struct Counts {
    /// Every order answered `201` or found in the database.
    pub(crate) orders: HashMap<Uuid, OrderCount>,
    /// Orders in the database.
    pub(crate) in_db: usize,
    /// E-mails whose `Message-ID` names no event of the run.
    pub(crate) foreign_mails: usize,
    /// E-mails in the sink, copies included.
    pub(crate) mails_received: usize,
    /// Per product: (id, stock expected, stock found).
    pub(crate) stock: Vec<(i64, i64, i64)>,
    /// Per dead-letter queue: its name and the messages parked in it.
    pub(crate) parked: Vec<(String, i64)>,
    /// A process that exited by itself (not killed by the schedule), with its status.
    pub(crate) exited: Option<(String, String)>,
}

impl Counts {
    /// Reads every source.
    pub(crate) async fn gather(
        stack: &Stack,
        checkouts: &[Checkout],
        exited: Option<(String, String)>,
    ) -> anyhow::Result<Self> {
        let pool = &stack.setup.pool;
        let mut orders: HashMap<Uuid, OrderCount> = checkouts
            .iter()
            .filter_map(|c| Some((c.order_id?, OrderCount::default())))
            .collect();
        let statuses: Vec<(Uuid, String)> = sqlx::query_as("SELECT id, status FROM orders")
            .fetch_all(pool)
            .await?;
        let in_db = statuses.len();
        for (id, status) in statuses {
            orders.entry(id).or_default().status = Some(status);
        }
        settle_times(pool, &mut orders).await?;
        payments(&stack.stripe, &mut orders).await?;
        shipments(&stack.partner, &mut orders).await?;
        let (mails_received, foreign_mails) = mails(stack, &mut orders).await?;
        Ok(Counts {
            stock: stock(pool, &orders).await?,
            parked: parked(&stack.setup).await?,
            orders,
            in_db,
            foreign_mails,
            mails_received,
            exited,
        })
    }
}

async fn settle_times(
    pool: &sqlx::PgPool,
    orders: &mut HashMap<Uuid, OrderCount>,
) -> anyhow::Result<()> {
    let rows: Vec<(Uuid, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT o.id, greatest(
             (SELECT max(occurred_at) FROM order_timeline t WHERE t.order_id = o.id),
             (SELECT max(created_at) FROM sent_emails s WHERE s.order_id = o.id))
         FROM orders o",
    )
    .fetch_all(pool)
    .await?;
    for (id, at) in rows {
        if let Some(order) = orders.get_mut(&id) {
            order.settled_at = at.map(SystemTime::from);
        }
    }
    Ok(())
}

/// PaymentIntents by `metadata.order_id`, and the refunds of the succeeded ones.
async fn payments(
    stripe: &testkit::stripe::FakeStripe,
    orders: &mut HashMap<Uuid, OrderCount>,
) -> anyhow::Result<()> {
    let boxed = |e| anyhow::anyhow!("{e}");
    let intents = stripe
        .list_all("/v1/payment_intents", "")
        .await
        .map_err(boxed)?;
    for intent in intents {
        let Some(order) = order_of(&intent).and_then(|id| orders.get_mut(&id)) else {
            continue;
        };
        order.intents += 1;
        if intent["status"] == "succeeded" {
            order.charges += 1;
            let id = intent["id"].as_str().unwrap_or_default();
            order.refunds += stripe
                .refunds_for_payment_intent(id)
                .await
                .map_err(boxed)?
                .len();
        }
    }
    Ok(())
}

fn order_of(intent: &Value) -> Option<Uuid> {
    intent["metadata"]["order_id"].as_str()?.parse().ok()
}

/// `shipments_created` of each order at the partner simulator.
async fn shipments(partner: &str, orders: &mut HashMap<Uuid, OrderCount>) -> anyhow::Result<()> {
    let http = reqwest::Client::builder().no_proxy().build()?;
    for (id, order) in orders.iter_mut() {
        let stats: Value = http
            .get(format!("{partner}/v1/_sim/stats?reference={id}"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        order.shipments = stats["shipments_created"].as_i64().unwrap_or(0);
    }
    Ok(())
}

/// Each event of each order with the copies of its e-mail; returns the e-mails received and
/// those that belong to no event.
async fn mails(
    stack: &Stack,
    orders: &mut HashMap<Uuid, OrderCount>,
) -> anyhow::Result<(usize, usize)> {
    let received = stack
        .setup
        .sink
        .messages()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // By event id: the Message-ID as received, and when each copy arrived.
    let mut arrivals: HashMap<String, (String, Vec<SystemTime>)> = HashMap::new();
    for mail in &received {
        let event = mail.message_id.split('@').next().unwrap_or_default();
        let entry = arrivals
            .entry(event.to_owned())
            .or_insert_with(|| (mail.message_id.clone(), Vec::new()));
        entry.1.push(mail.received_at);
    }
    let events: Vec<(Uuid, Uuid, String)> = sqlx::query_as(
        "SELECT event_id, aggregate_id, event_type FROM outbox WHERE event_type <> ALL($1) ORDER BY id",
    )
    .bind(silent_event_types())
    .fetch_all(&stack.setup.pool)
    .await?;
    let mut known = HashSet::new();
    for (event_id, order_id, event_type) in events {
        let key = event_id.to_string();
        let (message_id, mut copies) = arrivals
            .get(&key)
            .cloned()
            .unwrap_or_else(|| (format!("{key}@…"), Vec::new()));
        copies.sort();
        known.insert(key);
        if let Some(order) = orders.get_mut(&order_id) {
            order.mails.push(Mail {
                event_type,
                message_id,
                copies,
            });
        }
    }
    let foreign = arrivals
        .iter()
        .filter(|(event, _)| !known.contains(*event))
        .map(|(_, (_, copies))| copies.len())
        .sum();
    Ok((received.len(), foreign))
}

/// Per product: the stock expected (start minus the quantities of the orders the partner
/// shipped) and found.
async fn stock(
    pool: &sqlx::PgPool,
    orders: &HashMap<Uuid, OrderCount>,
) -> anyhow::Result<Vec<(i64, i64, i64)>> {
    let lines: Vec<(Uuid, i64, i32)> =
        sqlx::query_as("SELECT order_id, product_id, quantity FROM order_items")
            .fetch_all(pool)
            .await?;
    let mut shipped: HashMap<i64, i64> = HashMap::new();
    for (order_id, product, quantity) in lines {
        if orders.get(&order_id).is_some_and(|o| o.shipments > 0) {
            *shipped.entry(product).or_default() += i64::from(quantity);
        }
    }
    let products: Vec<(i64, i32)> = sqlx::query_as("SELECT id, stock FROM products ORDER BY id")
        .fetch_all(pool)
        .await?;
    Ok(products
        .into_iter()
        .map(|(id, found)| {
            let expected = i64::from(START_STOCK) - shipped.get(&id).copied().unwrap_or(0);
            (id, expected, i64::from(found))
        })
        .collect())
}

/// The messages in each dead-letter queue.
async fn parked(setup: &Setup) -> anyhow::Result<Vec<(String, i64)>> {
    let mut parked = Vec::new();
    for (consumer, _, dlq) in &setup.queues.urls {
        let depth = testkit::queue_depth(&setup.sqs, dlq)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        parked.push((format!("{consumer} DLQ"), depth));
    }
    Ok(parked)
}
