//! `bench report`: the whole pipeline as the separate processes it runs as — web-server, relay and
//! the four workers, the real binaries — under a load of N checkouts at a given rate, against the
//! local services, a private fake Stripe and the partner simulator. Writes `report.md`,
//! `latency.svg` (checkout → shipped per order over the run) and `statements.md` (every SQL
//! statement of the window with its calls per order) into the output folder and prints the report.
//!
//! In the same run, on a queue set of its own, the relay drains a backlog next to a plain
//! `SendMessageBatch` loop sending the same messages: their ratio is the relay's publish rate.
//! Before the load, the fake Stripe alone takes as many payments as the relay phase had events
//! (billing's two calls each, as many in flight as a billing process handles): billing's rate in
//! the pipeline against that one says whether the Stripe stand-in is what holds billing back.
//! Each process's peak RSS is its `VmHWM` just before it is stopped.
//!
//! Where the cost goes, over the load window (first checkout until the pipeline has done all its
//! work: every order shipped, every outbox row published, every queue empty): CPU per
//! process, ours and the services' (the partner simulator runs as its own process for that), SQS
//! calls per order as our processes count them (each serves `/metrics` on a free loopback port),
//! SQL statements and transactions per order, and an AWS cost estimate from those counts — see
//! the `window` module and the ones it uses.

