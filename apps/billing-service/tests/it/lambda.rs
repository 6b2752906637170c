use std::time::Duration;

use testkit::lambda_api::{self, FakeRuntimeApi};

use crate::helpers::harness;

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
    let event =
        lambda_api::sqs_event_from_queue(&h.sqs, h.queues.url("billing"), 4, "billing.fifo")
            .await
            .expect("SQS event");
    let stuck_record = lambda_api::record_containing(&event, &stuck.event_id.to_string());
    let stuck_message = stuck_record["messageId"].as_str().expect("id").to_owned();
    // A transient failure: the order's row is locked, so the handler times out (2 s) and retries.
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
        lambda_api::function_binary("billing-service", env!("CARGO_BIN_EXE_billing-service"));
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
    lambda_api::assert_parked_alone(&h.sqs, h.queues.dlq("billing"), "{not json").await;

    // The lock is gone: Lambda hands the same warm function the retried record alone.
    runtime.push(lambda_api::redelivery(&[stuck_record]));
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
    assert_eq!(h.status(stuck.order_id).await, "paid");
    assert_eq!(h.intents(stuck.order_id).await.len(), 1, "one charge");
    assert_eq!(h.intents(good.order_id).await.len(), 1);
    assert_eq!(
        h.count("SELECT count(*) FROM outbox WHERE event_type = 'payment.succeeded'")
            .await,
        2,
        "one payment.succeeded per charged order"
    );
}
