//! The shipping binary under a stand-in Lambda Runtime API.
//!
//! Partner trouble is never final: while the partner keeps failing (5xx, 429, no answer) the
//! client retries inside the handler until `APP__SHIPPING__DEADLINE_MS`, then the handler fails
//! retryably and the record comes back through the queue — after the partner's `Retry-After`
//! when it gave one. So the transient record here meets a partner answering `429` with a
//! `Retry-After` far beyond the deadline: the handler gives up on it at once, nothing is
//! committed, and the record is listed for retry.

use partner_sim::Faults;
use serde_json::{Value, json};
use testkit::lambda_api::{self, Function};

use crate::helpers::{Harness, harness_without_worker};

const RETRY_AFTER_S: u64 = 300;

/// Faults under which exactly the first `POST /v1/shipments` from now on is answered `429`
/// (`Retry-After: RETRY_AFTER_S`) and the second is served: half the requests are rate limited,
/// with a seed whose first two draws fall that way. The seed is found by asking the simulator
/// itself (probe requests carry no reference, so they count for no order); putting the faults
/// again reseeds the draws, so they start over.
async fn rate_limit_only_the_first_request(partner: &str) -> Value {
    let http = reqwest::Client::new();
    for seed in 1..1_000u64 {
        let faults = json!({"rate_limit_rate": 0.5, "retry_after_s": RETRY_AFTER_S, "seed": seed});
        put_faults(partner, &faults).await;
        let mut statuses = Vec::new();
        for _ in 0..2 {
            // No Idempotency-Key: a request that draws no fault is refused with 400, books nothing.
            let status = http
                .post(format!("{partner}/v1/shipments"))
                .json(&json!({}))
                .send()
                .await
                .expect("probe")
                .status()
                .as_u16();
            statuses.push(status);
        }
        if statuses[0] == 429 && statuses[1] != 429 {
            put_faults(partner, &faults).await;
            return faults;
        }
    }
    panic!("no seed rate-limits the first request only");
}

async fn put_faults(partner: &str, faults: &Value) {
    let response = reqwest::Client::new()
        .put(format!("{partner}/v1/_sim/faults"))
        .json(faults)
        .send()
        .await
        .expect("faults");
    assert!(response.status().is_success(), "faults refused: {faults}");
}

/// `POST /v1/shipments` requests the partner got for the order, faulted ones included.
async fn partner_requests(h: &Harness, order_id: uuid::Uuid) -> i64 {
    let stats: Value = reqwest::get(format!("{}/v1/_sim/stats?reference={order_id}", h.partner))
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    stats["requests"].as_i64().expect("count")
}

#[tokio::test]
async fn the_shipping_binary_under_a_lambda_runtime_answers_a_batch_with_the_right_failures() {
    let h = harness_without_worker(Faults::default()).await;
    let good = h.paid_order().await;
    let duplicate = h.paid_order().await;
    let stuck = h.paid_order().await;
    let batch = lambda_api::Batch::send(
        &h.pool,
        &h.sqs,
        &h.queues,
        "shipping",
        [&good, &duplicate, &stuck],
    )
    .await
    .expect("batch");
    // Records run one after the other; the stuck one first, so that it makes the first partner
    // request (rate limited) and the good one the second (served). Every record is in a message
    // group of its own, so their order in the batch is free.
    let mut records = vec![batch.transient.clone()];
    records.extend(
        batch.event["Records"]
            .as_array()
            .expect("records")
            .iter()
            .filter(|r| r["messageId"] != batch.transient["messageId"])
            .cloned(),
    );
    let event = json!({ "Records": records });
    rate_limit_only_the_first_request(&h.partner).await;

    let binary =
        lambda_api::function_binary("shipping-service", env!("CARGO_BIN_EXE_shipping-service"));
    let mut env = h.overrides();
    env.extend([
        ("APP__WORKER__HANDLER_TIMEOUT_S", "5".to_owned()),
        ("APP__SHIPPING__ATTEMPT_TIMEOUT_MS", "1000".to_owned()),
        // Far below the Retry-After: the handler leaves the wait to the queue.
        ("APP__SHIPPING__DEADLINE_MS", "2000".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ]);
    let mut function = Function::start(&binary, &env)
        .await
        .expect("function process");
    let failures = function.invoke(event).await;

    assert_eq!(
        failures,
        [batch.transient_id()],
        "only the transient failure is retried"
    );
    assert_eq!(h.status(good.order_id).await, "shipped");
    assert_eq!(h.partner_shipments(good.order_id).await, 1);
    assert_eq!(
        h.status(duplicate.order_id).await,
        "paid",
        "the already processed event did not run again"
    );
    assert_eq!(h.partner_shipments(duplicate.order_id).await, 0);
    assert_eq!(partner_requests(&h, duplicate.order_id).await, 0);
    assert_eq!(h.status(stuck.order_id).await, "paid");
    assert_eq!(h.partner_shipments(stuck.order_id).await, 0);
    assert_eq!(
        partner_requests(&h, stuck.order_id).await,
        1,
        "one rate-limited request, then the record was left to the queue"
    );
    assert_eq!(
        h.count("SELECT count(*) FROM outbox WHERE event_type = 'shipment.failed'")
            .await,
        0,
        "a transient partner failure is not a failed shipment"
    );
    lambda_api::assert_parked_alone(&h.sqs, h.queues.dlq("shipping"), "{not json").await;

    // The partner is well again: Lambda hands the same warm function the retried record alone.
    put_faults(&h.partner, &json!({})).await;
    let failures = function
        .invoke(lambda_api::redelivery(&[&batch.transient]))
        .await;
    function.stop();
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(h.status(stuck.order_id).await, "shipped");
    assert_eq!(h.partner_shipments(stuck.order_id).await, 1, "one shipment");
    assert_eq!(h.partner_shipments(good.order_id).await, 1);
    assert_eq!(h.partner_shipments(duplicate.order_id).await, 0);
    assert_eq!(
        h.count("SELECT count(*) FROM shipments").await,
        2,
        "one stored shipment per shipped order"
    );
    assert_eq!(
        h.count("SELECT count(*) FROM outbox WHERE event_type = 'shipment.created'")
            .await,
        2
    );
    assert_eq!(
        h.count("SELECT count(*) FROM outbox WHERE event_type = 'shipment.failed'")
            .await,
        0
    );
}
