//! `APP__PROFILE=production` (the default) on the real binaries: each unsafe setting makes the
//! process exit with code 78 and one line on stderr naming the setting (never its value) before
//! it connects to anything — as a long-running process and under the Lambda stand-in; a
//! web-server with safe production settings starts, and a webhook signed with the documented
//! local secret gets `400`. A worker with more messages in flight than pool connections refuses
//! in every profile.

use std::{process::Stdio, time::Duration};

use serde_json::{Value, json};
use testkit::{lambda_api::FakeRuntimeApi, processes};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};
use uuid::Uuid;

/// What a refusing process printed and how it ended.
struct Exit {
    code: Option<i32>,
    stderr: String,
}

/// The settings a production web-server starts with (loopback listeners, secrets of its own);
/// the rest (database server, Redis, SQS, fake Stripe) comes from the test run's environment.
fn production(db_url: &str) -> Vec<(&'static str, String)> {
    let random = || Uuid::new_v4().simple().to_string();
    vec![
        ("APP__PROFILE", "production".into()),
        ("APP__DATABASE__URL", db_url.into()),
        ("APP__STRIPE__SECRET_KEY", format!("sk_test_{}", random())),
        (
            "APP__STRIPE__PUBLISHABLE_KEY",
            format!("pk_test_{}", random()),
        ),
        ("APP__STRIPE__WEBHOOK_SECRET", format!("whsec_{}", random())),
        ("APP__SHIPPING__CALLBACK_SECRET", random()),
        (
            "APP__SHOP__LINK_SECRET",
            format!("{}{}", random(), random()),
        ),
        ("APP__SHOP__PUBLIC_URL", "https://shop.example.test".into()),
        ("APP__HTTP__ADDR", "127.0.0.1:0".into()),
        ("APP__HTTP__STATIC_DIR", "no-front-end-in-tests".into()),
        ("APP__METRICS__ADDR", String::new()),
    ]
}

