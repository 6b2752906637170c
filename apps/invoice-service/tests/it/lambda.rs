use std::time::Duration;

use testkit::lambda_api::{self, FakeRuntimeApi};
use uuid::Uuid;

use crate::helpers::{Harness, harness};

async fn invoices_of(h: &Harness, order_id: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM invoices WHERE order_id = $1")
        .bind(order_id)
        .fetch_one(&h.pool)
        .await
        .expect("invoices")
}

#[tokio::test]
async fn the_invoice_binary_under_a_lambda_runtime_answers_a_batch_with_the_right_failures() {
    let h = harness().await;
    let good = h.place_order().await;
    let duplicate = h.place_order().await;
    let stuck = h.place_order().await;
    sqlx::query("INSERT INTO inbox (consumer, event_id) VALUES ('invoice', $1)")
        .bind(duplicate.event_id)
        .execute(&h.pool)
        .await
        .expect("already processed");
    h.send(&[
        serde_json::to_string(&good).expect("json"),
        serde_json::to_string(&duplicate).expect("json"),
        "{not json".to_owned(),
        serde_json::to_string(&stuck).expect("json"),
    ])
    .await;
    let event =
        lambda_api::sqs_event_from_queue(&h.sqs, h.queues.url("invoice"), 4, "invoice.fifo")
            .await
            .expect("SQS event");
    let stuck_record = lambda_api::record_containing(&event, &stuck.event_id.to_string());
    let stuck_message = stuck_record["messageId"].as_str().expect("id").to_owned();
    // A transient failure: the order's row is locked, so the handler times out (2 s), its
    // transaction rolls back and the record is retried.
    let mut blocker = h.pool.begin().await.expect("tx");
    sqlx::query("SELECT 1 FROM orders WHERE id = $1 FOR UPDATE")
        .bind(stuck.order_id)
        .execute(&mut *blocker)
        .await
        .expect("lock");

    let runtime = FakeRuntimeApi::start(vec![event.clone()])
        .await
        .expect("runtime API");
    let binary =
        lambda_api::function_binary("invoice-service", env!("CARGO_BIN_EXE_invoice-service"));
    let mut env = h.overrides();
    env.push(("APP__WORKER__HANDLER_TIMEOUT_S", "2".into()));
    env.push(("RUST_LOG", "warn".into()));
    let mut function = runtime
        .spawn_function(&binary, &env)
        .expect("function process");
    let answers = runtime
        .wait_answers(1, Duration::from_secs(60))
        .await
        .expect("answered");
    blocker.rollback().await.expect("release");

    let (kind, answer) = &answers[0];
    assert_eq!(kind, "response", "{answer}");
    assert_eq!(
        lambda_api::batch_item_failures(answer),
        [stuck_message.as_str()],
        "only the transient failure is retried"
    );
    assert_eq!(h.status(good.order_id).await, "invoiced");
    assert_eq!(invoices_of(&h, good.order_id).await, 1);
    assert_eq!(
        h.status(duplicate.order_id).await,
        "placed",
        "the already processed event did not run again"
    );
    assert_eq!(invoices_of(&h, duplicate.order_id).await, 0);
    assert_eq!(h.status(stuck.order_id).await, "placed");
    assert_eq!(invoices_of(&h, stuck.order_id).await, 0);
    lambda_api::assert_parked_alone(&h.sqs, h.queues.dlq("invoice"), "{not json").await;

    // The lock is gone. Lambda deletes the records the answer did not list; the function set the
    // listed record's visibility to the first retry delay, so it is back on the queue after
    // seconds, not the 300 s it was received with, and Lambda hands it, alone, to the same warm
    // function.
    lambda_api::delete_succeeded(&h.sqs, h.queues.url("invoice"), &event, answer)
        .await
        .expect("delete the handled records");
    let again =
        lambda_api::sqs_event_from_queue(&h.sqs, h.queues.url("invoice"), 1, "invoice.fifo")
            .await
            .expect("the retried record is back on the queue");
    assert_eq!(again["Records"][0]["messageId"], stuck_message.as_str());
    runtime.push(again);
    let answers = runtime
        .wait_answers(2, Duration::from_secs(60))
        .await
        .expect("answered again");
    function.stop();
    let (kind, answer) = &answers[1];
    assert_eq!(kind, "response", "{answer}");
    assert!(
        lambda_api::batch_item_failures(answer).is_empty(),
        "{answer}"
    );
    assert_eq!(h.status(stuck.order_id).await, "invoiced");
    assert_eq!(invoices_of(&h, stuck.order_id).await, 1, "one invoice");
    assert_eq!(invoices_of(&h, good.order_id).await, 1);
    assert_eq!(
        h.count("SELECT count(*) FROM outbox WHERE event_type = 'invoice.generated'")
            .await,
        2,
        "one invoice.generated per invoiced order"
    );
    assert_eq!(
        h.count("SELECT max(seq) FROM invoices").await,
        2,
        "the rolled-back attempt gave its number back: no gap"
    );
}
