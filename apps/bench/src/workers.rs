//! The workers: invoices/s and e-mails/s of one worker (in this process), next to a plain
//! receive-and-delete loop draining the same number of messages from the same LocalStack in the
//! same run; and the time from checkout to the invoice e-mail with the whole pipeline running.

use std::{
    collections::HashMap,
    path::Path,
    time::{Duration, Instant, SystemTime},
};

use email_service::{EmailHandler, mailer::Mailer, templates::Templates};
use futures::future::join_all;
use invoice_service::InvoiceHandler;
use outbox_relay::Relay;
use settings::Settings;
use sqlx::PgPool;
use sqs_transport::consume;
use testkit::{Queues, smtp::SmtpSink};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use web_server::Application;
use worker::{Handler, Poller};

use crate::stats::{self, Phase};

const TEMPLATES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../email-service/templates");

#[derive(clap::Args)]
pub struct Args {
    /// Orders in each throughput phase.
    #[arg(long, default_value_t = 500)]
    orders: usize,
    /// Checkouts per second in the latency phase.
    #[arg(long, default_value_t = 20)]
    rate: u32,
    /// Length of the latency phase, in seconds.
    #[arg(long, default_value_t = 15)]
    seconds: u32,
}

pub(crate) struct Setup {
    pub(crate) pool: PgPool,
    pub(crate) sqs: aws_sdk_sqs::Client,
    pub(crate) queues: Queues,
    pub(crate) settings: Settings,
    pub(crate) sink: SmtpSink,
}

