//! One trace per order across processes: the real binaries (web-server, relay, the four
//! workers) run as separate processes logging JSON to files; a checkout sent with a
//! `traceparent` header ends up `shipped`, and every process has log lines of that order carrying
//! the request's trace id — and none with the shopper's e-mail address, name, street, postal code
//! or payment method. The same stack serves each process's metrics on a port of its own: the
//! dashboard (`ops/grafana`) and the alert rules (`ops/prometheus`) name only series they serve.

use std::time::Duration;

use partner_sim::Faults;
use serde_json::{Value, json};
use testkit::{
    processes::{self, PIPELINE, Processes},
    smtp::SmtpSink,
    stripe::FakeStripe,
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const TEMPLATES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../apps/email-service/templates"
);
const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";

/// The whole pipeline as separate processes, on its own database and queues.
pub(super) struct Stack {
    /// The web-server's base URL.
    pub(super) web: String,
    /// Each process's metrics port.
    metrics: Vec<(&'static str, u16)>,
    pub(super) pool: sqlx::PgPool,
    pub(super) processes: Processes,
    pub(super) logs: std::path::PathBuf,
    _sink: SmtpSink,
    _stripe: FakeStripe,
    pub(super) stop: CancellationToken,
}

async fn stack() -> Stack {
    stack_with(&[]).await
}

/// [`stack`] with `extra` variables in every process's environment.
pub(super) async fn stack_with(extra: &[(&str, String)]) -> Stack {
    let db_url = testkit::fresh_database().await.expect("fresh database");
    let endpoint = testkit::test_settings(&[]).sqs.endpoint_url;
    let sqs = testkit::sqs_client(&endpoint).await;
    let queues = testkit::fresh_queues(&sqs).await.expect("fresh queues");
    let sink = SmtpSink::start().await.expect("SMTP sink");
    let stripe = FakeStripe::start().await.expect("fake Stripe");
    let stop = CancellationToken::new();
    let partner = partner_sim::Application::spawn_on_loopback(Faults::default(), stop.clone())
        .await
        .expect("partner simulator");
    let port = free_port();
    let metrics: Vec<(&'static str, u16)> = PIPELINE.iter().map(|p| (*p, free_port())).collect();
    let env: Vec<(String, String)> = [
        ("APP__DATABASE__URL", db_url.clone()),
        (
            "APP__REDIS__KEY_PREFIX",
            format!("t{}:", Uuid::new_v4().simple()),
        ),
        ("APP__HTTP__ADDR", format!("127.0.0.1:{port}")),
        ("APP__HTTP__STATIC_DIR", "no-front-end-in-tests".into()),
        ("APP__SQS__QUEUE_PREFIX", queues.prefix.clone()),
        ("APP__RELAY__POLL_INTERVAL_MS", "100".into()),
        ("APP__WORKER__WAIT_TIME_S", "1".into()),
        ("APP__SMTP__PORT", sink.port().to_string()),
        ("APP__SMTP__TEMPLATES_DIR", TEMPLATES.into()),
        ("APP__STRIPE__API_BASE", stripe.api_base()),
        ("APP__SHIPPING__PARTNER_URL", partner),
        ("APP__SHOP__LINK_SECRET", testkit::LINK_SECRET.into()),
        ("LOG_FORMAT", "json".into()),
        (
            "RUST_LOG",
            "warn,web_server=info,outbox_relay=debug,worker=info,invoice_service=info,\
             billing_service=info,shipping_service=info,email_service=info,orders=info"
                .into(),
        ),
    ]
    .into_iter()
    .chain(extra.iter().cloned())
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let logs = std::env::temp_dir().join(format!("trace-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&logs).expect("log folder");
    let own_port = |name: &str| {
        let port = metrics
            .iter()
            .find(|(p, _)| *p == name)
            .map(|(_, port)| *port);
        vec![(
            "APP__METRICS__ADDR".to_owned(),
            port.map(|port| format!("127.0.0.1:{port}"))
                .unwrap_or_default(),
        )]
    };
    let processes = Processes::start_with(
        &processes::binaries_dir(),
        &PIPELINE,
        &env,
        Some(&logs),
        own_port,
    )
    .expect("the pipeline's binaries (cargo build --bins)");
    let web = format!("http://127.0.0.1:{port}");
    testkit::eventually("the web-server ready", Duration::from_secs(60), || async {
        reqwest::get(format!("{web}/api/products"))
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await
    .expect("ready");
    Stack {
        web,
        metrics,
        pool: testkit::pool(&db_url, 2).await.expect("pool"),
        processes,
        logs,
        _sink: sink,
        _stripe: stripe,
        stop,
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// The JSON log lines of `process` that carry `trace_id`.
fn lines_with_trace(logs: &std::path::Path, process: &str, trace_id: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(logs.join(format!("{process}.log"))).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|line| {
            line.to_string()
                .contains(&format!("\"trace_id\":\"{trace_id}\""))
        })
        .collect()
}

/// Places an order with the test's `traceparent` and waits until it is shipped and its four
/// e-mails are sent; its id.
async fn place_and_ship(stack: &Stack) -> Uuid {
    let traceparent = format!("00-{TRACE_ID}-b7ad6b7169203331-01");
    let (order_id, answered) = checkout_and_ship(&stack.web, &stack.pool, Some(&traceparent)).await;
    assert!(answered.contains(TRACE_ID), "{answered}");
    order_id
}

/// Places one order at `web` (with `traceparent` when given, else the checkout starts the
/// trace) and waits until it is shipped and its four e-mails are sent; the order's id and the
/// `traceparent` the checkout answered.
pub(crate) async fn checkout_and_ship(
    web: &str,
    pool: &sqlx::PgPool,
    traceparent: Option<&str>,
) -> (Uuid, String) {
    let mut request = reqwest::Client::new().post(format!("{web}/api/orders"));
    if let Some(traceparent) = traceparent {
        request = request.header("traceparent", traceparent);
    }
    let response = request
        .json(&json!({
            "customer": {"name": "Ada Lovelace", "email": "ada@example.com",
                         "address": {"line1": "1 Main St", "city": "London", "postal_code": "N1 9GU", "country": "GB"}},
            "items": [{"product_id": 1, "quantity": 1}],
            "payment_method": "pm_card_visa",
        }))
        .send()
        .await
        .expect("checkout");
    assert_eq!(response.status(), 201);
    let answered = response.headers()["traceparent"]
        .to_str()
        .expect("header")
        .to_owned();
    let body: Value = response.json().await.expect("json");
    let order_id: Uuid = body["order_id"]
        .as_str()
        .expect("order id")
        .parse()
        .expect("uuid");
    testkit::eventually(
        "the order shipped and 4 e-mails sent",
        Duration::from_secs(60),
        || async {
            let mails: i64 =
                sqlx::query_scalar("SELECT count(*) FROM sent_emails WHERE order_id = $1")
                    .bind(order_id)
                    .fetch_one(pool)
                    .await
                    .unwrap_or(0);
            testkit::order_status(pool, order_id).await == "shipped" && mails >= 4
        },
    )
    .await
    .expect("shipped");
    (order_id, answered)
}

#[tokio::test]
async fn an_orders_log_lines_in_every_process_share_the_requests_trace_id() {
    let mut stack = stack().await;
    let order_id = place_and_ship(&stack).await;
    let carried: Vec<String> =
        sqlx::query_scalar("SELECT envelope->>'traceparent' FROM outbox WHERE aggregate_id = $1")
            .bind(order_id)
            .fetch_all(&stack.pool)
            .await
            .expect("outbox rows");
    assert!(carried.len() >= 4, "{carried:?}");
    assert!(carried.iter().all(|t| t.contains(TRACE_ID)), "{carried:?}");
    stack.processes.stop();
    stack.stop.cancel();

    for process in PIPELINE {
        let lines = lines_with_trace(&stack.logs, process, TRACE_ID);
        assert!(
            !lines.is_empty(),
            "no log line of {process} carries the trace id; its log:\n{}",
            std::fs::read_to_string(stack.logs.join(format!("{process}.log"))).unwrap_or_default()
        );
        assert!(
            lines
                .iter()
                .any(|l| l.to_string().contains(&order_id.to_string())),
            "{process}: no line with the trace id names the order"
        );
    }
    // A whole order's logs, every process at `info`, hold none of the shopper's personal data.
    for process in PIPELINE {
        let log =
            std::fs::read_to_string(stack.logs.join(format!("{process}.log"))).unwrap_or_default();
        for personal in [
            "ada@example.com",
            "Ada Lovelace",
            "1 Main St",
            "N1 9GU",
            "pm_card_visa",
        ] {
            assert!(
                !log.contains(personal),
                "{process} logged {personal:?}:\n{}",
                log.lines()
                    .filter(|l| l.contains(personal))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
    std::fs::remove_dir_all(&stack.logs).ok();
}

/// The `chargeflow_…` series names in `text` (a dashboard's or a rule file's expressions).
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("chargeflow_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        names.insert(name);
    }
    names
}

/// The series names a process's `/metrics` answer holds (samples, not comments).
async fn served(port: u16) -> std::collections::BTreeSet<String> {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("body");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn the_dashboard_and_the_alert_rules_name_only_series_the_processes_serve() {
    let ops = concat!(env!("CARGO_MANIFEST_DIR"), "/../../ops");
    let dashboard =
        std::fs::read_to_string(format!("{ops}/grafana/chargeflow.json")).expect("dashboard file");
    let parsed: Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let exprs: Vec<String> = parsed["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_owned))
        .collect();
    assert!(exprs.len() >= 15, "{} queries", exprs.len());
    let rules = std::fs::read_to_string(format!("{ops}/prometheus/alerts.yml")).expect("rules");
    let rules: serde_norway::Value = serde_norway::from_str(&rules).expect("the rules are YAML");
    let rule_exprs: Vec<String> = rules["groups"][0]["rules"]
        .as_sequence()
        .expect("rules")
        .iter()
        .filter_map(|r| r["expr"].as_str().map(str::to_owned))
        .collect();
    assert!(rule_exprs.len() >= 5, "{rule_exprs:?}");

    let mut stack = stack().await;
    place_and_ship(&stack).await;
    let mut all = std::collections::BTreeSet::new();
    for (process, port) in &stack.metrics {
        let names = served(*port).await;
        assert!(
            names.iter().any(|n| n.starts_with("chargeflow_")),
            "{process} serves no chargeflow_ series"
        );
        all.extend(names);
    }
    stack.processes.stop();
    stack.stop.cancel();
    std::fs::remove_dir_all(&stack.logs).ok();

    for (source, exprs) in [("dashboard", &exprs), ("alert rules", &rule_exprs)] {
        let named = metric_names(&exprs.join("\n"));
        let missing: Vec<&String> = named.iter().filter(|n| !all.contains(*n)).collect();
        assert!(
            missing.is_empty(),
            "the {source} name series no process serves: {missing:?}"
        );
    }
}
