//! How many `SendMessageBatch` calls the relay makes, read from its own request counter
//! (`chargeflow_sqs_requests_total`) over its metrics port: one relay process per test, so the
//! counts are this test's alone. Calls are counted, never timed.

use std::time::Duration;

use sqs_transport::metrics::REQUESTS_TOTAL;
use telemetry::metrics::sample;

use crate::helpers::{Harness, commit_placed, harness, kill_9};

/// `SendMessageBatch` calls the relay at `addr` counted as answered.
async fn sends(addr: &str) -> f64 {
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("metrics port")
        .text()
        .await
        .expect("metrics text");
    let labels = [("api", "SendMessageBatch"), ("outcome", "ok")];
    sample(&text, REQUESTS_TOTAL, &labels).unwrap_or(0.0)
}

async fn relay_with_metrics(h: &Harness, linger_ms: &str) -> (std::process::Child, String) {
    let addr = format!("127.0.0.1:{}", testkit::free_port());
    let relay = h.spawn_relay_process_with(&[
        ("APP__METRICS__ADDR", &addr),
        ("APP__RELAY__LINGER_MS", linger_ms),
    ]);
    testkit::eventually(
        "the relay's metrics port",
        Duration::from_secs(30),
        || async { reqwest::get(format!("http://{addr}/metrics")).await.is_ok() },
    )
    .await
    .expect("relay up");
    (relay, addr)
}

#[tokio::test]
async fn events_committed_together_go_out_in_full_batches_of_ten_per_queue() {
    let h = harness().await;
    let (mut relay, addr) = relay_with_metrics(&h, "5").await;

    commit_placed(&h, 35, true).await;
    h.wait_all_published(35, Duration::from_secs(60)).await;
    let calls = sends(&addr).await;
    kill_9(&mut relay);

    // ⌈35 / 10⌉ calls to each of the two queues (claims of 20 rows: 10 + 10, then 10 + 5).
    assert_eq!(
        calls, 8.0,
        "SendMessageBatch calls for 35 events × 2 queues"
    );
}

#[tokio::test]
async fn events_committed_one_by_one_while_the_relay_is_busy_share_their_calls() {
    let h = harness().await;
    // A long linger makes the sharing plain: a claim at most every half second while busy.
    let (mut relay, addr) = relay_with_metrics(&h, "500").await;

    commit_placed(&h, 20, false).await;
    h.wait_all_published(20, Duration::from_secs(60)).await;
    let calls = sends(&addr).await;
    kill_9(&mut relay);

    // One call per event and queue would be 40; the first event goes out alone (the relay was
    // idle), the others gather while it lingers.
    assert!(
        calls <= 20.0,
        "{calls} SendMessageBatch calls for 20 events committed one by one (40 unbatched)"
    );
}
