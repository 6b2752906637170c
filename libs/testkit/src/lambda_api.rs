//! A stand-in for the AWS Lambda Runtime API, so that a worker's real binary can run in Lambda
//! mode in a test: it hands out the given events one by one (`/invocation/next`) and records
//! what the function answers. An empty queue of events makes `next` wait, as Lambda does, so
//! [`FakeRuntimeApi::push`] can hand the same (warm) function process a later invocation.
//!
//! Also here: [`sqs_event_from_queue`], a Lambda SQS event made of real queue messages;
//! [`function_binary`], the function's executable (the cargo-built binary or a packaged
//! `bootstrap`); [`FunctionProcess`], the running function, killed when dropped; and small
//! readers of the batch response.

use std::{
    collections::VecDeque,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use aws_sdk_sqs::types::MessageSystemAttributeName;
use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    routing::{get, post},
};
use serde_json::{Value, json};

use crate::TestResult;

#[derive(Default)]
struct Shared {
    events: Mutex<VecDeque<Value>>,
    answers: Mutex<Vec<(String, Value)>>,
    /// When the function first asked for an event: its init was over.
    first_next_at: Mutex<Option<Instant>>,
    /// When the first answer came.
    first_answer_at: Mutex<Option<Instant>>,
}

/// A running fake Runtime API on 127.0.0.1; stops when dropped.
pub struct FakeRuntimeApi {
    address: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeRuntimeApi {
    /// Starts it with `events` to hand out in order.
    ///
    /// # Errors
    /// When no port can be bound.
    pub async fn start(events: Vec<Value>) -> TestResult<Self> {
        let shared = Arc::new(Shared {
            events: Mutex::new(events.into()),
            ..Shared::default()
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?.to_string();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeRuntimeApi {
            address,
            shared,
            server,
        })
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The answers so far: `("response" | "error" | "init_error", body)`.
    pub fn answers(&self) -> Vec<(String, Value)> {
        self.shared.answers.lock().expect("lock").clone()
    }

    /// When the function first asked for an event (its init was over then), if it has.
    pub fn first_next_at(&self) -> Option<Instant> {
        *self.shared.first_next_at.lock().expect("lock")
    }

    /// When the function's first answer (response or error) arrived, if it has.
    pub fn answered_at(&self) -> Option<Instant> {
        *self.shared.first_answer_at.lock().expect("lock")
    }

    /// Queues one more event, handed out after the ones before it: a process that already
    /// answered gets it as a warm invocation.
    pub fn push(&self, event: Value) {
        self.shared.events.lock().expect("lock").push_back(event);
    }

    /// Waits until the function has given `n` answers in all (or `timeout` passes) and returns
    /// them.
    ///
    /// # Errors
    /// When fewer than `n` came in time.
    pub async fn wait_answers(
        &self,
        n: usize,
        timeout: Duration,
    ) -> TestResult<Vec<(String, Value)>> {
        crate::eventually(
            &format!("{n} answer(s) of the function"),
            timeout,
            || async { self.shared.answers.lock().expect("lock").len() >= n },
        )
        .await?;
        Ok(self.answers())
    }

    /// Starts `binary` as this runtime's function: the Lambda environment ([`Self::env`]) with
    /// `env` on top, stdin closed, stderr inherited, stdout (what Lambda sends to CloudWatch
    /// Logs: log lines, EMF metrics) kept in a file for [`FunctionProcess::output`].
    ///
    /// # Errors
    /// When the process cannot be started.
    pub fn spawn_function(
        &self,
        binary: &std::path::Path,
        env: &[(&'static str, String)],
    ) -> TestResult<FunctionProcess> {
        let stdout_path =
            std::env::temp_dir().join(format!("lambda-stdout-{}", uuid::Uuid::new_v4().simple()));
        let stdout = std::fs::File::create(&stdout_path)?;
        let child = Command::new(binary)
            .envs(self.env())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(stdout)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        Ok(FunctionProcess {
            child: Some(child),
            stdout: stdout_path,
        })
    }

    /// The environment a Lambda function process expects.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_LAMBDA_RUNTIME_API", self.address.clone()),
            ("AWS_LAMBDA_FUNCTION_NAME", "test-function".into()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".into()),
            // As deploy/template.yaml sets it for every function: one connection per instance.
            ("APP__DATABASE__MAX_CONNECTIONS", "1".into()),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME",
                "/aws/lambda/test-function".into(),
            ),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "test".into()),
        ]
    }
}

impl Drop for FakeRuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> (HeaderMap, Json<Value>) {
    shared
        .first_next_at
        .lock()
        .expect("lock")
        .get_or_insert_with(Instant::now);
    let event = loop {
        if let Some(event) = shared.events.lock().expect("lock").pop_front() {
            break event;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let mut headers = HeaderMap::new();
    let id = uuid::Uuid::new_v4().to_string();
    let deadline = (std::time::SystemTime::now() + std::time::Duration::from_secs(60))
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis();
    let arn = "arn:aws:lambda:us-east-1:000000000000:function:test-function";
    headers.insert(
        "lambda-runtime-aws-request-id",
        HeaderValue::from_str(&id).expect("id"),
    );
    headers.insert(
        "lambda-runtime-deadline-ms",
        HeaderValue::from_str(&deadline.to_string()).expect("deadline"),
    );
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        HeaderValue::from_static(arn),
    );
    headers.insert(
        "lambda-runtime-trace-id",
        HeaderValue::from_static("Root=1-00000000-000000000000000000000000"),
    );
    (headers, Json(event))
}

fn record(shared: &Shared, kind: &str, body: &str) -> StatusCode {
    let value = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned()));
    shared
        .first_answer_at
        .lock()
        .expect("lock")
        .get_or_insert_with(Instant::now);
    shared
        .answers
        .lock()
        .expect("lock")
        .push((kind.to_owned(), value));
    StatusCode::ACCEPTED
}

async fn response(
    State(shared): State<Arc<Shared>>,
    Path(_id): Path<String>,
    body: String,
) -> StatusCode {
    record(&shared, "response", &body)
}

async fn error(
    State(shared): State<Arc<Shared>>,
    Path(_id): Path<String>,
    body: String,
) -> StatusCode {
    record(&shared, "error", &body)
}

async fn init_error(State(shared): State<Arc<Shared>>, body: String) -> StatusCode {
    record(&shared, "init_error", &body)
}

/// A function process started by [`FakeRuntimeApi::spawn_function`]; killed (SIGKILL, by its
/// process id) and reaped when stopped or dropped, so a failing test leaves nothing running.
pub struct FunctionProcess {
    child: Option<Child>,
    stdout: std::path::PathBuf,
}

impl FunctionProcess {
    /// Kills the process and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// What the process wrote to stdout so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// The CloudWatch EMF documents the process wrote to stdout so far (its JSON lines with an
    /// `_aws` member).
    pub fn emf_lines(&self) -> Vec<Value> {
        self.output()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|doc| doc.get("_aws").is_some())
            .collect()
    }
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(&self.stdout);
    }
}