impl Setup {
    /// The process id of the run's SMTP sink.
    pub(crate) fn smtp_pid(&self) -> Option<u32> {
        self.sink.pid()
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let setup = setup_with(&[]).await?;
    let bodies = orders(&setup.pool, args.orders).await?;
    let invoice_url = setup.queues.url("invoice").to_owned();
    let email_url = setup.queues.url("email").to_owned();

    let baseline = drain_phase(&setup, &invoice_url, &bodies).await?;
    let invoices = worker_phase(
        &setup,
        &invoice_url,
        &bodies,
        invoice_handler(&setup.settings)?,
        "invoices",
    )
    .await?;
    let emails = worker_phase(
        &setup,
        &email_url,
        &bodies,
        email_handler(&setup.settings)?,
        "sent_emails",
    )
    .await?;
    let latency = pipeline_phase(&setup, &args).await?;

    println!(
        "\n## Workers ({} orders per phase, one worker with {} messages in flight)\n",
        args.orders, setup.settings.worker.in_flight
    );
    println!("{}", stats::header());
    for phase in [&baseline, &invoices, &emails, &latency] {
        println!("{}", phase.row());
    }
    println!(
        "\ninvoices/s: {:.1} ({:.2} × the plain drain loop); e-mails/s: {:.1} ({:.2} ×); checkout → invoice e-mail at {}/s: p50 {:.0} ms, p99 {:.0} ms",
        invoices.per_second(),
        invoices.per_second() / baseline.per_second(),
        emails.per_second(),
        emails.per_second() / baseline.per_second(),
        args.rate,
        latency.percentile_ms(50.0),
        latency.percentile_ms(99.0),
    );
    Ok(())
}

/// A fresh database and queues, a private SMTP sink, and settings pointing at them; `extra`
/// settings on top.
pub(crate) async fn setup_with(extra: &[(&str, &str)]) -> anyhow::Result<Setup> {
    let boxed = |e| anyhow::anyhow!("{e}");
    let db_url = testkit::fresh_database().await.map_err(boxed)?;
    let pool = testkit::pool(&db_url, 10).await.map_err(boxed)?;
    let endpoint = testkit::test_settings(&[]).sqs.endpoint_url;
    let sqs = testkit::sqs_client(&endpoint).await;
    let queues = testkit::fresh_queues(&sqs).await.map_err(boxed)?;
    let sink = SmtpSink::start().await.map_err(boxed)?;
    let port = sink.port().to_string();
    let prefix = format!("b{}:", Uuid::new_v4().simple());
    let base: [(&str, &str); 8] = [
        ("APP__DATABASE__URL", &db_url),
        ("APP__REDIS__KEY_PREFIX", &prefix),
        ("APP__HTTP__ADDR", "127.0.0.1:0"),
        ("APP__HTTP__STATIC_DIR", "none"),
        ("APP__SQS__QUEUE_PREFIX", &queues.prefix),
        ("APP__WORKER__WAIT_TIME_S", "1"),
        ("APP__SMTP__PORT", &port),
        ("APP__SMTP__TEMPLATES_DIR", TEMPLATES),
    ];
    let pairs: Vec<(&str, &str)> = base.into_iter().chain(extra.iter().copied()).collect();
    let settings = testkit::test_settings(&pairs);
    Ok(Setup {
        pool,
        sqs,
        queues,
        settings,
        sink,
    })
}

/// `count` orders in the database, as their `order.placed` message bodies.
async fn orders(pool: &PgPool, count: usize) -> anyhow::Result<Vec<String>> {
    let mut bodies = Vec::with_capacity(count);
    for _ in 0..count {
        let event = testkit::orders::insert_order(pool)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        bodies.push(serde_json::to_string(&event)?);
    }
    Ok(bodies)
}

async fn send(setup: &Setup, url: &str, bodies: &[String]) -> anyhow::Result<()> {
    testkit::orders::send_bodies(&setup.sqs, url, bodies)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// The baseline: four loops that only receive and delete, until the messages are gone.
async fn drain_phase(setup: &Setup, url: &str, bodies: &[String]) -> anyhow::Result<Phase> {
    send(setup, url, bodies).await?;
    let started = Instant::now();
    let drained = std::sync::atomic::AtomicUsize::new(0);
    let loops = (0..4).map(|_| async {
        while drained.load(std::sync::atomic::Ordering::Relaxed) < bodies.len() {
            let messages = consume::receive(&setup.sqs, url, 10, 1, 30).await?;
            if messages.is_empty() {
                continue;
            }
            let handles: Vec<String> = messages.into_iter().map(|m| m.receipt_handle).collect();
            consume::delete_batch(&setup.sqs, url, &handles).await?;
            drained.fetch_add(handles.len(), std::sync::atomic::Ordering::Relaxed);
        }
        anyhow::Ok(())
    });
    for result in join_all(loops).await {
        result?;
    }
    Ok(Phase::throughput(
        "plain receive + delete loop",
        bodies.len(),
        started.elapsed(),
    ))
}

/// One worker in this process over `bodies`, until `table` holds a row for each.
async fn worker_phase<H: Handler>(
    setup: &Setup,
    url: &str,
    bodies: &[String],
    handler: H,
    table: &str,
) -> anyhow::Result<Phase> {
    send(setup, url, bodies).await?;
    let name = format!("{} worker", handler.consumer());
    let poller = Poller::connect(&setup.settings, handler).await?;
    let stop = CancellationToken::new();
    let started = Instant::now();
    let running = tokio::spawn(poller.run(stop.clone()));
    let sql = format!("SELECT count(*) FROM {table}");
    loop {
        let done: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone()))
            .fetch_one(&setup.pool)
            .await?;
        if done as usize >= bodies.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = started.elapsed();
    stop.cancel();
    running.await?;
    Ok(Phase::throughput(&name, bodies.len(), elapsed))
}

pub(crate) fn invoice_handler(settings: &Settings) -> anyhow::Result<InvoiceHandler> {
    Ok(InvoiceHandler::new(&settings.invoice)?)
}

pub(crate) fn email_handler(settings: &Settings) -> anyhow::Result<EmailHandler> {
    let templates = Templates::load(Path::new(TEMPLATES))?;
    let mailer = Mailer::new(&settings.smtp)?;
    let handler_timeout = Duration::from_secs(settings.worker.handler_timeout_s);
    Ok(EmailHandler::new(
        templates,
        mailer,
        settings.shop.clone(),
        handler_timeout,
    )?)
}

/// Web-server, relay and both workers in this process; checkouts at a steady rate; the time
/// from each checkout request to the SMTP server's acceptance of its invoice e-mail.
async fn pipeline_phase(setup: &Setup, args: &Args) -> anyhow::Result<Phase> {
    let stop = CancellationToken::new();
    let app = Application::build(setup.settings.clone()).await?;
    let address = format!("http://{}", app.local_addr()?);
    tokio::spawn(app.run(std::future::pending()));
    tokio::spawn(Relay::connect(&setup.settings).await?.run(stop.clone()));
    tokio::spawn(
        Poller::connect(&setup.settings, invoice_handler(&setup.settings)?)
            .await?
            .run(stop.clone()),
    );
    tokio::spawn(
        Poller::connect(&setup.settings, email_handler(&setup.settings)?)
            .await?
            .run(stop.clone()),
    );

    sqlx::query("UPDATE products SET stock = 1000000 WHERE id = 8")
        .execute(&setup.pool)
        .await?;
    // The throughput phases emitted invoice.generated rows nobody needs: without this the relay
    // would publish them now and the e-mail worker would start behind a backlog.
    sqlx::query("UPDATE outbox SET published_at = now() WHERE published_at IS NULL")
        .execute(&setup.pool)
        .await?;
    let started = Instant::now();
    let placed = place_at_rate(&address, args.rate, args.seconds).await?;
    let latencies = wait_for_invoice_emails(&setup.pool, placed).await?;
    stop.cancel();
    Ok(Phase::new(
        format!("checkout → invoice e-mail at {}/s", args.rate),
        started.elapsed(),
        latencies,
    ))
}

/// Checkouts of demo product 8 at `rate` per second for `seconds`; each order's request time.
pub(crate) async fn place_at_rate(
    address: &str,
    rate: u32,
    seconds: u32,
) -> anyhow::Result<HashMap<Uuid, SystemTime>> {
    let client = reqwest::Client::new();
    let mut ticker = tokio::time::interval(Duration::from_secs(1) / rate);
    let mut requests = Vec::new();
    for i in 0..rate * seconds {
        ticker.tick().await;
        let (client, address) = (client.clone(), address.to_owned());
        requests.push(tokio::spawn(async move {
            let sent = SystemTime::now();
            let body = serde_json::json!({
                "customer": {"name": "Bench Shopper", "email": format!("bench{i}@example.com"),
                             "address": {"line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"}},
                "items": [{"product_id": 8, "quantity": 1}],
                "payment_method": "pm_card_visa",
            });
            let response: serde_json::Value = client.post(format!("{address}/api/orders")).json(&body).send().await?.error_for_status()?.json().await?;
            let order_id: Uuid = response["order_id"].as_str().unwrap_or_default().parse()?;
            anyhow::Ok((order_id, sent))
        }));
    }
    let mut placed = HashMap::new();
    for request in requests {
        let (order_id, sent) = request.await??;
        placed.insert(order_id, sent);
    }
    Ok(placed)
}

async fn wait_for_invoice_emails(
    pool: &PgPool,
    placed: HashMap<Uuid, SystemTime>,
) -> anyhow::Result<Vec<Duration>> {
    let ids: Vec<Uuid> = placed.keys().copied().collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    let sent: Vec<(Uuid, chrono::DateTime<chrono::Utc>)> = loop {
        let sent: Vec<(Uuid, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
            "SELECT order_id, created_at FROM sent_emails WHERE kind = 'invoice' AND order_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(pool)
        .await?;
        if sent.len() == ids.len() {
            break sent;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} orders got no invoice e-mail within 120 s",
            ids.len() - sent.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    Ok(sent
        .into_iter()
        .map(|(order_id, at)| {
            let at = SystemTime::from(at);
            at.duration_since(placed[&order_id]).unwrap_or_default()
        })
        .collect())
}
