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
    LambdaAdapter::new(
        handler,
        h.pool.clone(),
        h.sqs.clone(),
        h.queue_url.clone(),
        settings::WorkerSettings {
            handler_timeout_s: 10,
            ..settings::WorkerSettings::default()
        },
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
