//! Relay publish rate and commit-to-SQS lag, next to a plain `SendMessageBatch` loop that sends
//! the same number of messages to the same queues of the same LocalStack in the same run.

use std::time::{Duration, Instant};

use aws_sdk_sqs::Client;
use domain::{Consumer, EventEnvelope, EventType, route};
use futures::{StreamExt, stream};
use outbox_relay::{Publisher, Relay};
use sqlx::PgPool;
use sqs_transport::{OutgoingMessage, QueueDirectory};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::stats::{self, Phase};

#[derive(clap::Args)]
pub struct Args {
    /// Events in the throughput phases (two per order: order.placed and invoice.generated).
    #[arg(long, default_value_t = 4000)]
    events: usize,
    /// SendMessageBatch calls in flight in the baseline loop.
    #[arg(long, default_value_t = 16)]
    sqs_concurrency: usize,
    /// Relay claim loops.
    #[arg(long, default_value_t = 4)]
    relay_concurrency: usize,
    /// Event rate of the lag phase, per second.
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// Length of the lag phase, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// The relay's `linger_ms` in the lag phase (`APP__RELAY__LINGER_MS`; its default when not
    /// given): what a longer linger costs in lag.
    #[arg(long)]
    linger_ms: Option<u64>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let boxed = |e| anyhow::anyhow!("{e}");
    let db_url = testkit::fresh_database().await.map_err(boxed)?;
    let pool = testkit::pool(&db_url, 12).await.map_err(boxed)?;
    let endpoint = testkit::test_settings(&[]).sqs.endpoint_url;
    let sqs = testkit::sqs_client(&endpoint).await;
    let events = make_events(args.events)?;

    // Each phase on fresh queues, deleted after it: no phase meets the messages of another.
    let queues = testkit::fresh_queues(&sqs).await.map_err(boxed)?;
    let baseline = plain_loop(&sqs, &queues.prefix, &events, args.sqs_concurrency).await?;
    queues.delete(&sqs).await.map_err(boxed)?;
    let queues = testkit::fresh_queues(&sqs).await.map_err(boxed)?;
    let relay =
        relay_throughput(&pool, &sqs, &queues.prefix, &events, args.relay_concurrency).await?;
    queues.delete(&sqs).await.map_err(boxed)?;
    let queues = testkit::fresh_queues(&sqs).await.map_err(boxed)?;
    let plain_lag = plain_lag(&sqs, &queues.prefix, &args).await?;
    let lag = relay_lag(&pool, &sqs, &queues.prefix, &args).await?;
    queues.delete(&sqs).await.map_err(boxed)?;

    println!(
        "\n## Relay ({} events = {} messages; baseline with {} calls in flight, relay with {} loops)\n",
        events.len(),
        baseline.count,
        args.sqs_concurrency,
        args.relay_concurrency
    );
    println!("{}", stats::header());
    println!("{}", baseline.row());
    println!("{}", relay.row());
    println!("{}", plain_lag.row());
    println!("{}", lag.row());
    println!(
        "\nrelay / plain SendMessageBatch rate: {:.2} (target ≥ 0.9); lag at {}/s: p50 {:.1} ms against {:.1} ms for one plain call (target: within 5 ms), p99 {:.1} ms",
        relay.per_second() / baseline.per_second(),
        args.rate,
        lag.percentile_ms(50.0),
        plain_lag.percentile_ms(50.0),
        lag.percentile_ms(99.0)
    );
    Ok(())
}

pub(crate) fn make_events(count: usize) -> anyhow::Result<Vec<EventEnvelope>> {
    let mut events = Vec::with_capacity(count);
    for n in 0..count {
        let order_id = if n % 2 == 0 {
            Uuid::now_v7()
        } else {
            events
                .last()
                .map_or_else(Uuid::now_v7, |e: &EventEnvelope| e.order_id)
        };
        let event_type = if n % 2 == 0 {
            EventType::OrderPlaced
        } else {
            EventType::InvoiceGenerated
        };
        let payload = serde_json::json!({"padding": "x".repeat(600)});
        events.push(EventEnvelope::new(
            event_type, order_id, "bench", "", &payload,
        )?);
    }
    Ok(events)
}

