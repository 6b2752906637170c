use std::{
    process::{Command, Stdio},
    time::Duration,
};

use aws_sdk_sqs::types::MessageSystemAttributeName;
use serde_json::{Value, json};
use testkit::lambda_api::FakeRuntimeApi;

use crate::helpers::harness;

/// The messages on the billing queue, received (not deleted) and shaped as Lambda's SQS event.
async fn sqs_event_from_queue(sqs: &aws_sdk_sqs::Client, url: &str, expected: usize) -> Value {
    let mut records = Vec::new();
    for _ in 0..20 {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .visibility_timeout(300)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .expect("receive");
        for message in out.messages.unwrap_or_default() {
            let group = message
                .attributes
                .as_ref()
                .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
                .cloned();
            records.push(json!({
                "messageId": message.message_id, "receiptHandle": message.receipt_handle, "body": message.body,
                "attributes": {"MessageGroupId": group, "ApproximateReceiveCount": "1"},
                "messageAttributes": {}, "eventSource": "aws:sqs", "awsRegion": "us-east-1",
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:billing.fifo"
            }));
        }
        if records.len() >= expected {
            break;
        }
    }
    assert_eq!(records.len(), expected);
    json!({ "Records": records })
}

#[tokio::test]
async fn the_billing_binary_under_a_lambda_runtime_answers_a_batch_with_the_right_failures() {
    let h = harness().await;
    let good = h.invoiced_order("pm_card_visa").await;
    let duplicate = h.invoiced_order("pm_card_visa").await;
    let stuck = h.invoiced_order("pm_card_visa").await;
    sqlx::query("INSERT INTO inbox (consumer, event_id) VALUES ('billing', $1)")
        .bind(duplicate.event_id)
        .execute(&h.pool)
        .await
        .expect("already processed");
    let bodies = [
        serde_json::to_string(&good).expect("json"),
        serde_json::to_string(&duplicate).expect("json"),
        "{not json".to_owned(),
        serde_json::to_string(&stuck).expect("json"),
    ];
    testkit::orders::send_bodies(&h.sqs, h.queues.url("billing"), &bodies)
        .await
        .expect("send");
    let event = sqs_event_from_queue(&h.sqs, h.queues.url("billing"), 4).await;
    let stuck_message = event["Records"]
        .as_array()
        .expect("records")
        .iter()
        .find(|r| {
            r["body"]
                .as_str()
                .is_some_and(|b| b.contains(&stuck.event_id.to_string()))
        })
        .and_then(|r| r["messageId"].as_str())
        .expect("stuck record")
        .to_owned();
    // A transient failure: the order's row is locked, so the handler times out (2 s) and retries.
    let mut blocker = h.pool.begin().await.expect("tx");
    sqlx::query("SELECT 1 FROM orders WHERE id = $1 FOR UPDATE")
        .bind(stuck.order_id)
        .execute(&mut *blocker)
        .await
        .expect("lock");

    let runtime = FakeRuntimeApi::start(vec![event])
        .await
        .expect("runtime API");
    let mut function = Command::new(env!("CARGO_BIN_EXE_billing-service"))
        .envs(h.overrides())
        .envs(runtime.env())
        .env("APP__WORKER__HANDLER_TIMEOUT_S", "2")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .expect("function process");
    testkit::eventually("the function's answer", Duration::from_secs(60), || async {
        !runtime.answers().is_empty()
    })
    .await
    .expect("answered");
    function.kill().expect("stop the function");
    function.wait().expect("reaped");
    blocker.rollback().await.expect("release");

    let (kind, answer) = runtime.answers().remove(0);
    assert_eq!(kind, "response", "{answer}");
    let failures: Vec<&str> = answer["batchItemFailures"]
        .as_array()
        .expect("failures")
        .iter()
        .filter_map(|f| f["itemIdentifier"].as_str())
        .collect();
    assert_eq!(
        failures,
        [stuck_message.as_str()],
        "only the transient failure is retried"
    );
    assert_eq!(h.status(good.order_id).await, "paid");
    assert_eq!(h.intents(good.order_id).await.len(), 1);
    assert_eq!(
        h.status(duplicate.order_id).await,
        "invoiced",
        "the already processed event did not run again"
    );
    assert!(h.intents(duplicate.order_id).await.is_empty());
    assert_eq!(h.status(stuck.order_id).await, "invoiced");
    assert!(h.intents(stuck.order_id).await.is_empty());
    let dlq = &h
        .queues
        .urls
        .iter()
        .find(|(c, _, _)| c == "billing")
        .expect("billing")
        .2;
    let parked = testkit::receive_all(&h.sqs, dlq, 1, Duration::from_secs(10))
        .await
        .expect("dlq");
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].body.as_deref(), Some("{not json"));
}