/// The executable of the function whose binary is `name`:
/// `$CHARGEFLOW_BOOTSTRAP_DIR/<name>/bootstrap` when that variable is set (and not empty), so
/// that the tests run against the packaged bootstraps `cargo lambda build` makes
/// (`target/lambda` by default), else `cargo_bin` (pass `env!("CARGO_BIN_EXE_<name>")`).
///
/// # Panics
/// When `CHARGEFLOW_BOOTSTRAP_DIR` is set and the bootstrap is not there.
pub fn function_binary(name: &str, cargo_bin: &str) -> PathBuf {
    match std::env::var_os("CHARGEFLOW_BOOTSTRAP_DIR").filter(|dir| !dir.is_empty()) {
        Some(dir) => {
            let bootstrap = PathBuf::from(dir).join(name).join("bootstrap");
            assert!(
                bootstrap.is_file(),
                "CHARGEFLOW_BOOTSTRAP_DIR is set but {} does not exist (run cargo lambda build)",
                bootstrap.display()
            );
            bootstrap
        }
        None => PathBuf::from(cargo_bin),
    }
}

/// Receives the `expected` messages waiting on `queue_url` (without deleting them: they stay
/// hidden for 300 s) and shapes them as the SQS event Lambda's event source mapping hands a
/// function: `{"Records": [...]}` with each message's id, receipt handle, body, MD5, system
/// attributes (`MessageGroupId`, `ApproximateReceiveCount`, ...) and string message attributes,
/// and `eventSourceARN` naming `arn_queue_name` (`billing.fifo`, say) in `us-east-1`. Records
/// are in the order received. Keeps receiving (1 s long polls, at most 20) until `expected`
/// messages came.
///
/// # Errors
/// When SQS cannot be reached, or not exactly `expected` messages came.
pub async fn sqs_event_from_queue(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    expected: usize,
    arn_queue_name: &str,
) -> TestResult<Value> {
    let mut records = Vec::new();
    for _ in 0..20 {
        let out = client
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .visibility_timeout(300)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await?;
        for message in out.messages.unwrap_or_default() {
            let attributes: serde_json::Map<String, Value> = message
                .attributes
                .unwrap_or_default()
                .into_iter()
                .map(|(name, value)| (name.as_str().to_owned(), Value::String(value)))
                .collect();
            let message_attributes: serde_json::Map<String, Value> = message
                .message_attributes
                .unwrap_or_default()
                .into_iter()
                .map(|(name, value)| {
                    let shaped = json!({
                        "stringValue": value.string_value, "binaryValue": null,
                        "stringListValues": [], "binaryListValues": [], "dataType": value.data_type,
                    });
                    (name, shaped)
                })
                .collect();
            records.push(json!({
                "messageId": message.message_id, "receiptHandle": message.receipt_handle,
                "body": message.body, "md5OfBody": message.md5_of_body,
                "attributes": attributes, "messageAttributes": message_attributes,
                "eventSource": "aws:sqs", "awsRegion": "us-east-1",
                "eventSourceARN": format!("arn:aws:sqs:us-east-1:000000000000:{arn_queue_name}"),
            }));
        }
        if records.len() >= expected {
            break;
        }
    }
    if records.len() != expected {
        return Err(format!(
            "expected {expected} messages on {queue_url}, received {}",
            records.len()
        )
        .into());
    }
    Ok(json!({ "Records": records }))
}