/// `binary` with the test run's environment, `env` over it and `unset` removed.
fn command(binary: &str, env: &[(&'static str, String)], unset: &[&str]) -> Command {
    let mut command = Command::new(processes::binaries_dir().join(binary));
    command
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for name in unset {
        command.env_remove(name);
    }
    command
}

/// Waits for a process that should refuse to start (it is killed after 30 s if it does not).
async fn refusal(mut command: Command) -> Exit {
    let child = command.spawn().expect("the binary (cargo build --bins)");
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("a refusing process exits at once")
        .expect("output");
    Exit {
        code: output.status.code(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn assert_refused(exit: &Exit, process: &str, setting: &str, value: &str) {
    assert_eq!(exit.code, Some(78), "{process}: {}", exit.stderr);
    let lines: Vec<&str> = exit.stderr.lines().collect();
    let [line] = lines.as_slice() else {
        panic!("{process}: one line on stderr, got {lines:?}");
    };
    assert!(
        line.starts_with(&format!("{process}: refusing to start: {setting} ")),
        "{line}"
    );
    assert!(value.is_empty() || !line.contains(value), "{line}");
}

/// With `change` laid over the safe production settings (and `unset` removed), `binary` (shown
/// as `process`) refuses naming `setting`.
async fn refuses(binary: &str, process: &str, change: (&'static str, &str), unset: &[&str]) {
    let db_url = testkit::fresh_database().await.expect("fresh database");
    let mut env = production(&db_url);
    env.push((change.0, change.1.to_owned()));
    let exit = refusal(command(binary, &env, unset)).await;
    assert_refused(&exit, process, change.0, change.1);
}

#[tokio::test]
async fn the_web_server_refuses_each_unsafe_production_setting() {
    let cases: [(&'static str, &str); 7] = [
        ("APP__STRIPE__WEBHOOK_SECRET", "whsec_local"),
        // The order page's 3-D Secure step reads the payment from Stripe.
        ("APP__STRIPE__SECRET_KEY", "sk_test_local"),
        // Without it the checkout page could not collect a card.
        ("APP__STRIPE__PUBLISHABLE_KEY", ""),
        ("APP__SHIPPING__CALLBACK_SECRET", "partner_whsec_local"),
        ("APP__SHOP__LINK_SECRET", ""),
        ("APP__SHOP__PUBLIC_URL", "http://shop.example.test"),
        // Listening on every interface while SQS is the test run's LocalStack on loopback.
        ("APP__HTTP__ADDR", "0.0.0.0:0"),
    ];
    for (setting, value) in cases {
        let db_url = testkit::fresh_database().await.expect("fresh database");
        let mut env = production(&db_url);
        env.push((setting, value.to_owned()));
        let exit = refusal(command("web-server", &env, &[])).await;
        let named = if setting == "APP__HTTP__ADDR" {
            "APP__SQS__ENDPOINT_URL"
        } else {
            setting
        };
        assert_refused(&exit, "web-server", named, value);
    }
}

#[tokio::test]
async fn every_process_refuses_stripe_keys_of_two_modes_naming_the_publishable_key() {
    // The safe settings' secret key is a test key; a live publishable key does not go with it.
    for binary in ["web-server", "billing-service"] {
        let db_url = testkit::fresh_database().await.expect("fresh database");
        let mut env = production(&db_url);
        env.push(("APP__STRIPE__PUBLISHABLE_KEY", "pk_live_51Abc".into()));
        let exit = refusal(command(binary, &env, &[])).await;
        assert_eq!(exit.code, Some(78), "{binary}: {}", exit.stderr);
        assert!(
            exit.stderr.starts_with(&format!(
                "{binary}: refusing to start: invalid setting `stripe.publishable_key`: is a live key"
            )),
            "{}",
            exit.stderr
        );
        assert!(!exit.stderr.contains("sk_test_"), "{}", exit.stderr);
    }
}

#[tokio::test]
async fn production_is_the_default_profile() {
    // No APP__PROFILE at all, and the local stack's webhook secret.
    refuses(
        "web-server",
        "web-server",
        ("APP__STRIPE__WEBHOOK_SECRET", "whsec_local"),
        &["APP__PROFILE"],
    )
    .await;
}

#[tokio::test]
async fn the_relay_refuses_the_local_database_and_a_public_port_next_to_local_sqs() {
    let default_db = settings::Settings::from_sources(&[]).expect("defaults");
    let default_url = secrecy::ExposeSecret::expose_secret(&default_db.database.url).to_owned();
    refuses(
        "outbox-relay",
        "outbox-relay",
        ("APP__DATABASE__URL", &default_url),
        &[],
    )
    .await;
    let db_url = testkit::fresh_database().await.expect("fresh database");
    let mut env = production(&db_url);
    env.push(("APP__METRICS__ADDR", "0.0.0.0:0".into()));
    let exit = refusal(command("outbox-relay", &env, &[])).await;
    assert_refused(&exit, "outbox-relay", "APP__SQS__ENDPOINT_URL", "");
}

#[tokio::test]
async fn a_worker_refuses_the_documented_stripe_key_as_a_process_and_under_lambda() {
    refuses(
        "billing-service",
        "billing-service",
        ("APP__STRIPE__SECRET_KEY", "sk_test_local"),
        &[],
    )
    .await;
    refuses(
        "email-service",
        "email-service",
        (
            "APP__SHOP__LINK_SECRET",
            "local-compose-link-secret-change-me-0123456789",
        ),
        &[],
    )
    .await;

    // Under the Lambda stand-in (AWS_LAMBDA_RUNTIME_API set): the same refusal, before the
    // function asks the runtime for an event.
    let runtime = FakeRuntimeApi::start(Vec::new())
        .await
        .expect("runtime API");
    let db_url = testkit::fresh_database().await.expect("fresh database");
    let mut env = production(&db_url);
    env.extend(runtime.env());
    env.push(("APP__STRIPE__SECRET_KEY", "sk_test_local".into()));
    let exit = refusal(command("billing-service", &env, &[])).await;
    assert_refused(
        &exit,
        "billing-service",
        "APP__STRIPE__SECRET_KEY",
        "sk_test_local",
    );
    assert_eq!(runtime.answers().len(), 0, "no invocation was served");
}

/// A web-server started with safe production settings, and the address it listens on (read
/// from its JSON log line, so no port is guessed).
async fn production_web_server(env: &[(&'static str, String)]) -> (Child, String) {
    let mut env = env.to_vec();
    env.push(("LOG_FORMAT", "json".into()));
    env.push(("RUST_LOG", "warn,web_server=info".into()));
    let mut child = command("web-server", &env, &[])
        .spawn()
        .expect("the web-server binary");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let addr = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.expect("log line") {
            let Ok(entry) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if entry["message"] == "web-server listening" {
                return entry["addr"].as_str().expect("addr").to_owned();
            }
        }
        let stderr = child.stderr.take();
        panic!("the web-server ended before it listened ({stderr:?})");
    })
    .await
    .expect("the web-server listens");
    // Keep reading its output so that the pipe never fills.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, format!("http://{addr}"))
}

#[tokio::test]
async fn a_production_web_server_refuses_webhooks_signed_with_the_documented_local_secret() {
    let db_url = testkit::fresh_database().await.expect("fresh database");
    let env = production(&db_url);
    let secret = env
        .iter()
        .find(|(k, _)| *k == "APP__STRIPE__WEBHOOK_SECRET")
        .map(|(_, v)| v.clone())
        .expect("secret");
    let (_child, web) = production_web_server(&env).await;
    let event = json!({
        "id": format!("evt_{}", Uuid::new_v4().simple()),
        "object": "event",
        "type": "payment_intent.succeeded",
        "data": {"object": {
            "id": "pi_profile", "object": "payment_intent", "amount": 100, "currency": "eur",
            "metadata": {"order_id": Uuid::new_v4().to_string()}
        }}
    })
    .to_string();
    let post = |secret: String| {
        let (web, event) = (web.clone(), event.clone());
        async move {
            let signature = web_server::signature::sign(
                event.as_bytes(),
                &secret,
                chrono::Utc::now().timestamp(),
            );
            reqwest::Client::new()
                .post(format!("{web}/api/stripe/webhook"))
                .header("content-type", "application/json")
                .header("Stripe-Signature", signature)
                .body(event)
                .send()
                .await
                .expect("webhook")
        }
    };

    let forged = post("whsec_local".into()).await;
    assert_eq!(forged.status(), 400);
    let body: Value = forged.json().await.expect("json");
    assert_eq!(body["error"]["code"], "invalid_signature");

    // The same event signed with the server's own secret is accepted (for an order it does not
    // know, it is recorded and ignored).
    let genuine = post(secret).await;
    assert_eq!(genuine.status(), 200, "{:?}", genuine.text().await);
}

#[tokio::test]
async fn a_worker_with_more_messages_in_flight_than_connections_refuses_in_any_profile() {
    // The test run's own (local) profile: the check is not a production one.
    let env = [
        ("APP__WORKER__IN_FLIGHT", "30".to_owned()),
        ("APP__DATABASE__MAX_CONNECTIONS", "10".to_owned()),
    ];
    let exit = refusal(command("invoice-service", &env, &[])).await;
    assert_eq!(exit.code, Some(78), "{}", exit.stderr);
    let lines: Vec<&str> = exit.stderr.lines().collect();
    let [line] = lines.as_slice() else {
        panic!("one line on stderr, got {lines:?}");
    };
    assert!(
        line.starts_with("invoice-service: refusing to start: ")
            && line.contains("`worker.in_flight`")
            && line.contains("APP__DATABASE__MAX_CONNECTIONS"),
        "{line}"
    );
}
