//! A stand-in for the AWS Lambda Runtime API, so that a worker's real binary can run in Lambda
//! mode in a test: it hands out the given events one by one (`/invocation/next`) and records
//! what the function answers. An empty queue of events makes `next` wait, as Lambda does.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    routing::{get, post},
};
use serde_json::Value;

use crate::TestResult;

#[derive(Default)]
struct Shared {
    events: Mutex<VecDeque<Value>>,
    answers: Mutex<Vec<(String, Value)>>,
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

    /// The environment a Lambda function process expects.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_LAMBDA_RUNTIME_API", self.address.clone()),
            ("AWS_LAMBDA_FUNCTION_NAME", "test-function".into()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".into()),
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
