use std::{process::Command, time::Duration};

use crate::helpers::{TOTAL, harness};

#[tokio::test]
async fn a_visa_payment_charges_the_invoice_total_once_and_pays_the_order() {
    let h = harness().await;
    h.start_worker().await;
    let event = h.invoiced_order("pm_card_visa").await;
    h.send(&event).await;
    h.wait_status(event.order_id, "paid").await;

    let intents = h.intents(event.order_id).await;
    assert_eq!(intents.len(), 1, "{intents:#?}");
    assert_eq!(
        (intents[0]["status"].as_str(), intents[0]["amount"].as_i64()),
        (Some("succeeded"), Some(TOTAL))
    );
    assert_eq!(intents[0]["currency"], "eur");
    let recorded: (String, String, bool) = sqlx::query_as(
        "SELECT payment_intent_id, status, claim_event IS NULL AND claimed_until IS NULL
         FROM payments",
    )
    .fetch_one(&h.pool)
    .await
    .expect("payment");
    assert_eq!(
        recorded,
        (
            intents[0]["id"].as_str().expect("id").to_owned(),
            "succeeded".to_owned(),
            true
        ),
        "the payment recorded and its claim given up"
    );
    assert_eq!(
        h.count("SELECT count(*) FROM outbox WHERE event_type = 'payment.succeeded'")
            .await,
        1
    );
}

#[tokio::test]
async fn a_declined_card_fails_the_order_and_puts_the_stock_back() {
    let h = harness().await;
    h.start_worker().await;
    let before = h.stock().await;
    let event = h.invoiced_order("pm_card_chargeDeclined").await;
    assert_eq!(h.stock().await, before - 2);
    h.send(&event).await;
    h.wait_status(event.order_id, "payment_failed").await;

    assert_eq!(h.stock().await, before);
    let payload: serde_json::Value = sqlx::query_scalar(
        "SELECT envelope->'payload' FROM outbox WHERE event_type = 'payment.failed'",
    )
    .fetch_one(&h.pool)
    .await
    .expect("payment.failed");
    assert!(!payload["reason"].as_str().unwrap_or_default().is_empty());
    let intents = h.intents(event.order_id).await;
    assert_eq!(intents.len(), 1);
    assert_ne!(intents[0]["status"], "succeeded");
}

#[tokio::test]
async fn invoice_generated_delivered_twice_creates_one_payment_intent() {
    let h = harness().await;
    h.start_worker().await;
    let event = h.invoiced_order("pm_card_visa").await;
    h.send(&event).await;
    h.send(&event).await;
    h.wait_status(event.order_id, "paid").await;
    h.wait_idle().await;

    assert_eq!(h.intents(event.order_id).await.len(), 1);
    assert_eq!(
        h.count("SELECT count(*) FROM outbox WHERE event_type = 'payment.succeeded'")
            .await,
        1
    );
}

#[tokio::test]
async fn billing_killed_right_after_the_stripe_call_still_charges_once() {
    let h = harness().await;
    let event = h.invoiced_order("pm_card_visa").await;
    // The outbox write takes a per-order advisory lock: holding it stops the worker after
    // Stripe answered and before anything of its transaction commits.
    let mut blocker = h.pool.begin().await.expect("tx");
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))")
        .bind(event.order_id)
        .execute(&mut *blocker)
        .await
        .expect("lock");
    h.send(&event).await;
    let mut worker = h.spawn_worker_process();
    testkit::eventually(
        "the charge to go through at Stripe",
        Duration::from_secs(30),
        || async {
            h.intents(event.order_id)
                .await
                .iter()
                .any(|pi| pi["status"] == "succeeded")
        },
    )
    .await
    .expect("charged");
    testkit::eventually("the worker to wait on the outbox lock", Duration::from_secs(10), || async {
        h.count("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'").await > 0
    })
    .await
    .expect("blocked");
    worker.kill().expect("kill -9");
    worker.wait().expect("reaped");
    blocker.rollback().await.expect("release");
    assert_eq!(
        h.status(event.order_id).await,
        "invoiced",
        "nothing of the killed attempt committed"
    );

    let mut worker = h.spawn_worker_process();
    h.wait_status(event.order_id, "paid").await;
    assert_eq!(
        h.intents(event.order_id).await.len(),
        1,
        "the retry used the recorded intent"
    );
    assert_eq!(
        h.count("SELECT count(*) FROM outbox WHERE event_type = 'payment.succeeded'")
            .await,
        1
    );
    Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .expect("SIGTERM");
    assert!(worker.wait().expect("exit").success());
}

#[tokio::test]
async fn a_failed_shipment_is_refunded_once_and_the_stock_released() {
    let h = harness().await;
    h.start_worker().await;
    let before = h.stock().await;
    let event = h.invoiced_order("pm_card_visa").await;
    h.send(&event).await;
    h.wait_status(event.order_id, "paid").await;

    let failed = h.shipment_failed(event.order_id);
    h.send(&failed).await;
    h.send(&failed).await;
    h.wait_status(event.order_id, "refunded").await;
    h.wait_idle().await;

    let intent = h.intents(event.order_id).await.remove(0);
    let refunds = h
        .stripe
        .refunds_for_payment_intent(intent["id"].as_str().expect("id"))
        .await
        .expect("refunds");
    assert_eq!(refunds.len(), 1, "{refunds:#?}");
    assert_eq!(refunds[0]["amount"].as_i64(), Some(TOTAL));
    assert_eq!(h.stock().await, before);
    assert_eq!(
        h.count("SELECT count(*) FROM outbox WHERE event_type = 'payment.refunded'")
            .await,
        1
    );
    assert_eq!(
        h.count(
            "SELECT count(*) FROM payments WHERE status = 'refunded' AND refund_id IS NOT NULL"
        )
        .await,
        1
    );
}