fn messages_of(events: &[EventEnvelope]) -> Vec<(Consumer, OutgoingMessage)> {
    events
        .iter()
        .enumerate()
        .flat_map(|(n, event)| {
            route(event.event_type).iter().map(move |consumer| {
                let message = OutgoingMessage {
                    entry_id: n.to_string(),
                    body: serde_json::to_string(event).unwrap_or_default(),
                    group_id: event.order_id.to_string(),
                    dedup_id: format!("base-{}", event.event_id),
                    // The attributes the relay sends (an empty one is left out).
                    attributes: vec![
                        ("event_type", event.event_type.to_string()),
                        ("correlation_id", event.correlation_id.clone()),
                        ("traceparent", event.traceparent.clone()),
                    ],
                };
                (*consumer, message)
            })
        })
        .collect()
}

pub(crate) async fn plain_loop(
    sqs: &Client,
    prefix: &str,
    events: &[EventEnvelope],
    concurrency: usize,
) -> anyhow::Result<Phase> {
    let urls = queue_urls(sqs, prefix).await?;
    let messages = messages_of(events);
    let mut calls = Vec::new();
    for (consumer, url) in urls {
        let mine: Vec<OutgoingMessage> = messages
            .iter()
            .filter(|(c, _)| *c == consumer)
            .map(|(_, m)| m.clone())
            .collect();
        calls.extend(mine.chunks(10).map(|chunk| (url.clone(), chunk.to_vec())));
    }
    let started = Instant::now();
    let latencies: Vec<Duration> = stream::iter(calls)
        .map(|(url, chunk)| async move {
            let t = Instant::now();
            let outcome = sqs_transport::send_batch(sqs, &url, &chunk).await;
            (
                t.elapsed(),
                chunk.len(),
                outcome.map(|o| o.failed.is_empty()).unwrap_or(false),
            )
        })
        .buffer_unordered(concurrency)
        .flat_map(|(elapsed, n, ok)| {
            stream::iter(std::iter::repeat_n(elapsed, if ok { n } else { 0 }))
        })
        .collect()
        .await;
    let elapsed = started.elapsed();
    anyhow::ensure!(latencies.len() == messages.len(), "baseline lost messages");
    Ok(Phase::new(
        "plain SendMessageBatch loop (baseline)",
        elapsed,
        latencies,
    ))
}

pub(crate) async fn relay_throughput(
    pool: &PgPool,
    sqs: &Client,
    prefix: &str,
    events: &[EventEnvelope],
    concurrency: usize,
) -> anyhow::Result<Phase> {
    let messages = messages_of(events).len();
    // A running relay meets the backlog (as after a queue outage): started first and given a
    // second to connect and listen, then the whole backlog committed at once; its start-up is
    // not part of the drain.
    let (shutdown, relay) = start_relay(pool, sqs, prefix, concurrency, None).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut tx = pool.begin().await?;
    for event in events {
        outbox::enqueue(&mut tx, event).await?;
    }
    tx.commit().await?;
    let started = Instant::now();
    wait_published(pool, events.len()).await?;
    let elapsed = started.elapsed();
    shutdown.cancel();
    relay.await?;
    // Per-message latency is not meaningful for a backlog drain: report the drain time.
    Ok(Phase::new(
        "outbox relay, backlog drain",
        elapsed,
        vec![elapsed; messages],
    ))
}

