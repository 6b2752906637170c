use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::{
    helpers::{Harness, harness},
    numbering::{hold_inbox, invoice_of, wait_numbered_and_waiting},
};

fn spawn_worker(h: &Harness) -> Child {
    spawn_worker_with(h, Visibility::Tests)
}

/// The visibility timeout a spawned worker runs with.
#[derive(PartialEq)]
enum Visibility {
    /// The tests' 3 s.
    Tests,
    /// The production default (15 s).
    Default,
}

fn spawn_worker_with(h: &Harness, visibility: Visibility) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_invoice-service"));
    // Nothing inherited: the default applies unless the tests' value is laid on.
    command
        .env_remove("APP__WORKER__VISIBILITY_TIMEOUT_S")
        .envs(h.overrides().into_iter().filter(|(k, _)| {
            visibility == Visibility::Tests || *k != "APP__WORKER__VISIBILITY_TIMEOUT_S"
        }))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    command.spawn().expect("worker process")
}

/// Backends of the test database waiting for a row lock: the worker, stuck mid-message.
async fn waiting_on_a_lock(h: &Harness) -> bool {
    h.count(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    .await
        > 0
}

#[tokio::test]
async fn a_worker_killed_in_the_middle_of_a_message_still_invoices_the_order_once() {
    let h = harness().await;
    let event = h.place_order().await;
    // Hold the order's row lock so that the worker stops inside its transaction, after the
    // inbox row and before anything is committed.
    let blocker = testkit::orders::lock_order(&h.pool, event.order_id)
        .await
        .expect("lock");
    h.send(&[serde_json::to_string(&event).expect("json")])
        .await;

    let mut worker = spawn_worker(&h);
    testkit::eventually(
        "the worker to be mid-message",
        Duration::from_secs(20),
        || waiting_on_a_lock(&h),
    )
    .await
    .expect("worker blocked on the order");
    worker.kill().expect("kill -9");
    worker.wait().expect("reaped");
    blocker.rollback().await.expect("release");
    assert_eq!(h.status(event.order_id).await, "placed");
    assert_eq!(
        h.count("SELECT count(*) FROM inbox").await,
        0,
        "nothing of the killed attempt remains"
    );

    let mut worker = spawn_worker(&h);
    h.wait_status(event.order_id, "invoiced", Duration::from_secs(30))
        .await;
    assert_eq!(h.count("SELECT count(*) FROM invoices").await, 1);
    assert_eq!(
        h.count("SELECT count(*) FROM outbox WHERE event_type = 'invoice.generated'")
            .await,
        1
    );

    let pid = worker.id().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("SIGTERM");
    let status = worker.wait().expect("exit");
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
}

#[tokio::test]
async fn with_the_default_visibility_a_killed_workers_message_is_handled_by_another_within_seconds()
{
    let h = harness().await;
    let event = h.place_order().await;
    let blocker = testkit::orders::lock_order(&h.pool, event.order_id)
        .await
        .expect("lock");
    h.send(&[serde_json::to_string(&event).expect("json")])
        .await;
    let mut first = spawn_worker_with(&h, Visibility::Default);
    testkit::eventually(
        "the first worker to be mid-message",
        Duration::from_secs(20),
        || waiting_on_a_lock(&h),
    )
    .await
    .expect("worker blocked on the order");
    // A second worker polls the same queue; the message stays hidden from it while the first
    // one holds it.
    let mut second = spawn_worker_with(&h, Visibility::Default);
    first.kill().expect("kill -9");
    first.wait().expect("reaped");
    let killed_at = std::time::Instant::now();
    blocker.rollback().await.expect("release");

    // With the old 60 s visibility (renewed every 20 s) the message stayed hidden for 40–60 s
    // after the kill; with 15 s (renewed every 5 s) it is back within 15 s.
    h.wait_status(event.order_id, "invoiced", Duration::from_secs(35))
        .await;
    println!(
        "the killed worker's message was handled by the other {:.1} s after the kill",
        killed_at.elapsed().as_secs_f64()
    );
    assert_eq!(h.count("SELECT count(*) FROM invoices").await, 1);

    Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status()
        .expect("SIGTERM");
    assert!(second.wait().expect("exit").success());
}

#[tokio::test]
async fn a_worker_killed_after_numbering_issues_the_same_number_when_the_message_comes_back() {
    let h = harness().await;
    let event = h.place_order().await;
    // Stop the worker between numbering (committed) and issuing: its inbox insert waits.
    let held = hold_inbox(&h, event.event_id).await;
    h.send(&[serde_json::to_string(&event).expect("json")])
        .await;
    let mut worker = spawn_worker(&h);
    wait_numbered_and_waiting(&h, event.order_id).await;
    worker.kill().expect("kill -9");
    worker.wait().expect("reaped");
    held.rollback().await.expect("release");
    assert_eq!(invoice_of(&h, event.order_id).await, (1, false));

    let mut worker = spawn_worker(&h);
    h.wait_status(event.order_id, "invoiced", Duration::from_secs(30))
        .await;
    Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .expect("SIGTERM");
    assert!(worker.wait().expect("exit").success());

    assert_eq!(
        invoice_of(&h, event.order_id).await,
        (1, true),
        "the number taken before the kill, now with its PDF"
    );
    assert_eq!(
        h.count("SELECT last_seq FROM invoice_counters").await,
        1,
        "no second number taken"
    );
    assert_eq!(
        h.count("SELECT count(*) FROM outbox WHERE event_type = 'invoice.generated'")
            .await,
        1
    );
}
