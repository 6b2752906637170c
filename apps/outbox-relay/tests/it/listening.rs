//! The relay listens for `outbox_pending` only while it is idle: an idle relay is woken by the
//! notification (its poll interval here is a minute, so a wait for the poll fails the test), a
//! busy one says `UNLISTEN` and claims after each linger, and it listens again once its claims
//! find nothing. The listener's state is read from `pg_stat_activity` (its last statement).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::helpers::{Harness, commit_placed, harness};

/// The last `LISTEN` or `UNLISTEN` statement of the relay's listener connection, if any.
async fn listener_state(h: &Harness) -> Option<String> {
    sqlx::query_scalar(
        "SELECT query FROM pg_stat_activity
         WHERE datname = current_database() AND query LIKE '%LISTEN \"outbox_pending\"'",
    )
    .fetch_optional(&h.pool)
    .await
    .expect("pg_stat_activity")
}

/// Far below the poll interval of a minute: a relay that waited for the poll fails the test.
const WITHIN: Duration = Duration::from_secs(20);

async fn wait_for_state(h: &Harness, statement: &str, what: &str) {
    testkit::eventually(what, WITHIN, || async {
        listener_state(h).await.as_deref() == Some(statement)
    })
    .await
    .expect(what);
}

#[tokio::test]
async fn an_idle_relay_listens_a_busy_one_does_not_and_listens_again_when_idle() {
    let h = harness().await;
    let relay = h
        .relay_with(&[
            ("APP__RELAY__POLL_INTERVAL_MS", "60000"),
            ("APP__RELAY__LINGER_MS", "100"),
        ])
        .await;
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(relay.run(shutdown.clone()));

    wait_for_state(&h, "LISTEN \"outbox_pending\"", "the idle relay listens").await;
    commit_placed(&h, 1, true).await;
    h.wait_all_published(1, WITHIN).await;

    // Busy: an order committed every 10 ms, each claim (every 100 ms) finds some.
    let stop = CancellationToken::new();
    let committing = tokio::spawn({
        let h = h.clone();
        let stop = stop.clone();
        async move {
            let mut committed = 0_usize;
            while !stop.is_cancelled() {
                commit_placed(&h, 1, true).await;
                committed += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            committed
        }
    });
    wait_for_state(
        &h,
        "UNLISTEN \"outbox_pending\"",
        "the busy relay stopped listening",
    )
    .await;
    stop.cancel();
    let committed = committing.await.expect("committer");
    h.wait_all_published(1 + committed, WITHIN).await;

    wait_for_state(&h, "LISTEN \"outbox_pending\"", "the relay listens again").await;
    commit_placed(&h, 1, true).await;
    h.wait_all_published(2 + committed, WITHIN).await;

    shutdown.cancel();
    running.await.expect("relay stopped");
}
