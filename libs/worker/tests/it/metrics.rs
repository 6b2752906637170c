//! The runtime's series, read back from the process's recorder while a poller works: every
//! message counted once by outcome, decoded ones timed, and the dead-letter queue's depth.
//!
//! The handler here is the `shipping` consumer, which no other test of this binary uses, and the
//! dead-letter queue is this test's own, so the values are this test's alone; they are still
//! compared before and after, as the recorder lives as long as the test binary.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use domain::{Consumer, Event, EventEnvelope, EventType};
use settings::WorkerSettings;
use sqlx::PgConnection;
use telemetry::metrics::sample;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use worker::{
    Classify, Failure, Handler, Poller,
    metrics::{DLQ_DEPTH, HANDLER_DURATION, MESSAGES_TOTAL},
};

/// Succeeds, except once for each event id in `fail_once` (a retryable failure).
#[derive(Clone, Default)]
struct Shipping {
    fail_once: Arc<Mutex<HashSet<Uuid>>>,
}

#[derive(Debug, thiserror::Error)]
#[error("failing once on purpose")]
struct Transient;

impl Classify for Transient {
    fn failure(&self) -> Failure {
        Failure::Retryable
    }
}

impl Handler for Shipping {
    type Error = Transient;

    fn consumer(&self) -> Consumer {
        Consumer::Shipping
    }

    async fn handle(&self, event: &Event, _tx: &mut PgConnection) -> Result<(), Transient> {
        if self.fail_once.lock().expect("lock").remove(&event.id) {
            return Err(Transient);
        }
        Ok(())
    }
}

fn event_body() -> (Uuid, String) {
    let payload = serde_json::json!({"reason": "test"});
    let event = EventEnvelope::new(EventType::ShipmentFailed, Uuid::new_v4(), "t", "", &payload)
        .expect("envelope");
    (event.event_id, serde_json::to_string(&event).expect("json"))
}

#[tokio::test]
async fn messages_are_counted_by_outcome_and_timed_and_the_dlq_depth_is_reported() {
    let handle = telemetry::metrics::install();
    let testkit::Backends {
        pool, sqs, queues, ..
    } = testkit::Backends::start(5)
        .await
        .expect("database and queues");
    let dlq_name = queues
        .dlq("shipping")
        .rsplit('/')
        .next()
        .expect("name")
        .to_owned();
    let (_, good_body) = event_body();
    let (flaky, flaky_body) = event_body();
    let handler = Shipping::default();
    handler.fail_once.lock().expect("lock").insert(flaky);
    let before = handle.render();

    // The good event twice (the second a duplicate), one that fails once, one that is poison.
    let bodies = [good_body.clone(), flaky_body, "not json".to_owned()];
    testkit::orders::send_bodies(&sqs, queues.url("shipping"), &bodies)
        .await
        .expect("send");
    let settings = WorkerSettings {
        wait_time_s: 1,
        retry_base_s: 1,
        ..WorkerSettings::default()
    };
    let poller = Poller::new(
        handler,
        pool,
        sqs.clone(),
        queues.url("shipping").into(),
        settings,
    )
    .await
    .expect("poller");
    let stop = CancellationToken::new();
    let running = tokio::spawn(poller.run(stop.clone()));
    testkit::eventually(
        "the good event to be handled",
        Duration::from_secs(20),
        || async {
            let text = handle.render();
            moved(
                &before,
                &text,
                MESSAGES_TOTAL,
                &[("consumer", "shipping"), ("outcome", "done")],
            ) >= 1.0
        },
    )
    .await
    .expect("handled");
    testkit::orders::send_bodies(&sqs, queues.url("shipping"), &[good_body])
        .await
        .expect("send the duplicate");

    let expected = [
        ("done", 2.0),
        ("duplicate", 1.0),
        ("retried", 1.0),
        ("parked", 1.0),
    ];
    let counted = testkit::eventually("every outcome counted", Duration::from_secs(30), || async {
        let text = handle.render();
        expected.iter().all(|(outcome, n)| {
            let labels = [("consumer", "shipping"), ("outcome", *outcome)];
            moved(&before, &text, MESSAGES_TOTAL, &labels) == *n
        }) && sample(&text, DLQ_DEPTH, &[("queue", &dlq_name)]) == Some(1.0)
    })
    .await;
    stop.cancel();
    running.await.expect("clean stop");
    let after = handle.render();
    counted.unwrap_or_else(|e| panic!("{e}:\n{after}"));
    let timed = moved(
        &before,
        &after,
        &format!("{HANDLER_DURATION}_count"),
        &[("consumer", "shipping")],
    );
    assert_eq!(
        timed, 4.0,
        "decoded messages are timed, the poison one is not: {after}"
    );
}

/// How far `name{labels}` moved from `before` to `after` (a missing series reads 0).
fn moved(before: &str, after: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(after, name, labels).unwrap_or(0.0) - sample(before, name, labels).unwrap_or(0.0)
}
