//! The Lambda adapter over real SQS messages: partial batch responses.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use aws_lambda_events::sqs::SqsEvent;
use domain::{Consumer, Event, EventEnvelope, EventType};
use sqlx::PgConnection;
use uuid::Uuid;
use worker::{Classify, Failure, Handler, lambda::LambdaAdapter};

use crate::{Harness, harness};

/// Fails (retryably) the events whose id is listed; records the ids it ran.
#[derive(Clone, Default)]
struct Selective {
    fail: Arc<HashSet<Uuid>>,
    ran: Arc<Mutex<Vec<Uuid>>>,
}

#[derive(Debug, thiserror::Error)]
#[error("the partner is down")]
struct Transient;

impl Classify for Transient {
    fn failure(&self) -> Failure {
        Failure::Retryable
    }
}

impl Handler for Selective {
    type Error = Transient;

    fn consumer(&self) -> Consumer {
        Consumer::Billing
    }

    async fn handle(&self, event: &Event, _tx: &mut PgConnection) -> Result<(), Transient> {
        self.ran.lock().expect("lock").push(event.id);
        if self.fail.contains(&event.id) {
            Err(Transient)
        } else {
            Ok(())
        }
    }
}

fn event() -> EventEnvelope {
    let payload = serde_json::json!({"reason": "test"});
    EventEnvelope::new(EventType::ShipmentFailed, Uuid::new_v4(), "t", "", &payload)
        .expect("envelope")
}

