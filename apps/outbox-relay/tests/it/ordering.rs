use std::time::Duration;

use crate::helpers::{harness, kill_9};

#[tokio::test]
async fn two_relays_over_a_thousand_events_of_fifty_orders_keep_each_orders_commit_order() {
    let h = harness().await;
    let mut first = h.spawn_relay_process();
    let mut second = h.spawn_relay_process();

    // Written while both relays run, by eight concurrent writers.
    let sent = h.enqueue_many(50, 20, 8).await;

    assert_eq!(sent.len(), 1000);
    h.wait_all_published(sent.len(), Duration::from_secs(120))
        .await;
    kill_9(&mut first);
    kill_9(&mut second);
    h.assert_delivered_in_order(&sent).await;
}
