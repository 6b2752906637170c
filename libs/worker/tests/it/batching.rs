//! How many SQS requests the poller makes, counted by `sqs_transport`'s request counter in a
//! recorder of the test's own: `#[tokio::test]` runs the test and every task it spawns on one
//! thread, and the recorder is that thread's, so the counts are this test's alone. Requests are
//! counted, never timed. (The handler is the `email` consumer, which no other test of this
//! binary uses.)

use std::time::Duration;

use domain::{Consumer, Event, EventEnvelope, EventType};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
use settings::WorkerSettings;
use sqlx::PgConnection;
use sqs_transport::metrics::{MESSAGES_RECEIVED_TOTAL, REQUESTS_TOTAL};
use telemetry::metrics::sample;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use worker::{Classify, Failure, Handler, Poller};

/// Handles every event at once.
#[derive(Clone, Default)]
struct Quick;

#[derive(Debug, thiserror::Error)]
#[error("never fails")]
struct Never;

impl Classify for Never {
    fn failure(&self) -> Failure {
        Failure::Retryable
    }
}

impl Handler for Quick {
    type Error = Never;

    fn consumer(&self) -> Consumer {
        Consumer::Email
    }

    async fn handle(&self, _event: &Event, _tx: &mut PgConnection) -> Result<(), Never> {
        Ok(())
    }
}

fn bodies(n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let payload = serde_json::json!({"reason": "test"});
            let event =
                EventEnvelope::new(EventType::ShipmentFailed, Uuid::new_v4(), "t", "", &payload)
                    .expect("envelope");
            serde_json::to_string(&event).expect("json")
        })
        .collect()
}

/// A database, a fresh queue set, and a poller on the `email` queue once started.
struct Bench {
    backends: testkit::Backends,
    url: String,
}

impl Bench {
    async fn new() -> Self {
        let backends = testkit::Backends::start(5)
            .await
            .expect("database and queues");
        let url = backends.queues.url("email").to_owned();
        Bench { backends, url }
    }

    async fn send(&self, bodies: &[String]) {
        testkit::orders::send_bodies(&self.backends.sqs, &self.url, bodies)
            .await
            .expect("send");
    }

    fn start(&self, settings: WorkerSettings) -> (CancellationToken, tokio::task::JoinHandle<()>) {
        let stop = CancellationToken::new();
        let (pool, sqs, url, token) = (
            self.backends.pool.clone(),
            self.backends.sqs.clone(),
            self.url.clone(),
            stop.clone(),
        );
        let running = tokio::spawn(async move {
            let poller = Poller::new(Quick, pool, sqs, url, settings)
                .await
                .expect("poller");
            poller.run(token).await;
        });
        (stop, running)
    }

    async fn handled(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM inbox")
            .fetch_one(&self.backends.pool)
            .await
            .expect("count")
    }

    async fn wait_handled(&self, n: i64) {
        testkit::eventually(
            "the messages to be handled",
            Duration::from_secs(30),
            || async { self.handled().await == n },
        )
        .await
        .expect("handled");
    }
}

/// Calls of `api` with `outcome` (any outcome when `None`) the recorder counted.
fn calls(recorder: &PrometheusRecorder, api: &str, outcome: Option<&str>) -> f64 {
    let text = recorder.handle().render();
    let mut labels = vec![("api", api)];
    labels.extend(outcome.map(|o| ("outcome", o)));
    sample(&text, REQUESTS_TOTAL, &labels).unwrap_or(0.0)
}

#[tokio::test]
async fn thirty_waiting_messages_take_three_receives_and_three_deletes() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let bench = Bench::new().await;
    bench.send(&bodies(30)).await;

    let (stop, running) = bench.start(WorkerSettings {
        in_flight: 30,
        wait_time_s: 1,
        // Deletes go only in full batches until the stop flushes the rest.
        delete_linger_ms: 60_000,
        ..WorkerSettings::default()
    });
    bench.wait_handled(30).await;
    stop.cancel();
    running.await.expect("clean stop");

    let text = recorder.handle().render();
    assert_eq!(
        sample(&text, MESSAGES_RECEIVED_TOTAL, &[]),
        Some(30.0),
        "{text}"
    );
    assert_eq!(
        calls(&recorder, "ReceiveMessage", Some("ok")),
        3.0,
        "{text}"
    );
    assert_eq!(
        calls(&recorder, "DeleteMessageBatch", Some("ok")),
        3.0,
        "{text}"
    );
    assert_eq!(
        calls(&recorder, "ChangeMessageVisibility", None),
        0.0,
        "{text}"
    );
}

#[tokio::test]
async fn messages_arriving_one_by_one_after_a_short_receive_are_received_together() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let bench = Bench::new().await;
    let (stop, running) = bench.start(WorkerSettings {
        wait_time_s: 1,
        // Long, so that the one-by-one sends below all fall within it.
        receive_linger_ms: 2_000,
        ..WorkerSettings::default()
    });

    bench.send(&bodies(1)).await;
    bench.wait_handled(1).await;
    for body in bodies(9) {
        bench.send(&[body]).await;
    }
    bench.wait_handled(10).await;
    stop.cancel();
    running.await.expect("clean stop");

    // Received one by one, they would take ten receives; the first comes alone, the rest
    // gather while the poller lingers after it (one more receive may catch the first of them).
    let with_messages = calls(&recorder, "ReceiveMessage", Some("ok"));
    assert!(
        (2.0..=3.0).contains(&with_messages),
        "{with_messages} receives with messages for 1 + 9 messages sent one by one"
    );
}

#[tokio::test]
async fn an_idle_poller_makes_one_receive_per_long_poll() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let bench = Bench::new().await;
    let (stop, running) = bench.start(WorkerSettings {
        wait_time_s: 1,
        ..WorkerSettings::default()
    });

    // Not a synchronisation: the window over which an idle poller's receives are counted.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.cancel();
    running.await.expect("clean stop");

    // One long poll of 1 s after the other: three or four in 3 s, where a spinning loop makes
    // hundreds.
    let receives = calls(&recorder, "ReceiveMessage", None);
    assert!(
        (1.0..=5.0).contains(&receives),
        "{receives} receives in 3 s with 1 s long polls"
    );
    assert_eq!(calls(&recorder, "ReceiveMessage", Some("ok")), 0.0);
}
