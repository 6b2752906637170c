//! A backlog of several events per order, committed at once: after each order's first event
//! is published, the next becomes claimable, and no notification says so. The relay claims it
//! after its linger, not after the poll interval (here one minute).

use std::time::Duration;

use domain::{EventEnvelope, EventType};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::helpers::harness;

const ORDERS: usize = 3;
const EVENTS_PER_ORDER: usize = 5;

#[tokio::test]
async fn several_events_per_order_committed_at_once_drain_without_waiting_for_the_poll() {
    let h = harness().await;
    let mut tx = h.pool.begin().await.expect("begin");
    for _ in 0..ORDERS {
        let order_id = Uuid::now_v7();
        for n in 0..EVENTS_PER_ORDER {
            let event = EventEnvelope::new(
                EventType::OrderPlaced,
                order_id,
                "test",
                "",
                &serde_json::json!({ "n": n }),
            )
            .expect("envelope");
            outbox::enqueue(&mut tx, &event).await.expect("enqueue");
        }
    }
    tx.commit().await.expect("commit");

    let relay = h
        .relay_with(&[("APP__RELAY__POLL_INTERVAL_MS", "60000")])
        .await;
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(relay.run(shutdown.clone()));

    let all = i64::try_from(ORDERS * EVENTS_PER_ORDER).expect("count");
    let drained = testkit::eventually("every row published", Duration::from_secs(10), || async {
        testkit::scalar(
            &h.pool,
            "SELECT count(*) FROM outbox WHERE published_at IS NOT NULL",
        )
        .await
            == all
    })
    .await;
    shutdown.cancel();
    let summary = running.await.expect("relay stopped");
    drained.expect("drained within 10 s, with a poll interval of 60 s");
    assert_eq!(summary.published, ORDERS * EVENTS_PER_ORDER);
}
