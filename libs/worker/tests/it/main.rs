//! The worker runtime against the real PostgreSQL and LocalStack, with a scripted handler: the
//! message life cycle the invoice and e-mail workers rely on.

mod batching;
mod lambda;
mod metrics;
mod run;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use domain::{Consumer, Event, EventEnvelope, EventType};
use settings::WorkerSettings;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use worker::{Classify, Failure, Handler, Poller};

/// A handler that sleeps, and fails retryably the first `failures` times.
#[derive(Clone, Default)]
struct Scripted {
    sleep: Duration,
    failures: usize,
    calls: Arc<AtomicUsize>,
    finished_at: Arc<Mutex<Vec<Instant>>>,
}

#[derive(Debug, thiserror::Error)]
#[error("scripted failure")]
struct ScriptedFailure;

impl Classify for ScriptedFailure {
    fn failure(&self) -> Failure {
        Failure::Retryable
    }
}

impl Handler for Scripted {
    type Error = ScriptedFailure;

    fn consumer(&self) -> Consumer {
        Consumer::Billing
    }

    async fn handle(&self, _event: &Event, _tx: &mut PgConnection) -> Result<(), ScriptedFailure> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.sleep).await;
        self.finished_at.lock().expect("lock").push(Instant::now());
        if call < self.failures {
            Err(ScriptedFailure)
        } else {
            Ok(())
        }
    }
}

/// A new event (`shipment.failed`, of a random order) and its envelope's JSON.
fn event() -> (EventEnvelope, String) {
    let payload = serde_json::json!({"reason": "test"});
    let event = EventEnvelope::new(
        EventType::ShipmentFailed,
        uuid::Uuid::new_v4(),
        "t",
        "",
        &payload,
    )
    .expect("envelope");
    let body = serde_json::to_string(&event).expect("json");
    (event, body)
}

struct Harness {
    pool: PgPool,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
}

async fn harness() -> Harness {
    let testkit::Backends {
        pool, sqs, queues, ..
    } = testkit::Backends::start(5)
        .await
        .expect("database and queues");
    let queue_url = queues.url("billing").to_owned();
    Harness {
        pool,
        sqs,
        queue_url,
    }
}

impl Harness {
    async fn send_event(&self) -> EventEnvelope {
        let (event, body) = event();
        testkit::orders::send_bodies(&self.sqs, &self.queue_url, &[body])
            .await
            .expect("send");
        event
    }

    fn start(
        &self,
        handler: Scripted,
        settings: WorkerSettings,
    ) -> (CancellationToken, tokio::task::JoinHandle<()>) {
        let stop = CancellationToken::new();
        let (pool, sqs, url, token) = (
            self.pool.clone(),
            self.sqs.clone(),
            self.queue_url.clone(),
            stop.clone(),
        );
        let running = tokio::spawn(async move {
            let poller = Poller::new(handler, pool, sqs, url, settings)
                .await
                .expect("poller");
            poller.run(token).await;
        });
        (stop, running)
    }

    async fn inbox_rows(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM inbox")
            .fetch_one(&self.pool)
            .await
            .expect("count")
    }

    async fn depth(&self) -> i64 {
        testkit::queue_depth(&self.sqs, &self.queue_url)
            .await
            .expect("depth")
    }
}

fn settings(visibility_timeout_s: i32) -> WorkerSettings {
    WorkerSettings {
        wait_time_s: 1,
        visibility_timeout_s,
        retry_base_s: 1,
        ..WorkerSettings::default()
    }
}

#[tokio::test]
async fn a_handler_slower_than_the_visibility_timeout_keeps_its_message_and_runs_once() {
    let h = harness().await;
    h.send_event().await;
    let handler = Scripted {
        sleep: Duration::from_secs(5),
        ..Scripted::default()
    };
    let calls = Arc::clone(&handler.calls);
    let (stop, running) = h.start(handler, settings(2));

    testkit::eventually(
        "the event to be handled",
        Duration::from_secs(20),
        || async { h.inbox_rows().await == 1 },
    )
    .await
    .expect("handled");
    testkit::eventually(
        "the message to be deleted",
        Duration::from_secs(10),
        || async { h.depth().await == 0 },
    )
    .await
    .expect("deleted");
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.cancel();
    running.await.expect("clean stop");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the visibility was extended: no second delivery"
    );
}

#[tokio::test]
async fn a_retryable_failure_comes_back_after_the_backoff_and_then_succeeds() {
    let h = harness().await;
    h.send_event().await;
    let handler = Scripted {
        failures: 1,
        ..Scripted::default()
    };
    let (calls, finished) = (Arc::clone(&handler.calls), Arc::clone(&handler.finished_at));
    let (stop, running) = h.start(handler, settings(30));

    testkit::eventually("the retry to succeed", Duration::from_secs(20), || async {
        h.inbox_rows().await == 1
    })
    .await
    .expect("handled");
    stop.cancel();
    running.await.expect("clean stop");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let finished = finished.lock().expect("lock").clone();
    let gap = finished[1] - finished[0];
    assert!(
        gap >= Duration::from_millis(900),
        "redelivered after the 1 s backoff, not at once: {gap:?}"
    );
    assert!(
        gap < Duration::from_secs(10),
        "redelivered after the backoff, not the 30 s visibility timeout: {gap:?}"
    );
}

#[tokio::test]
async fn shutdown_lets_the_message_in_flight_finish_and_takes_nothing_new() {
    let h = harness().await;
    h.send_event().await;
    let handler = Scripted {
        sleep: Duration::from_secs(2),
        ..Scripted::default()
    };
    let calls = Arc::clone(&handler.calls);
    // One slot: while the handler works, the loop waits for the slot instead of receiving.
    let (stop, running) = h.start(
        handler,
        WorkerSettings {
            in_flight: 1,
            ..settings(30)
        },
    );
    testkit::eventually("the handler to start", Duration::from_secs(20), || async {
        calls.load(Ordering::SeqCst) == 1
    })
    .await
    .expect("started");

    h.send_event().await;
    stop.cancel();
    running.await.expect("clean stop");
    assert_eq!(
        h.inbox_rows().await,
        1,
        "the message in flight finished and committed"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "nothing new was taken after the stop"
    );
    assert_eq!(
        h.depth().await,
        1,
        "the first message was deleted, the second is still queued"
    );
}