/// The lag baseline: one plain `SendMessageBatch` call at a time, each with one event's message
/// to one of its queues, timed from the call to its answer — what DESIGN's lag target is
/// measured against. (Sending each event as it comes at the lag phase's rate is no baseline:
/// 200 events a second are 400 calls, more than LocalStack answers, and its p50 grows to
/// seconds.)
async fn plain_lag(sqs: &Client, prefix: &str, args: &Args) -> anyhow::Result<Phase> {
    let urls: std::collections::HashMap<_, _> =
        queue_urls(sqs, prefix).await?.into_iter().collect();
    let calls = usize::try_from(args.rate)?;
    // One message per call: each event's message to each of its queues.
    let messages = messages_of(&make_events(calls)?);
    let mut latencies = Vec::with_capacity(calls);
    let started = Instant::now();
    for (consumer, message) in messages.iter().take(calls) {
        let t = Instant::now();
        let sent =
            sqs_transport::send_batch(sqs, &urls[consumer], std::slice::from_ref(message)).await?;
        anyhow::ensure!(sent.failed.is_empty(), "the lag baseline's call failed");
        latencies.push(t.elapsed());
    }
    Ok(Phase::new(
        "one plain SendMessageBatch call at a time (lag baseline)",
        started.elapsed(),
        latencies,
    ))
}

/// Every consumer's queue URL under `prefix`.
async fn queue_urls(sqs: &Client, prefix: &str) -> anyhow::Result<Vec<(Consumer, String)>> {
    let directory = QueueDirectory::new(sqs.clone());
    let mut urls = Vec::with_capacity(Consumer::ALL.len());
    for consumer in Consumer::ALL {
        let url = directory
            .url(&format!("{prefix}{}.fifo", consumer.name()))
            .await?;
        urls.push((consumer, url));
    }
    Ok(urls)
}

async fn relay_lag(
    pool: &PgPool,
    sqs: &Client,
    prefix: &str,
    args: &Args,
) -> anyhow::Result<Phase> {
    sqlx::query("DELETE FROM outbox").execute(pool).await?;
    let (shutdown, relay) =
        start_relay(pool, sqs, prefix, args.relay_concurrency, args.linger_ms).await;
    let total = (args.rate * args.seconds) as usize;
    let events = make_events(total)?;
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    let started = Instant::now();
    for (n, event) in events.iter().enumerate() {
        tokio::time::sleep_until((started + interval * u32::try_from(n)?).into()).await;
        let mut tx = pool.begin().await?;
        outbox::enqueue(&mut tx, event).await?;
        tx.commit().await?;
    }
    wait_published(pool, total).await?;
    let elapsed = started.elapsed();
    shutdown.cancel();
    relay.await?;
    let lags: Vec<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM published_at - created_at)::float8 FROM outbox",
    )
    .fetch_all(pool)
    .await?;
    let lags = lags
        .into_iter()
        .map(|s| Duration::from_secs_f64(s.max(0.0)))
        .collect();
    Ok(Phase::new(
        match args.linger_ms {
            Some(linger) => format!("commit-to-SQS lag at {}/s, linger {linger} ms", args.rate),
            None => format!("commit-to-SQS lag at {}/s", args.rate),
        },
        elapsed,
        lags,
    ))
}

async fn start_relay(
    pool: &PgPool,
    sqs: &Client,
    prefix: &str,
    concurrency: usize,
    linger_ms: Option<u64>,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<outbox_relay::RunSummary>,
) {
    let mut settings = testkit::test_settings(&[]).relay;
    settings.concurrency = concurrency;
    settings.linger_ms = linger_ms.unwrap_or(settings.linger_ms);
    let relay = Relay::new(
        pool.clone(),
        Publisher::new(sqs.clone(), prefix.to_owned()),
        settings,
    );
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(relay.run(shutdown.clone()));
    (shutdown, handle)
}

async fn wait_published(pool: &PgPool, total: usize) -> anyhow::Result<()> {
    // Whether any row is unpublished, through the pending rows' partial index: a count of the
    // published rows every few milliseconds would scan the whole table each time and take CPU
    // from the relay it measures (two cores).
    const PENDING: &str = "SELECT EXISTS (SELECT 1 FROM outbox WHERE published_at IS NULL)";
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let pending: bool = sqlx::query_scalar(PENDING).fetch_one(pool).await?;
        if !pending {
            let done: i64 =
                sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NOT NULL")
                    .fetch_one(pool)
                    .await?;
            anyhow::ensure!(
                done >= i64::try_from(total)?,
                "only {done} of {total} events were published"
            );
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "relay did not publish {total} events in 300 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
