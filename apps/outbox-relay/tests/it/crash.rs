use std::time::Duration;

use crate::helpers::{harness, kill_9};

#[tokio::test]
async fn a_relay_killed_mid_batch_loses_nothing_once_restarted() {
    let h = harness().await;
    let sent = h.enqueue_many(50, 16, 4).await;
    // Small batches and one loop, so that the kill lands while most rows are still pending.
    let slow = [
        ("APP__RELAY__BATCH_SIZE", "5"),
        ("APP__RELAY__CONCURRENCY", "1"),
    ];
    let mut relay = h.spawn_relay_process_with(&slow);

    testkit::eventually(
        "the relay to be under way",
        Duration::from_secs(60),
        || async { h.published().await >= 40 },
    )
    .await
    .unwrap();
    kill_9(&mut relay);
    let before_restart = h.published().await;
    assert!(
        before_restart < i64::try_from(sent.len()).unwrap(),
        "killed before it finished"
    );

    let mut restarted = h.spawn_relay_process();
    h.wait_all_published(sent.len(), Duration::from_secs(120))
        .await;
    kill_9(&mut restarted);

    // Rows sent but not yet marked when the relay died are sent again; FIFO deduplication
    // drops the repeats, so each queue still holds every event exactly once, in order.
    h.assert_delivered_in_order(&sent).await;
}
