//! The relay's bound on `SendMessageBatch` calls in flight (`APP__RELAY__SQS_IN_FLIGHT`), seen
//! from the queue service's side: the relay talks to LocalStack through a counting HTTP relay on
//! 127.0.0.1 that holds each call a little, so calls the relay starts together overlap there.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{body::Bytes, extract::State, http::HeaderMap, response::IntoResponse};
use outbox_relay::{Publisher, Relay};

use crate::helpers::{commit_placed, harness};

/// SQS calls (any: GetQueueUrl, SendMessageBatch) passing through the front now, the most there were at once, and where they go.
struct Front {
    upstream: String,
    http: reqwest::Client,
    now: AtomicUsize,
    most: AtomicUsize,
}

/// Forwards one call (the SDK sends every SQS call as a POST to the endpoint's root), held
/// for 20 ms while counted.
async fn forward(
    State(front): State<Arc<Front>>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let now = front.now.fetch_add(1, Ordering::SeqCst) + 1;
    front.most.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut request = front.http.post(&front.upstream).body(body);
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    let answer = request.send().await.expect("LocalStack answers");
    let status = answer.status();
    let content_type = answer.headers().get("content-type").cloned();
    let body = answer.bytes().await.expect("answer body");
    front.now.fetch_sub(1, Ordering::SeqCst);
    let mut reply = (status, body).into_response();
    if let Some(content_type) = content_type {
        reply.headers_mut().insert("content-type", content_type);
    }
    reply
}

/// Starts the front for `upstream`; returns its endpoint URL.
async fn start_front(front: Arc<Front>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let app = axum::Router::new().fallback(forward).with_state(front);
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_claim_keeps_to_the_calls_in_flight_it_is_allowed() {
    let h = harness().await;
    // 100 orders' order.placed: one claim, 200 messages, 20 calls started together.
    commit_placed(&h, 100, true).await;

    let front = Arc::new(Front {
        upstream: h.endpoint.clone(),
        http: reqwest::Client::new(),
        now: AtomicUsize::new(0),
        most: AtomicUsize::new(0),
    });
    let endpoint = start_front(Arc::clone(&front)).await;
    let settings = testkit::test_settings(&[
        ("APP__SQS__ENDPOINT_URL", endpoint.as_str()),
        ("APP__RELAY__BATCH_SIZE", "100"),
        ("APP__RELAY__SQS_IN_FLIGHT", "3"),
    ]);
    let client = sqs_transport::connect(&settings.sqs, Duration::from_secs(10)).await;
    let relay = Relay::new(
        h.pool.clone(),
        Publisher::new(client, h.queues.prefix.clone()),
        settings.relay,
    );

    let published = relay.drain().await.expect("drained");
    assert_eq!(published, 100, "every row published");
    let most = front.most.load(Ordering::SeqCst);
    // At most the bound; and the bound was reached, so the calls did run together.
    assert_eq!(most, 3, "calls in flight at once");
}