/// An SQS event as Lambda would deliver it, from `(message id, group, body)` records.
fn sqs_event(records: &[(&str, &str, String)]) -> SqsEvent {
    let records: Vec<_> = records
        .iter()
        .map(|(id, group, body)| {
            serde_json::json!({
                "messageId": id, "receiptHandle": format!("rh-{id}"), "body": body,
                "attributes": {"MessageGroupId": group, "ApproximateReceiveCount": "1"},
                "messageAttributes": {}, "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:billing.fifo", "awsRegion": "us-east-1"
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({ "Records": records })).expect("an SqsEvent")
}

async fn adapter(h: &Harness, handler: Selective) -> LambdaAdapter<Selective> {
    let settings = settings::WorkerSettings {
        handler_timeout_s: 10,
        ..settings::WorkerSettings::default()
    };
    adapter_with(h, handler, settings).await
}

/// An adapter for `handler` over the harness queue with `settings`.
async fn adapter_with<H: Handler>(
    h: &Harness,
    handler: H,
    settings: settings::WorkerSettings,
) -> LambdaAdapter<H> {
    LambdaAdapter::new(
        handler,
        h.pool.clone(),
        h.sqs.clone(),
        h.queue_url.clone(),
        settings,
    )
    .await
    .expect("adapter")
}

fn failures(response: &aws_lambda_events::sqs::SqsBatchResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

#[tokio::test]
async fn a_batch_reports_only_the_retryable_record_and_parks_the_poison_one() {
    let h = harness().await;
    let (good, duplicate, transient) = (event(), event(), event());
    sqlx::query("INSERT INTO inbox (consumer, event_id) VALUES ('billing', $1)")
        .bind(duplicate.event_id)
        .execute(&h.pool)
        .await
        .expect("already processed");
    let handler = Selective {
        fail: Arc::new(HashSet::from([transient.event_id])),
        ..Selective::default()
    };
    let ran = Arc::clone(&handler.ran);
    let adapter = adapter(&h, handler).await;
    let json = |e: &EventEnvelope| serde_json::to_string(e).expect("json");

    let response = adapter
        .handle(sqs_event(&[
            ("m-good", "g1", json(&good)),
            ("m-dup", "g2", json(&duplicate)),
            ("m-poison", "g3", "{not json".to_owned()),
            ("m-transient", "g4", json(&transient)),
        ]))
        .await;

    assert_eq!(failures(&response), ["m-transient"]);
    assert_eq!(
        *ran.lock().expect("lock"),
        [good.event_id, transient.event_id],
        "the duplicate did not run again"
    );
    let inbox: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox")
        .fetch_one(&h.pool)
        .await
        .expect("count");
    assert_eq!(
        inbox, 2,
        "the good record committed; the failed one left nothing"
    );
    let dlq = h.queue_url.replace("billing.fifo", "billing-dlq.fifo");
    let parked = testkit::receive_all(&h.sqs, &dlq, 1, Duration::from_secs(10))
        .await
        .expect("dlq");
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].body.as_deref(), Some("{not json"));
}

#[tokio::test]
async fn in_a_fifo_group_the_records_after_a_failed_one_are_retried_with_it() {
    let h = harness().await;
    let (first, second, third, other) = (event(), event(), event(), event());
    let handler = Selective {
        fail: Arc::new(HashSet::from([second.event_id])),
        ..Selective::default()
    };
    let ran = Arc::clone(&handler.ran);
    let adapter = adapter(&h, handler).await;
    let json = |e: &EventEnvelope| serde_json::to_string(e).expect("json");

    let response = adapter
        .handle(sqs_event(&[
            ("m1", "order-a", json(&first)),
            ("m2", "order-a", json(&second)),
            ("m3", "order-a", json(&third)),
            ("m4", "order-b", json(&other)),
        ]))
        .await;

    assert_eq!(failures(&response), ["m2", "m3"]);
    assert_eq!(
        *ran.lock().expect("lock"),
        [first.event_id, second.event_id, other.event_id],
        "the third was not run out of order"
    );
}

#[tokio::test]
async fn records_that_cannot_finish_before_the_deadline_are_listed_without_running() {
    let h = harness().await;
    let (first, second) = (event(), event());
    let handler = Selective::default();
    let ran = Arc::clone(&handler.ran);
    let adapter = adapter(&h, handler).await;
    let json = |e: &EventEnvelope| serde_json::to_string(e).expect("json");
    let batch = || {
        sqs_event(&[
            ("m1", "order-a", json(&first)),
            ("m2", "order-b", json(&second)),
        ])
    };

    // The handler may take 10 s: with 5 s left, no record can start.
    let soon = std::time::Instant::now() + Duration::from_secs(5);
    let response = adapter.handle_until(batch(), Some(soon)).await;
    assert_eq!(failures(&response), ["m1", "m2"]);
    assert!(ran.lock().expect("lock").is_empty(), "nothing ran");

    let later = std::time::Instant::now() + Duration::from_secs(60);
    let response = adapter.handle_until(batch(), Some(later)).await;
    assert!(failures(&response).is_empty());
    assert_eq!(
        *ran.lock().expect("lock"),
        [first.event_id, second.event_id]
    );
}

/// Runs the events whose id is listed as `slow` for `slow_for` (or forever when `None`) after
/// signalling that it started them, and fails the `fail` ones retryably.
#[derive(Clone, Default)]
struct Slow {
    slow: Arc<HashSet<Uuid>>,
    slow_for: Option<Duration>,
    fail: Arc<HashSet<Uuid>>,
    started: Arc<tokio::sync::Notify>,
}

impl Handler for Slow {
    type Error = Transient;

    fn consumer(&self) -> Consumer {
        Consumer::Billing
    }

    async fn handle(&self, event: &Event, _tx: &mut PgConnection) -> Result<(), Transient> {
        if self.slow.contains(&event.id) {
            self.started.notify_one();
            match self.slow_for {
                Some(slow_for) => tokio::time::sleep(slow_for).await,
                None => std::future::pending().await,
            }
        }
        if self.fail.contains(&event.id) {
            return Err(Transient);
        }
        Ok(())
    }
}

/// The short visibility the adapter holds records for in these tests.
const HOLD_S: i32 = 3;

async fn held_adapter(h: &Harness, handler: Slow, retry_base_s: i32) -> LambdaAdapter<Slow> {
    let settings = settings::WorkerSettings {
        handler_timeout_s: 60,
        visibility_timeout_s: HOLD_S,
        retry_base_s,
        ..settings::WorkerSettings::default()
    };
    adapter_with(h, handler, settings).await
}

/// A Lambda event of the `n` messages on the harness queue, received as the event source
/// does: hidden for 300 s, the queue's own visibility timeout in AWS.
async fn batch_from_queue(h: &Harness, n: usize) -> (serde_json::Value, SqsEvent) {
    let json = testkit::lambda_api::sqs_event_from_queue(&h.sqs, &h.queue_url, n, "billing.fifo")
        .await
        .expect("received");
    let event = serde_json::from_value(json.clone()).expect("an SqsEvent");
    (json, event)
}

#[tokio::test]
async fn the_records_of_an_invocation_that_died_come_back_within_the_short_visibility() {
    let h = harness().await;
    let (first, second) = (h.send_event().await, h.send_event().await);
    let (_, batch) = batch_from_queue(&h, 2).await;
    let handler = Slow {
        slow: Arc::new(HashSet::from([first.event_id, second.event_id])),
        ..Slow::default()
    };
    let started = Arc::clone(&handler.started);
    let adapter = Arc::new(held_adapter(&h, handler, 1).await);

    let running = tokio::spawn({
        let adapter = Arc::clone(&adapter);
        async move { adapter.handle(batch).await }
    });
    started.notified().await;
    // The invocation dies mid-record: nothing answers, nothing renews the hold any more.
    running.abort();
    let died = std::time::Instant::now();
    drop(adapter);

    let back = testkit::receive_all(&h.sqs, &h.queue_url, 2, Duration::from_secs(60))
        .await
        .expect("receive");
    let after = died.elapsed();
    println!(
        "both records back {after:?} after the invocation died (hold {HOLD_S} s, queue 300 s)"
    );
    assert_eq!(
        back.len(),
        2,
        "both records are delivered again within a minute, not after the queue's 300 s"
    );
}

#[tokio::test]
async fn while_a_batch_runs_its_records_stay_hidden_and_a_retried_one_keeps_its_delay() {
    let h = harness().await;
    let (failing, slow) = (h.send_event().await, h.send_event().await);
    let (json, batch) = batch_from_queue(&h, 2).await;
    let handler = Slow {
        slow: Arc::new(HashSet::from([slow.event_id])),
        slow_for: Some(Duration::from_secs(3 * HOLD_S as u64)),
        fail: Arc::new(HashSet::from([failing.event_id])),
        ..Slow::default()
    };
    // The failed record is to come back after 60 s, far past the hold's renewals.
    let adapter = held_adapter(&h, handler, 60).await;
    let watcher = tokio::spawn({
        let (sqs, url) = (h.sqs.clone(), h.queue_url.clone());
        let window = Duration::from_secs(5 * HOLD_S as u64);
        async move { testkit::receive_all(&sqs, &url, usize::MAX, window).await }
    });

    let response = adapter.handle(batch).await;
    let failed = failures(&response);
    assert_eq!(failed.len(), 1, "the failing record is retried");
    // As the event source does: the records not listed are deleted when the function answers.
    testkit::lambda_api::delete_succeeded(&h.sqs, &h.queue_url, &json, &failed)
        .await
        .expect("delete");

    let seen = watcher.await.expect("watcher").expect("receive");
    assert!(
        seen.is_empty(),
        "no record was visible while the batch ran (3× the hold) nor, for the retried one, in \
         the 2× the hold after it: {} seen",
        seen.len()
    );
}
