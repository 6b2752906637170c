use testkit::lambda_api::{self, Function};
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
    let batch = lambda_api::Batch::send(
        &h.pool,
        &h.sqs,
        &h.queues,
        "invoice",
        [&good, &duplicate, &stuck],
    )
    .await
    .expect("batch");
    // A transient failure: the order's row is locked, so the handler times out (2 s), its
    // transaction rolls back and the record is retried.
    let blocker = testkit::orders::lock_order(&h.pool, stuck.order_id)
        .await
        .expect("lock");

    let binary =
        lambda_api::function_binary("invoice-service", env!("CARGO_BIN_EXE_invoice-service"));
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

    // What CloudWatch gets instead of a /metrics port: the invocation's outcomes as EMF lines.
    let outcomes: Vec<(String, f64)> = function
        .emf_lines()
        .iter()
        .filter(|doc| doc["consumer"] == "invoice")
        .filter_map(|doc| {
            let count = doc["chargeflow_messages_total"].as_f64()?;
            Some((doc["outcome"].as_str()?.to_owned(), count))
        })
        .collect();
    let mut outcomes = outcomes;
    outcomes.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        outcomes,
        [
            ("done".to_owned(), 1.0),
            ("duplicate".to_owned(), 1.0),
            ("parked".to_owned(), 1.0),
            ("retried".to_owned(), 1.0)
        ],
        "one EMF count per outcome of the batch"
    );

    // The lock is gone. Lambda deletes the records the answer did not list; the function set the
    // listed record's visibility to the first retry delay, so it is back on the queue after
    // seconds, not the 300 s it was received with, and Lambda hands it, alone, to the same warm
    // function.
    lambda_api::delete_succeeded(&h.sqs, h.queues.url("invoice"), &batch.event, &failures)
        .await
        .expect("delete the handled records");
    let again =
        lambda_api::sqs_event_from_queue(&h.sqs, h.queues.url("invoice"), 1, "invoice.fifo")
            .await
            .expect("the retried record is back on the queue");
    assert_eq!(
        again["Records"][0]["messageId"],
        batch.transient_id().as_str()
    );
    let failures = function.invoke(again).await;
    function.stop();
    assert!(failures.is_empty(), "{failures:?}");
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
