use std::time::Duration;

use outbox::Backoff;
use uuid::Uuid;

use crate::helpers::{Harness, harness, order_placed};

/// Two unpublished rows; the first failed once with `boom` and backs off for minutes.
async fn outbox_with_a_failed_row(h: &Harness) -> i64 {
    let mut conn = h.pool.acquire().await.expect("connection");
    let failing = order_placed(Uuid::now_v7());
    outbox::enqueue(&mut conn, &failing).await.expect("enqueue");
    outbox::enqueue(&mut conn, &order_placed(Uuid::now_v7()))
        .await
        .expect("enqueue");
    let id: i64 = sqlx::query_scalar("SELECT id FROM outbox WHERE event_id = $1")
        .bind(failing.event_id)
        .fetch_one(&h.pool)
        .await
        .expect("row");
    let backoff = Backoff {
        base: Duration::from_secs(300),
        max: Duration::from_secs(600),
    };
    outbox::record_failure(
        &mut conn,
        &[id],
        "SQS call `SendMessageBatch` failed: boom",
        backoff,
    )
    .await
    .expect("failure");
    id
}

async fn due_now(h: &Harness, id: i64) -> bool {
    sqlx::query_scalar("SELECT next_attempt_at <= now() FROM outbox WHERE id = $1")
        .bind(id)
        .fetch_one(&h.pool)
        .await
        .expect("row")
}

#[tokio::test]
async fn outbox_status_shows_the_backlog_its_age_and_the_failed_rows() {
    let h = harness().await;
    let empty = h.admin(&["outbox", "status"]).await;
    assert!(
        empty.ok().starts_with("unpublished rows    0\n"),
        "{}",
        empty.stdout
    );
    let id = outbox_with_a_failed_row(&h).await;

    let status = h.admin(&["outbox", "status"]).await;

    let text = status.ok();
    assert!(text.contains("unpublished rows    2\n"), "{text}");
    assert!(text.contains(" ago\n"), "the oldest row's age: {text}");
    assert!(
        text.contains("rows with failures  1 (most attempts: 1)"),
        "{text}"
    );
    assert!(
        text.contains(&format!("  {id} ")),
        "the failing row's id: {text}"
    );
    assert!(text.contains("SendMessageBatch` failed: boom"), "{text}");
    let json = h.admin(&["outbox", "status", "--json"]).await.json();
    assert_eq!(json["unpublished"], 2);
    assert_eq!(json["failing"], 1);
    assert_eq!(json["failing_rows"][0]["id"], id);
    assert_eq!(json["failing_rows"][0]["attempts"], 1);
}

#[tokio::test]
async fn outbox_retry_is_a_dry_run_without_yes_and_makes_failed_rows_due_with_it() {
    let h = harness().await;
    let id = outbox_with_a_failed_row(&h).await;

    let dry_run = h.admin(&["outbox", "retry"]).await;
    assert!(
        dry_run
            .ok()
            .starts_with("dry run: would make 1 failed outbox row due now (add --yes to do it)\n"),
        "{}",
        dry_run.stdout
    );
    assert!(!due_now(&h, id).await, "a dry run changes nothing");

    let retried = h
        .admin(&["outbox", "retry", "--id", &id.to_string(), "--yes"])
        .await;
    assert!(
        retried.ok().starts_with("made 1 failed outbox row due now"),
        "{}",
        retried.stdout
    );
    assert!(due_now(&h, id).await);
    let (attempts, last_error): (i32, Option<String>) =
        sqlx::query_as("SELECT attempts, last_error FROM outbox WHERE id = $1")
            .bind(id)
            .fetch_one(&h.pool)
            .await
            .expect("row");
    assert_eq!(attempts, 1, "the history stays");
    assert!(last_error.is_some());

    let unknown = h
        .admin(&["outbox", "retry", "--id", "999999", "--yes"])
        .await;
    assert_eq!(
        unknown.error(),
        "error: outbox row 999999 is not an unpublished row with failed attempts"
    );
}
