//! One trace per order across processes: the real binaries (web-server, relay, the four
//! workers) run as separate processes logging JSON to files; a checkout sent with a
//! `traceparent` header ends up `shipped`, and every process has log lines of that order carrying
//! the request's trace id — and none with the shopper's e-mail address, name, street, postal code
//! or payment method.

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

struct Stack {
    web: String,
    pool: sqlx::PgPool,
    processes: Processes,
    logs: std::path::PathBuf,
    _sink: SmtpSink,
    _stripe: FakeStripe,
    stop: CancellationToken,
}

async fn stack() -> Stack {
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
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
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
        ("APP__METRICS__ADDR", String::new()),
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
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let logs = std::env::temp_dir().join(format!("trace-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&logs).expect("log folder");
    let processes = Processes::start(&processes::binaries_dir(), &PIPELINE, &env, Some(&logs))
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
        pool: testkit::pool(&db_url, 2).await.expect("pool"),
        processes,
        logs,
        _sink: sink,
        _stripe: stripe,
        stop,
    }
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

#[tokio::test]
async fn an_orders_log_lines_in_every_process_share_the_requests_trace_id() {
    let mut stack = stack().await;
    let response = reqwest::Client::new()
        .post(format!("{}/api/orders", stack.web))
        .header("traceparent", format!("00-{TRACE_ID}-b7ad6b7169203331-01"))
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
    assert!(answered.contains(TRACE_ID), "{answered}");
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
                    .fetch_one(&stack.pool)
                    .await
                    .unwrap_or(0);
            testkit::order_status(&stack.pool, order_id).await == "shipped" && mails >= 4
        },
    )
    .await
    .expect("shipped");
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
