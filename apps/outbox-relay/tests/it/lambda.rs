//! The relay binary under a stand-in Lambda Runtime API: a scheduled invocation relays for its
//! bounded time, publishes what was committed before and during it, sweeps once for expired
//! orders, answers with the counts and stops; its database URL comes from a Secrets Manager
//! secret (LocalStack).

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use domain::{Consumer, EventType};
use serde_json::json;
use testkit::lambda_api::{self, FakeRuntimeApi};
use uuid::Uuid;

use crate::helpers::harness;

/// A scheduled event, as EventBridge sends it.
fn scheduled() -> serde_json::Value {
    json!({
        "version": "0", "id": Uuid::new_v4(), "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "000000000000", "region": "us-east-1", "detail": {}
    })
}

/// Stores `value` as a new secret in LocalStack and returns its ARN.
async fn create_secret(endpoint: &str, value: &serde_json::Value) -> String {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .load()
        .await;
    let client = aws_sdk_secretsmanager::Client::new(&config);
    let out = client
        .create_secret()
        .name(format!("chargeflow-test/{}", Uuid::new_v4().simple()))
        .secret_string(value.to_string())
        .send()
        .await
        .expect("create the secret");
    out.arn().expect("arn").to_owned()
}

#[tokio::test]
async fn a_scheduled_invocation_relays_for_its_bounded_time_with_settings_from_the_secret() {
    let h = harness().await;
    let before: Vec<_> = futures::future::join_all(
        (0..5).map(|_| h.enqueue(Uuid::now_v7(), EventType::OrderPlaced)),
    )
    .await;
    let secret = create_secret(&h.endpoint, &json!({ "APP__DATABASE__URL": h.db_url })).await;
    let runtime = FakeRuntimeApi::start(vec![scheduled()])
        .await
        .expect("runtime API");
    let binary = lambda_api::function_binary("outbox-relay", env!("CARGO_BIN_EXE_outbox-relay"));
    let mut function = Command::new(binary)
        .envs(h.relay_env())
        // The environment's URL is wrong on purpose: the secret's value must win.
        .env(
            "APP__DATABASE__URL",
            "postgres://nobody@127.0.0.1:1/nothing",
        )
        .env("APP_SECRETS_ARN", &secret)
        .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", &h.endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("APP__RELAY__LAMBDA_RUN_S", "4")
        .envs(runtime.env())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .expect("function process");

    // Rows committed while the invocation runs go out too (LISTEN/NOTIFY wakes it).
    h.wait_all_published(before.len(), Duration::from_secs(30))
        .await;
    let during = h.enqueue(Uuid::now_v7(), EventType::OrderPlaced).await;
    testkit::eventually(
        "the invocation's answer",
        Duration::from_secs(60),
        || async { !runtime.answers().is_empty() },
    )
    .await
    .expect("answered");
    let (kind, answer) = runtime.answers().remove(0);
    assert_eq!(kind, "response", "{answer}");
    assert_eq!(answer, json!({ "published": 6, "failed": 0, "expired": 0 }));

    // After the answer nothing relays until the next invocation.
    let after = h.enqueue(Uuid::now_v7(), EventType::OrderPlaced).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(h.published().await, 6, "published between invocations");
    function.kill().expect("stop the function");
    function.wait().expect("reaped");

    let received = h.receive(Consumer::Invoice, 6).await;
    let mut ids: Vec<Uuid> = received.iter().map(|r| r.envelope.event_id).collect();
    ids.sort();
    let mut expected: Vec<Uuid> = before.iter().chain([&during]).map(|s| s.event_id).collect();
    expected.sort();
    assert_eq!(ids, expected);
    assert!(!ids.contains(&after.event_id));
}

#[tokio::test]
async fn a_scheduled_invocation_sweeps_once_and_answers_how_many_orders_it_expired() {
    let h = harness().await;
    let hour = Duration::from_secs(3600);
    let shelf = h.stock().await;
    let due = h.insert_order("invoiced", hour).await;
    let paid = h.insert_order("paid", hour).await;
    let runtime = FakeRuntimeApi::start(vec![scheduled()])
        .await
        .expect("runtime API");
    let binary = lambda_api::function_binary("outbox-relay", env!("CARGO_BIN_EXE_outbox-relay"));
    let stdout_path =
        std::env::temp_dir().join(format!("relay-stdout-{}", Uuid::new_v4().simple()));
    let mut function = Command::new(binary)
        .envs(h.relay_env())
        .env("APP__RELAY__LAMBDA_RUN_S", "4")
        .env("APP__ORDERS__EXPIRE_AFTER_S", "60")
        .env("METRICS_NAMESPACE", "ChargeFlow/test")
        .envs(runtime.env())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
        .spawn()
        .expect("function process");

    let answers = runtime
        .wait_answers(1, Duration::from_secs(60))
        .await
        .expect("answered");
    function.kill().expect("stop the function");
    function.wait().expect("reaped");
    let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    std::fs::remove_file(&stdout_path).ok();

    // The run's counters and gauges, as CloudWatch EMF lines written when it ended.
    let emf: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|doc| doc.get("_aws").is_some())
        .collect();
    let value = |name: &str| emf.iter().find_map(|doc| doc[name].as_f64());
    assert_eq!(
        value("chargeflow_orders_expired_total"),
        Some(1.0),
        "{stdout}"
    );
    assert_eq!(value("chargeflow_relay_published_total"), Some(1.0));
    // The paid order placed an hour ago is not settled: stuck.
    assert_eq!(value("chargeflow_orders_stuck"), Some(1.0));
    assert!(
        emf.iter().all(
            |doc| doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "ChargeFlow/test"
                && doc["service"] == "outbox-relay"
        )
    );

    assert_eq!(answers[0].0, "response", "{}", answers[0].1);
    // The sweep's order.cancelled went out in the same invocation.
    assert_eq!(
        answers[0].1,
        json!({ "published": 1, "failed": 0, "expired": 1 })
    );
    assert_eq!(
        h.order_state(due).await,
        ("cancelled".to_owned(), Some("expired".to_owned()))
    );
    assert_eq!(h.order_state(paid).await, ("paid".to_owned(), None));
    assert_eq!(
        h.stock().await,
        shelf - 2,
        "the expired order's units are back"
    );
    let billing = h.receive(Consumer::Billing, 1).await;
    assert_eq!(billing.len(), 1);
    assert_eq!(billing[0].envelope.event_type, EventType::OrderCancelled);
    assert_eq!(billing[0].envelope.order_id, due);
}

#[tokio::test]
async fn a_secret_that_cannot_be_read_stops_the_process_with_a_clear_error() {
    let h = harness().await;
    let output = Command::new(env!("CARGO_BIN_EXE_outbox-relay"))
        .envs(h.relay_env())
        .env(
            "APP_SECRETS_ARN",
            "arn:aws:secretsmanager:us-east-1:000000000000:secret:missing",
        )
        .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", &h.endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .stdin(Stdio::null())
        .output()
        .expect("run the relay");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("could not read the secret") && stderr.contains("missing"),
        "{stderr}"
    );
}
