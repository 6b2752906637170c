use std::collections::BTreeSet;

use domain::{Consumer, EventType, route};
use uuid::Uuid;

use crate::helpers::harness;

#[tokio::test]
async fn every_event_reaches_exactly_the_queues_its_type_is_routed_to() {
    let h = harness().await;
    let order_id = Uuid::now_v7();
    let mut sent = Vec::new();
    for event_type in EventType::ALL {
        sent.push(h.enqueue(order_id, event_type).await);
    }

    let published = h.relay().await.drain().await.unwrap();

    assert_eq!(published, sent.len());
    for consumer in Consumer::ALL {
        let want: BTreeSet<&str> = EventType::ALL
            .iter()
            .filter(|t| route(**t).contains(&consumer))
            .map(|t| t.as_str())
            .collect();
        let received = h.receive(consumer, want.len()).await;
        let got: BTreeSet<&str> = received
            .iter()
            .map(|r| r.envelope.event_type.as_str())
            .collect();
        assert_eq!(got, want, "{consumer}");
        assert_eq!(received.len(), want.len(), "{consumer}: no duplicates");
        for r in &received {
            assert_eq!(r.group_id, order_id.to_string());
            assert_eq!(r.dedup_id, r.envelope.event_id.to_string());
            assert_eq!(r.event_type_attribute, r.envelope.event_type.as_str());
        }
    }
}

#[tokio::test]
async fn an_event_of_an_unknown_type_is_held_back_and_does_not_block_other_orders() {
    let h = harness().await;
    let stuck = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO outbox (event_id, event_type, aggregate_id, envelope) VALUES ($1, 'order.teleported', $2, '{}')",
    )
    .bind(Uuid::now_v7())
    .bind(stuck)
    .execute(&h.pool)
    .await
    .unwrap();
    let later_of_stuck = h.enqueue(stuck, EventType::OrderPlaced).await;
    let other = h.enqueue(Uuid::now_v7(), EventType::OrderPlaced).await;

    h.relay().await.drain().await.unwrap();

    let invoice = h.receive(Consumer::Invoice, 1).await;
    let ids: Vec<Uuid> = invoice.iter().map(|r| r.envelope.event_id).collect();
    assert_eq!(
        ids,
        vec![other.event_id],
        "the other order flows; the stuck order's later event waits"
    );
    assert!(!ids.contains(&later_of_stuck.event_id));
    let (attempts, error, published): (i32, String, bool) = sqlx::query_as(
        "SELECT attempts, last_error, published_at IS NOT NULL FROM outbox
         WHERE event_type = 'order.teleported'",
    )
    .fetch_one(&h.pool)
    .await
    .unwrap();
    // Retried with backoff (how often depends on the machine's speed), never published.
    assert!(attempts >= 1 && !published, "attempts {attempts}");
    assert!(error.contains("unknown event type"), "{error}");
}