/// The record of `event` whose body contains `needle` (an event id, say).
///
/// # Panics
/// When no record has it: the test is wrong.
pub fn record_containing<'a>(event: &'a Value, needle: &str) -> &'a Value {
    event["Records"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["body"].as_str().is_some_and(|b| b.contains(needle)))
        .unwrap_or_else(|| panic!("no record's body contains {needle}"))
}

/// An SQS event of just `records`, each marked as received once more (its
/// `ApproximateReceiveCount` raised by one), as Lambda redelivers a record it was told to retry.
pub fn redelivery(records: &[&Value]) -> Value {
    let records: Vec<Value> = records
        .iter()
        .map(|record| {
            let mut record = (*record).clone();
            let count = record["attributes"]["ApproximateReceiveCount"]
                .as_str()
                .and_then(|c| c.parse::<u32>().ok())
                .unwrap_or(1);
            record["attributes"]["ApproximateReceiveCount"] =
                Value::String((count + 1).to_string());
            record
        })
        .collect();
    json!({ "Records": records })
}

/// The `itemIdentifier`s of a partial batch response's `batchItemFailures`.
///
/// # Panics
/// When `answer` is not a batch response: the function failed the invocation instead.
pub fn batch_item_failures(answer: &Value) -> Vec<String> {
    answer["batchItemFailures"]
        .as_array()
        .unwrap_or_else(|| panic!("not a batch response: {answer}"))
        .iter()
        .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned))
        .collect()
}

/// Deletes the records of `event` not listed in `failed`, as Lambda's SQS event
/// source does after a partial batch response; the listed ones stay for their redelivery.
/// LocalStack 4.13.1 needs it too: on a FIFO queue it does not hand out a record whose
/// visibility was shortened while a message sent before it (any group) is still in flight.
///
/// # Errors
/// When SQS refuses a delete.
pub async fn delete_succeeded(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    event: &Value,
    failed: &[String],
) -> TestResult<()> {
    for record in event["Records"].as_array().into_iter().flatten() {
        let id = record["messageId"].as_str().unwrap_or_default();
        if failed.iter().any(|f| f == id) {
            continue;
        }
        client
            .delete_message()
            .queue_url(queue_url)
            .receipt_handle(record["receiptHandle"].as_str().unwrap_or_default())
            .send()
            .await?;
    }
    Ok(())
}

