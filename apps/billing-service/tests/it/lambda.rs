use testkit::lambda_api::{self, Function};

use crate::helpers::harness;

#[tokio::test]
async fn the_billing_binary_under_a_lambda_runtime_answers_a_batch_with_the_right_failures() {
    let h = harness().await;
    let good = h.invoiced_order("pm_card_visa").await;
    let duplicate = h.invoiced_order("pm_card_visa").await;
    let stuck = h.invoiced_order("pm_card_visa").await;
    let batch = lambda_api::Batch::send(
        &h.pool,
        &h.sqs,
        &h.queues,
        "billing",
        [&good, &duplicate, &stuck],
    )
    .await
    .expect("batch");
    // A transient failure: the order's row is locked, so the handler times out (2 s) and retries.
    let blocker = testkit::orders::lock_order(&h.pool, stuck.order_id)
        .await
        .expect("lock");

    let binary =
        lambda_api::function_binary("billing-service", env!("CARGO_BIN_EXE_billing-service"));
    let mut env = h.overrides();
    env.push(("APP__WORKER__HANDLER_TIMEOUT_S", "2".into()));
    env.push(("RUST_LOG", "warn".into()));
    let mut function = Function::start(&binary, &env)
        .await
        .expect("function process");
    let failures = function.invoke(batch.event.clone()).await;
    blocker.rollback().await.expect("release");

    assert_eq!(
        failures,
        [batch.transient_id()],
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
    let failures = function
        .invoke(lambda_api::redelivery(&[&batch.transient]))
        .await;
    function.stop();
    assert!(failures.is_empty(), "{failures:?}");
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