use std::{
    collections::HashMap,
    fmt::Write as _,
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

use chrono::{DateTime, Utc};
use domain::EventType;
use sqlx::PgPool;
use testkit::{
    processes::{self, Processes},
    stripe::FakeStripe,
};
use uuid::Uuid;

use crate::{
    cpu::{Group, Scope, Watched},
    relay::{make_events, plain_loop, relay_throughput},
    stats::{Phase, percentile_ms},
    stripe::payments_alone,
    window::{self, Costs, Watch},
    workers::setup_with,
};

/// The completion polls (without constants: the statement counts leave them out by their text).
const SHIPPED_SQL: &str =
    "SELECT count(*) FROM order_timeline WHERE event_type = $1 AND order_id = ANY($2)";
const ROUTED_SQL: &str =
    "SELECT event_type, count(*), count(published_at) FROM outbox GROUP BY event_type";
const HANDLED_SQL: &str = "SELECT count(*) FROM inbox";

/// The order's steps, as timeline events, in order: the stage between two is named by the later.
const STEPS: [(&str, &str); 4] = [
    ("order.placed", "checkout"),
    ("invoice.generated", "relay + invoice"),
    ("payment.succeeded", "relay + billing"),
    ("shipment.created", "relay + shipping"),
];

#[derive(clap::Args)]
pub struct Args {
    /// Orders to place.
    #[arg(long, default_value_t = 1000)]
    orders: u32,
    /// Checkouts per second.
    #[arg(long, default_value_t = 50)]
    rate: u32,
    /// Events in the relay-versus-baseline phase.
    #[arg(long, default_value_t = 4000)]
    relay_events: usize,
    /// Payments in the fake-Stripe-alone phase.
    #[arg(long, default_value_t = 300)]
    stripe_payments: usize,
    /// Folder for report.md and latency.svg.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
    /// Folder with the binaries (default: next to this one).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

/// One order's journey: when its checkout was sent, how long it took, when each step happened.
struct Journey {
    sent: SystemTime,
    checkout: Duration,
    steps: HashMap<String, DateTime<Utc>>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let (relay, baseline) = relay_versus_baseline(args.relay_events).await?;
    let stripe = FakeStripe::start()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let bin_dir = args.bin_dir.clone().unwrap_or_else(processes::binaries_dir);
    let (mut partner_sim, partner) = start_partner(&bin_dir).await?;
    let http = format!("127.0.0.1:{}", free_port()?);
    let base = stripe.api_base();
    let setup = setup_with(&[
        ("APP__STRIPE__API_BASE", base.as_str()),
        ("APP__SHIPPING__PARTNER_URL", partner.as_str()),
        ("APP__HTTP__ADDR", http.as_str()),
    ])
    .await?;
    sqlx::query("UPDATE products SET stock = 100000000 WHERE id = 8")
        .execute(&setup.pool)
        .await?;
    let stripe_alone = payments_alone(
        &base,
        stripe.secret_key(),
        args.stripe_payments,
        setup.settings.worker.in_flight,
    )
    .await?;
    let env = child_env(&setup.settings, &base, &partner);
    let endpoints = metrics_endpoints()?;
    let mut processes = Processes::start_with(&bin_dir, &processes::PIPELINE, &env, None, |p| {
        metrics_addr(&endpoints, p)
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let address = format!("http://{http}");
    wait_healthy(&address).await?;
    let services = window::services(stripe.pid(), setup.smtp_pid(), pid(&partner_sim));
    let watched = watched(&processes, services);
    let own_sql = vec![SHIPPED_SQL, ROUTED_SQL, HANDLED_SQL];
    let mut watch = Watch::new(&setup.pool, watched, endpoints, own_sql).await?;

    let opened = watch.start().await?;
    let started = Instant::now();
    let placed = place(&address, args.rate, args.orders).await?;
    let load = started.elapsed();
    let ids: Vec<Uuid> = placed.keys().copied().collect();
    wait_shipped(&setup.pool, &ids, &mut processes).await?;
    let total = started.elapsed();
    let queued = still_queued(&setup.sqs, &setup.queues).await?;
    wait_drained(&setup.pool, &mut processes).await?;
    let drained = started.elapsed();
    let ended = watch.end().await?;
    let rss = processes.stop();
    partner_sim.stop();
    let costs = watch.finish(opened, ended, drained).await?;
    let journeys = journeys(&setup.pool, placed).await?;

    let report = Report {
        args: &args,
        load,
        total,
        journeys: &journeys,
        relay: &relay,
        baseline: &baseline,
        stripe: &stripe_alone,
        lag: lags(&setup.pool).await?,
        emails: email_latencies(&setup.pool).await?,
        workers: worker_rates(&setup.pool).await?,
        queued,
        rss: &rss,
        costs: &costs,
    };
    std::fs::create_dir_all(&args.out)?;
    let markdown = report.markdown();
    std::fs::write(args.out.join("report.md"), &markdown)?;
    chart(&journeys, &args.out.join("latency.svg"))?;
    std::fs::write(
        args.out.join("statements.md"),
        costs.statements_markdown(journeys.len()),
    )?;
    println!("{markdown}");
    println!("(written to {})", args.out.display());
    Ok(())
}

/// The partner simulator as a process of its own (so that its CPU is its own), on a free
/// loopback port; its base URL.
async fn start_partner(bin_dir: &Path) -> anyhow::Result<(Processes, String)> {
    let addr = format!("127.0.0.1:{}", free_port()?);
    let env = [("RUST_LOG".to_owned(), "error".to_owned())];
    let sim = Processes::start_with(bin_dir, &["partner-sim"], &env, None, |_| {
        vec![("SIM_ADDR".to_owned(), addr.clone())]
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(&addr).await.is_err() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the partner simulator did not listen on {addr} within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((sim, format!("http://{addr}")))
}

fn pid(processes: &Processes) -> Option<u32> {
    processes.pids().first().map(|(_, pid)| *pid)
}

/// A free loopback metrics port for each process of the pipeline.
fn metrics_endpoints() -> anyhow::Result<Vec<(String, String)>> {
    processes::PIPELINE
        .iter()
        .map(|p| Ok(((*p).to_owned(), format!("127.0.0.1:{}", free_port()?))))
        .collect()
}

/// `APP__METRICS__ADDR` of `process`.
fn metrics_addr(endpoints: &[(String, String)], process: &str) -> Vec<(String, String)> {
    endpoints
        .iter()
        .filter(|(p, _)| p == process)
        .map(|(_, addr)| ("APP__METRICS__ADDR".to_owned(), addr.clone()))
        .collect()
}

/// Our processes, then the services, then the bench itself.
fn watched(processes: &Processes, services: Vec<Watched>) -> Vec<Watched> {
    let ours = processes
        .pids()
        .into_iter()
        .map(|(name, pid)| Watched::new(&name, Group::Ours, Some(pid), Scope::Tree));
    let bench = Watched::new(
        "bench (load generator, observer)",
        Group::Bench,
        Some(std::process::id()),
        Scope::Own,
    );
    ours.chain(services).chain(std::iter::once(bench)).collect()
}

/// Rounds of the relay-versus-baseline phase.
const DRAIN_ROUNDS: u32 = 3;

/// The relay draining a backlog, and the plain loop sending the same messages, on fresh queues
/// (and a fresh database for each drain): [`DRAIN_ROUNDS`] rounds taking turns, each side's
/// messages and times summed, so that a few noisy seconds of a shared machine do not decide
/// the ratio.
async fn relay_versus_baseline(events: usize) -> anyhow::Result<(Phase, Phase)> {
    let boxed = |e| anyhow::anyhow!("{e}");
    let sqs = testkit::sqs_client(&testkit::test_settings(&[]).sqs.endpoint_url).await;
    let events = make_events(events)?;
    let (mut relay, mut baseline) = (Vec::new(), Vec::new());
    for _ in 0..DRAIN_ROUNDS {
        let plain = testkit::fresh_queues(&sqs).await.map_err(boxed)?;
        baseline.push(plain_loop(&sqs, &plain.prefix, &events, 16).await?);
        plain.delete(&sqs).await.map_err(boxed)?;
        let db_url = testkit::fresh_database().await.map_err(boxed)?;
        let pool = testkit::pool(&db_url, 10).await.map_err(boxed)?;
        let queues = testkit::fresh_queues(&sqs).await.map_err(boxed)?;
        relay.push(relay_throughput(&pool, &sqs, &queues.prefix, &events, 4).await?);
        queues.delete(&sqs).await.map_err(boxed)?;
        pool.close().await;
    }
    Ok((summed(relay), summed(baseline)))
}

/// Rounds of one phase as one: their counts and times added.
fn summed(rounds: Vec<Phase>) -> Phase {
    let name = rounds.first().map(|r| r.name.clone()).unwrap_or_default();
    let count = rounds.iter().map(|r| r.count).sum();
    let elapsed = rounds.iter().map(|r| r.elapsed).sum();
    Phase::throughput(name, count, elapsed)
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The `APP__…` settings every process of the run gets (on top of the inherited environment).
pub(crate) fn child_env(
    settings: &settings::Settings,
    stripe: &str,
    partner: &str,
) -> Vec<(String, String)> {
    use secrecy::ExposeSecret;
    [
        (
            "APP__DATABASE__URL",
            settings.database.url.expose_secret().to_owned(),
        ),
        ("APP__REDIS__KEY_PREFIX", settings.redis.key_prefix.clone()),
        ("APP__HTTP__ADDR", settings.http.addr.clone()),
        ("APP__HTTP__STATIC_DIR", "none".to_owned()),
        ("APP__SQS__QUEUE_PREFIX", settings.sqs.queue_prefix.clone()),
        ("APP__WORKER__WAIT_TIME_S", "1".to_owned()),
        ("APP__SMTP__PORT", settings.smtp.port.to_string()),
        (
            "APP__SMTP__TEMPLATES_DIR",
            settings.smtp.templates_dir.clone(),
        ),
        ("APP__STRIPE__API_BASE", stripe.to_owned()),
        ("APP__SHIPPING__PARTNER_URL", partner.to_owned()),
        ("APP__METRICS__ADDR", String::new()),
        (
            "APP__SHOP__LINK_SECRET",
            settings.shop.link_secret.expose_secret().to_owned(),
        ),
        ("RUST_LOG", "error".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    // One loopback client placing every order, each in a new session: never rate-limited.
    .chain(testkit::generous_limits())
    .collect()
}

pub(crate) async fn wait_healthy(address: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(r) = reqwest::get(format!("{address}/api/products")).await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!("the web-server at {address} did not become ready within 60 s")
}

/// Places `orders` checkouts at `rate` per second; each order's send time and request latency.
async fn place(
    address: &str,
    rate: u32,
    orders: u32,
) -> anyhow::Result<HashMap<Uuid, (SystemTime, Duration)>> {
    let client = reqwest::Client::new();
    let mut ticker = tokio::time::interval(Duration::from_secs(1) / rate.max(1));
    let mut requests = Vec::new();
    for i in 0..orders {
        ticker.tick().await;
        let (client, url) = (client.clone(), format!("{address}/api/orders"));
        requests.push(tokio::spawn(async move {
            let body = serde_json::json!({
                "customer": {"name": "Bench Shopper", "email": format!("report{i}@example.com"),
                             "address": {"line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"}},
                "items": [{"product_id": 8, "quantity": 1}],
                "payment_method": "pm_card_visa",
            });
            let sent = SystemTime::now();
            let started = Instant::now();
            let response: serde_json::Value = client
                .post(url)
                .json(&body)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let latency = started.elapsed();
            let order_id: Uuid = response["order_id"].as_str().unwrap_or_default().parse()?;
            anyhow::Ok((order_id, (sent, latency)))
        }));
    }
    let mut placed = HashMap::new();
    for request in requests {
        let (order_id, timing) = request.await??;
        placed.insert(order_id, timing);
    }
    Ok(placed)
}

/// Waits until every order has its `shipment.created` (at most 5 minutes).
async fn wait_shipped(
    pool: &PgPool,
    ids: &[Uuid],
    processes: &mut Processes,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let shipped: i64 = sqlx::query_scalar(SHIPPED_SQL)
            .bind("shipment.created")
            .bind(ids)
            .fetch_one(pool)
            .await?;
        if shipped as usize == ids.len() {
            return Ok(());
        }
        if let Some((name, status)) = processes.exited() {
            anyhow::bail!(
                "{name} exited ({status}) with {shipped} of {} orders shipped",
                ids.len()
            );
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {shipped} of {} orders shipped within 5 minutes",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the pipeline has done all its work (at most 5 minutes): every outbox row
/// published and handled by every consumer it is routed to (an inbox row each), so the cost
/// window holds every order's every step, also the e-mails of a worker that fell behind. Asks
/// the database once a second (the bench's own statements are PostgreSQL's CPU too).
async fn wait_drained(pool: &PgPool, processes: &mut Processes) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let left = left_to_handle(pool).await?;
        if left == 0 {
            return Ok(());
        }
        if let Some((name, status)) = processes.exited() {
            anyhow::bail!("{name} exited ({status}) with {left} messages left to handle");
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{left} outbox rows and messages were still left to handle after 5 minutes"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Outbox rows not yet published, plus messages published but not yet handled (each row is
/// one message per consumer of its type, each handled message one inbox row).
async fn left_to_handle(pool: &PgPool) -> anyhow::Result<i64> {
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(ROUTED_SQL).fetch_all(pool).await?;
    let handled: i64 = sqlx::query_scalar(HANDLED_SQL).fetch_one(pool).await?;
    let (mut unpublished, mut routed) = (0, 0);
    for (event_type, all, published) in rows {
        let consumers = event_type
            .parse::<EventType>()
            .map_or(0, |t| domain::route(t).len() as i64);
        unpublished += all - published;
        routed += published * consumers;
    }
    Ok(unpublished + (routed - handled).max(0))
}

/// Each order's steps, read from its timeline.
async fn journeys(
    pool: &PgPool,
    placed: HashMap<Uuid, (SystemTime, Duration)>,
) -> anyhow::Result<Vec<Journey>> {
    let ids: Vec<Uuid> = placed.keys().copied().collect();
    let rows: Vec<(Uuid, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT order_id, event_type, occurred_at FROM order_timeline WHERE order_id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    let mut steps: HashMap<Uuid, HashMap<String, DateTime<Utc>>> = HashMap::new();
    for (order_id, event_type, at) in rows {
        steps.entry(order_id).or_default().insert(event_type, at);
    }
    Ok(placed
        .into_iter()
        .map(|(id, (sent, checkout))| Journey {
            sent,
            checkout,
            steps: steps.remove(&id).unwrap_or_default(),
        })
        .collect())
}

/// Commit-to-SQS lag of every outbox row of the run (`published_at − created_at`).
async fn lags(pool: &PgPool) -> anyhow::Result<Vec<Duration>> {
    let lags: Vec<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM published_at - created_at)::float8 FROM outbox WHERE published_at IS NOT NULL",
    )
    .fetch_all(pool)
    .await?;
    let mut lags: Vec<Duration> = lags
        .into_iter()
        .map(|s| Duration::from_secs_f64(s.max(0.0)))
        .collect();
    lags.sort();
    Ok(lags)
}

/// Event committed → its e-mail accepted by the SMTP server, for every e-mail of the run: from the
/// outbox row's `created_at` to the e-mail intent's `answered_at` (written right after the
/// server's answer, in the statement that records it), sorted.
async fn email_latencies(pool: &PgPool) -> anyhow::Result<Vec<Duration>> {
    let seconds: Vec<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM i.answered_at - o.created_at)::float8
         FROM email_intents i JOIN outbox o ON o.event_id = i.event_id
         WHERE i.answered_at IS NOT NULL",
    )
    .fetch_all(pool)
    .await?;
    let mut latencies: Vec<Duration> = seconds
        .into_iter()
        .map(|s| Duration::from_secs_f64(s.max(0.0)))
        .collect();
    latencies.sort();
    Ok(latencies)
}

/// Messages each consumer processed, and per second while busy (first to last inbox row).
async fn worker_rates(pool: &PgPool) -> anyhow::Result<Vec<(String, i64, f64)>> {
    let rows: Vec<(String, i64, f64)> = sqlx::query_as(
        "SELECT consumer, count(*), extract(epoch FROM max(processed_at) - min(processed_at))::float8 \
         FROM inbox GROUP BY consumer ORDER BY consumer",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(consumer, count, seconds)| (consumer, count, count as f64 / seconds.max(0.001)))
        .collect())
}

/// Time from `from` to `to` in each journey that has both.
fn stage(journeys: &[Journey], from: &str, to: &str) -> Vec<Duration> {
    let mut times: Vec<Duration> = journeys
        .iter()
        .filter_map(|j| {
            let (a, b) = (j.steps.get(from)?, j.steps.get(to)?);
            (*b - *a).to_std().ok()
        })
        .collect();
    times.sort();
    times
}

/// Checkout request sent → `shipment.created`, per journey, sorted.
fn end_to_end(journeys: &[Journey]) -> Vec<Duration> {
    let mut times: Vec<Duration> = journeys.iter().filter_map(shipped_after).collect();
    times.sort();
    times
}

fn shipped_after(journey: &Journey) -> Option<Duration> {
    let shipped: SystemTime = (*journey.steps.get("shipment.created")?).into();
    shipped.duration_since(journey.sent).ok()
}

struct Report<'a> {
    args: &'a Args,
    load: Duration,
    total: Duration,
    journeys: &'a [Journey],
    relay: &'a Phase,
    baseline: &'a Phase,
    stripe: &'a Phase,
    lag: Vec<Duration>,
    /// Event committed → e-mail accepted, per e-mail, sorted ([`email_latencies`]).
    emails: Vec<Duration>,
    /// Per worker: messages handled, and messages per second while busy.
    workers: Vec<(String, i64, f64)>,
    /// Messages waiting in each worker's queue when the last order shipped.
    queued: Vec<(String, u64)>,
    rss: &'a [(String, u64)],
    costs: &'a Costs,
}

impl Report<'_> {
    fn markdown(&self) -> String {
        let mut out = String::new();
        let n = self.journeys.len();
        let _ = writeln!(
            out,
            "# ChargeFlow pipeline benchmark\n\n{} orders offered at {}/s; {} cores; {}\n",
            self.args.orders,
            self.args.rate,
            std::thread::available_parallelism().map_or(0, usize::from),
            chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        );
        let mut checkout: Vec<Duration> = self.journeys.iter().map(|j| j.checkout).collect();
        checkout.sort();
        let e2e = end_to_end(self.journeys);
        let _ = writeln!(
            out,
            "| measure | value | p50 ms | p99 ms |\n| --- | ---: | ---: | ---: |"
        );
        let _ = writeln!(
            out,
            "| checkout (`POST /api/orders`) | {:.1} orders/s | {:.1} | {:.1} |",
            n as f64 / self.load.as_secs_f64(),
            percentile_ms(&checkout, 50.0),
            percentile_ms(&checkout, 99.0)
        );
        let _ = writeln!(
            out,
            "| checkout → shipped | {:.1} orders/s through | {:.0} | {:.0} |",
            n as f64 / self.total.as_secs_f64(),
            percentile_ms(&e2e, 50.0),
            percentile_ms(&e2e, 99.0)
        );
        let _ = writeln!(
            out,
            "| commit-to-SQS lag (relay, under this load) | {} rows | {:.1} | {:.1} |",
            self.lag.len(),
            percentile_ms(&self.lag, 50.0),
            percentile_ms(&self.lag, 99.0)
        );
        let within = self
            .emails
            .iter()
            .filter(|d| **d <= Duration::from_secs(5))
            .count();
        let _ = writeln!(
            out,
            "| event committed → e-mail accepted (its answer recorded) | {} e-mails, {within} within 5 s | {:.0} | {:.0} |",
            self.emails.len(),
            percentile_ms(&self.emails, 50.0),
            percentile_ms(&self.emails, 99.0)
        );
        let ratio = self.relay.per_second() / self.baseline.per_second();
        let _ = writeln!(
            out,
            "| relay backlog drain vs plain `SendMessageBatch` loop ({DRAIN_ROUNDS} rounds each, taking turns) | {:.0} vs {:.0} msg/s = **{ratio:.2}×** | | |",
            self.relay.per_second(),
            self.baseline.per_second(),
        );
        for (consumer, count, rate) in &self.workers {
            let _ = writeln!(
                out,
                "| worker `{consumer}` | {count} messages, {rate:.1}/s while busy; {} still queued when the last order shipped | | |",
                self.queued_for(consumer),
            );
        }
        let _ = writeln!(
            out,
            "| fake Stripe alone ({} payments, create + confirm, {}, before the load) | {:.1} payments/s{} | {:.1} | {:.1} |",
            self.stripe.count,
            self.stripe.name,
            self.stripe.per_second(),
            self.billing_share(),
            self.stripe.percentile_ms(50.0),
            self.stripe.percentile_ms(99.0),
        );
        let _ = writeln!(out, "\n| stage | p50 ms | p99 ms |\n| --- | ---: | ---: |");
        let stages = self.stages();
        for (name, times) in &stages {
            let _ = writeln!(
                out,
                "| {name} | {:.0} | {:.0} |",
                percentile_ms(times, 50.0),
                percentile_ms(times, 99.0)
            );
        }
        let _ = writeln!(out, "\n| process | peak RSS |\n| --- | ---: |");
        for (name, kib) in self.rss {
            let _ = writeln!(out, "| {name} | {:.1} MiB |", *kib as f64 / 1024.0);
        }
        out.push_str(&self.costs.markdown(n));
        let _ = writeln!(out, "\n{}", self.bottleneck(&stages));
        let _ = writeln!(out, "\n![checkout → shipped per order](latency.svg)");
        out
    }

    /// `; billing's rate above is R× of it` — billing's rate in the pipeline over the fake Stripe's
    /// own (near 1× would make the Stripe stand-in billing's limit).
    fn billing_share(&self) -> String {
        let Some(billing) = self.worker_rate("billing") else {
            return String::new();
        };
        format!(
            "; billing's rate above is **{:.2}×** of it",
            billing / self.stripe.per_second().max(0.001)
        )
    }

    /// Each stage between two steps of an order, checkout first.
    fn stages(&self) -> Vec<(String, Vec<Duration>)> {
        let mut checkout: Vec<Duration> = self.journeys.iter().map(|j| j.checkout).collect();
        checkout.sort();
        let mut stages = vec![("checkout request".to_owned(), checkout)];
        for pair in STEPS.windows(2) {
            let ((from, _), (to, name)) = (pair[0], pair[1]);
            stages.push((
                format!("{name} ({from} → {to})"),
                stage(self.journeys, from, to),
            ));
        }
        stages
    }

    /// Messages per second the worker handled while it was busy.
    fn worker_rate(&self, consumer: &str) -> Option<f64> {
        self.workers
            .iter()
            .find(|(c, _, _)| c == consumer)
            .map(|(_, _, rate)| *rate)
    }

    fn queued_for(&self, consumer: &str) -> u64 {
        self.queued
            .iter()
            .find(|(c, _)| c == consumer)
            .map_or(0, |(_, n)| *n)
    }

    /// The worker that fell behind (more than a second of the offered rate still queued when the
    /// last order shipped), if one did; then the stage with the largest median share of the
    /// checkout → shipped journey.
    fn bottleneck(&self, stages: &[(String, Vec<Duration>)]) -> String {
        let total: f64 = stages.iter().map(|(_, t)| percentile_ms(t, 50.0)).sum();
        let Some((name, times)) = stages
            .iter()
            .max_by(|a, b| percentile_ms(&a.1, 50.0).total_cmp(&percentile_ms(&b.1, 50.0)))
        else {
            return String::new();
        };
        let p50 = percentile_ms(times, 50.0);
        let slowest = format!(
            "{name}** — p50 {p50:.0} ms, {:.0} % of the summed stage medians.",
            100.0 * p50 / total.max(0.001)
        );
        let behind = self
            .queued
            .iter()
            .filter(|(_, n)| *n > u64::from(self.args.rate))
            .max_by_key(|(_, n)| *n);
        let Some((consumer, queued)) = behind else {
            return format!("**Bottleneck: {slowest}");
        };
        let rate = self.worker_rate(consumer).unwrap_or(0.0);
        format!(
            "**Bottleneck: the `{consumer}` worker** — it did not keep up: {queued} messages still \
             queued when the last order shipped ({rate:.1}/s while busy).\n\n\
             Slowest stage of checkout → shipped: **{slowest}"
        )
    }
}

/// Messages waiting in each worker's queue now.
async fn still_queued(
    sqs: &aws_sdk_sqs::Client,
    queues: &testkit::Queues,
) -> anyhow::Result<Vec<(String, u64)>> {
    let mut queued = Vec::new();
    for (consumer, url, _) in &queues.urls {
        let depth = sqs_transport::consume::approximate_depth(sqs, url).await?;
        queued.push((consumer.clone(), depth));
    }
    Ok(queued)
}

/// Checkout → shipped of every order, by when it was placed.
fn chart(journeys: &[Journey], path: &Path) -> anyhow::Result<()> {
    use plotters::prelude::*;
    let first = journeys
        .iter()
        .map(|j| j.sent)
        .min()
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let points: Vec<(f64, f64)> = journeys
        .iter()
        .filter_map(|j| {
            let at = j.sent.duration_since(first).ok()?.as_secs_f64();
            Some((at, shipped_after(j)?.as_secs_f64() * 1000.0))
        })
        .collect();
    let x_max = points.iter().map(|p| p.0).fold(1.0, f64::max);
    let y_max = points.iter().map(|p| p.1).fold(1.0, f64::max) * 1.1;
    let root = SVGBackend::new(path, (900, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("checkout → shipped, per order", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the first checkout")
        .y_desc("ms")
        .draw()?;
    chart.draw_series(
        points
            .iter()
            .map(|&(x, y)| Circle::new((x, y), 2, BLUE.mix(0.6).filled())),
    )?;
    root.present()?;
    Ok(())
}