/// Asserts that the dead-letter queue at `dlq_url` holds exactly one message and that its body is
/// `body` (waits up to 10 s for it).
///
/// # Panics
/// When it does not.
pub async fn assert_parked_alone(client: &aws_sdk_sqs::Client, dlq_url: &str, body: &str) {
    let parked = crate::receive_all(client, dlq_url, 1, Duration::from_secs(10))
        .await
        .expect("read the dead-letter queue");
    assert_eq!(parked.len(), 1, "one parked message");
    assert_eq!(parked[0].body.as_deref(), Some(body));
}

/// A worker's real binary running under its own [`FakeRuntimeApi`]: each [`Function::invoke`]
/// hands the same (warm after the first) process one more event.
pub struct Function {
    runtime: FakeRuntimeApi,
    process: FunctionProcess,
}

impl Function {
    /// Starts `binary` (see [`function_binary`]) with `env` on top of the Lambda environment.
    ///
    /// # Errors
    /// When the runtime cannot listen or the process cannot start.
    pub async fn start(
        binary: &std::path::Path,
        env: &[(&'static str, String)],
    ) -> TestResult<Self> {
        let runtime = FakeRuntimeApi::start(Vec::new()).await?;
        let process = runtime.spawn_function(binary, env)?;
        Ok(Function { runtime, process })
    }

    /// Invokes the function with `event` (an SQS event) and returns the message ids its partial
    /// batch response lists for retry.
    ///
    /// # Panics
    /// When no answer comes within 60 s or the answer is not a batch response.
    pub async fn invoke(&self, event: Value) -> Vec<String> {
        let n = self.runtime.answers().len() + 1;
        self.runtime.push(event);
        let answers = self
            .runtime
            .wait_answers(n, Duration::from_secs(60))
            .await
            .expect("the function answered");
        let (kind, answer) = &answers[n - 1];
        assert_eq!(kind, "response", "{answer}");
        batch_item_failures(answer)
    }

    /// Kills the function's process.
    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// The CloudWatch EMF documents the function wrote so far ([`FunctionProcess::emf_lines`]).
    pub fn emf_lines(&self) -> Vec<Value> {
        self.process.emf_lines()
    }
}

/// The batch every worker's Lambda test sends: `good`, `duplicate` (its inbox row for
/// `consumer` written first, as if handled before), an undecodable body (`{not json`) and
/// `transient`, each in its own message group, received back from `consumer`'s queue as a
/// Lambda SQS event.
pub struct Batch {
    /// The SQS event.
    pub event: Value,
    /// The record of `transient`.
    pub transient: Value,
}

impl Batch {
    /// Writes the inbox row, sends the four bodies and receives them as one event.
    ///
    /// # Errors
    /// When the database or SQS fails, or the four do not come back.
    pub async fn send(
        pool: &sqlx::PgPool,
        client: &aws_sdk_sqs::Client,
        queues: &crate::Queues,
        consumer: &str,
        [good, duplicate, transient]: [&domain::EventEnvelope; 3],
    ) -> TestResult<Self> {
        sqlx::query("INSERT INTO inbox (consumer, event_id) VALUES ($1, $2)")
            .bind(consumer)
            .bind(duplicate.event_id)
            .execute(pool)
            .await?;
        let bodies = [
            serde_json::to_string(good)?,
            serde_json::to_string(duplicate)?,
            "{not json".to_owned(),
            serde_json::to_string(transient)?,
        ];
        let url = queues.url(consumer);
        crate::orders::send_bodies(client, url, &bodies).await?;
        let event = sqs_event_from_queue(client, url, 4, &format!("{consumer}.fifo")).await?;
        let transient = record_containing(&event, &transient.event_id.to_string()).clone();
        Ok(Batch { event, transient })
    }

    /// The message id of the transient record.
    pub fn transient_id(&self) -> String {
        self.transient["messageId"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}
