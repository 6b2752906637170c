use std::time::{Duration, Instant};

use domain::EventType;
use uuid::Uuid;

use crate::helpers::harness;

#[tokio::test]
async fn published_rows_older_than_the_retention_period_are_purged_and_pending_ones_kept() {
    let h = harness().await;
    let old = h.enqueue(Uuid::now_v7(), EventType::OrderPlaced).await;
    let recent = h.enqueue(Uuid::now_v7(), EventType::OrderPlaced).await;
    let pending = h.enqueue(Uuid::now_v7(), EventType::OrderPlaced).await;
    sqlx::query("UPDATE outbox SET published_at = now() - interval '8 days' WHERE event_id = $1")
        .bind(old.event_id)
        .execute(&h.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE outbox SET published_at = now() - interval '1 day' WHERE event_id = $1")
        .bind(recent.event_id)
        .execute(&h.pool)
        .await
        .unwrap();

    let mut conn = h.pool.acquire().await.unwrap();
    let purged = outbox::purge_published(&mut conn, Duration::from_secs(7 * 24 * 3600), 1000)
        .await
        .unwrap();

    assert_eq!(purged, 1);
    let left: Vec<Uuid> = sqlx::query_scalar("SELECT event_id FROM outbox ORDER BY id")
        .fetch_all(&h.pool)
        .await
        .unwrap();
    assert_eq!(left, vec![recent.event_id, pending.event_id]);
}

#[tokio::test]
async fn the_relay_process_stops_cleanly_on_sigterm() {
    let h = harness().await;
    let mut relay = h.spawn_relay_process();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let sent = std::process::Command::new("kill")
        .args(["-TERM", &relay.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());

    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = relay.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "relay still running 10 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status:?}");
}
