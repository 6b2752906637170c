//! The outbox's operator functions against a real PostgreSQL: what failed, and making it due
//! again; and what a claim leaves in the index of pending rows. (Claiming and publishing are
//! tested through the relay in `apps/outbox-relay`.)

use std::time::Duration;

use domain::{EventEnvelope, EventType};
use outbox::Backoff;
use sqlx::{PgPool, postgres::PgListener};
use uuid::Uuid;

/// A fresh database with two unpublished rows (of two orders); the first failed twice.
async fn outbox_with_a_failing_row() -> (String, PgPool, i64, i64) {
    let url = testkit::fresh_database().await.expect("fresh database");
    let pool = testkit::pool(&url, 3).await.expect("pool");
    let failing = write_event(&pool).await;
    let healthy = write_event(&pool).await;
    let backoff = Backoff {
        base: Duration::from_secs(60),
        max: Duration::from_secs(600),
    };
    let mut conn = pool.acquire().await.expect("connection");
    for error in ["SQS call failed: first", "SQS call failed: second"] {
        outbox::record_failure(&mut conn, &[failing], error, backoff)
            .await
            .expect("failure recorded");
    }
    (url, pool, failing, healthy)
}

async fn write_event(pool: &PgPool) -> i64 {
    let event = EventEnvelope::new(
        EventType::OrderPlaced,
        Uuid::now_v7(),
        "test",
        "",
        &serde_json::json!({}),
    )
    .expect("envelope");
    let mut conn = pool.acquire().await.expect("connection");
    outbox::enqueue(&mut conn, &event).await.expect("enqueue");
    sqlx::query_scalar("SELECT id FROM outbox WHERE event_id = $1")
        .bind(event.event_id)
        .fetch_one(pool)
        .await
        .expect("row id")
}

async fn due_now(pool: &PgPool, id: i64) -> bool {
    sqlx::query_scalar("SELECT next_attempt_at <= now() FROM outbox WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .expect("row")
}

#[tokio::test]
async fn failed_rows_are_listed_with_their_last_error_and_counted_in_the_backlog() {
    let (_url, pool, failing, _healthy) = outbox_with_a_failing_row().await;
    let mut conn = pool.acquire().await.expect("connection");

    let backlog = outbox::backlog(&mut conn).await.expect("backlog");
    assert_eq!(
        (backlog.pending, backlog.failing, backlog.max_attempts),
        (2, 1, 2)
    );
    let rows = outbox::failed(&mut conn, None, 10).await.expect("failed");
    assert_eq!(rows.len(), 1, "only the row that failed");
    assert_eq!(rows[0].id, failing);
    assert_eq!(rows[0].attempts, 2);
    assert_eq!(
        rows[0].last_error.as_deref(),
        Some("SQS call failed: second")
    );
    assert!(rows[0].next_attempt_at > chrono::Utc::now(), "backing off");
    assert!(
        outbox::failed(&mut conn, Some(failing + 100), 10)
            .await
            .expect("failed")
            .is_empty()
    );
}

#[tokio::test]
async fn retrying_failed_rows_makes_them_due_now_keeps_their_history_and_wakes_the_relays() {
    let (url, pool, failing, healthy) = outbox_with_a_failing_row().await;
    let mut listener = PgListener::connect(&url).await.expect("listener");
    listener
        .listen(outbox::NOTIFY_CHANNEL)
        .await
        .expect("listen");
    let mut conn = pool.acquire().await.expect("connection");

    let retried = outbox::retry_failed(&mut conn, None).await.expect("retry");

    assert_eq!(retried, vec![failing], "only failed rows are touched");
    assert!(due_now(&pool, failing).await);
    let row = &outbox::failed(&mut conn, Some(failing), 1)
        .await
        .expect("row")[0];
    assert_eq!(row.attempts, 2, "the attempts stay as history");
    assert_eq!(row.last_error.as_deref(), Some("SQS call failed: second"));
    tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .expect("a notification for the relays")
        .expect("notification");
    assert!(
        outbox::retry_failed(&mut conn, Some(healthy))
            .await
            .expect("retry")
            .is_empty(),
        "a row that never failed is not a failed row"
    );
}

#[tokio::test]
async fn retrying_one_failed_row_by_id_leaves_the_other_failed_rows_alone() {
    let (_url, pool, failing, healthy) = outbox_with_a_failing_row().await;
    let mut conn = pool.acquire().await.expect("connection");
    let backoff = Backoff {
        base: Duration::from_secs(60),
        max: Duration::from_secs(600),
    };
    outbox::record_failure(&mut conn, &[healthy], "SQS call failed", backoff)
        .await
        .expect("failure recorded");

    let retried = outbox::retry_failed(&mut conn, Some(healthy))
        .await
        .expect("retry");

    assert_eq!(retried, vec![healthy]);
    assert!(due_now(&pool, healthy).await);
    assert!(
        !due_now(&pool, failing).await,
        "the other row still backs off"
    );
}

/// Entries of the pending rows' index flagged dead (`LP_DEAD`: later scans skip them, and a
/// full page drops them instead of splitting).
async fn dead_pending_entries(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM generate_series(1, pg_relation_size('outbox_pending') / 8192 - 1) AS p,
                LATERAL bt_page_items('outbox_pending', p::int) AS item
         WHERE item.dead",
    )
    .fetch_one(pool)
    .await
    .expect("index pages read")
}

#[tokio::test]
async fn a_claim_flags_the_index_entries_of_published_rows_so_later_claims_skip_them() {
    let url = testkit::fresh_database().await.expect("fresh database");
    let pool = testkit::pool(&url, 3).await.expect("pool");
    for statement in [
        "CREATE EXTENSION pageinspect",
        "INSERT INTO outbox (event_id, event_type, aggregate_id, envelope)
         SELECT gen_random_uuid(), 'order.placed', gen_random_uuid(), '{}'
         FROM generate_series(1, 1000)",
        // Statistics taken while a twentieth was pending, as autovacuum takes them under load…
        "UPDATE outbox SET published_at = now() WHERE id % 20 <> 0",
        "ANALYZE outbox",
        // … then all published: out of the partial index's predicate, but their entries stay.
        "UPDATE outbox SET published_at = now() WHERE published_at IS NULL",
    ] {
        sqlx::query(statement)
            .execute(&pool)
            .await
            .expect(statement);
    }
    let pending = write_event(&pool).await;
    let flagged_before = dead_pending_entries(&pool).await;

    let mut tx = outbox::begin_claim(&pool).await.expect("claim begun");
    let outbox::Claimed::Batch(rows) = outbox::claim(&mut tx, 100).await.expect("claim") else {
        panic!("the pending row was not claimed");
    };
    tx.rollback().await.expect("rollback");

    assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), [pending]);
    // A bitmap or sequential scan (what the planner takes for these statistics) flags none.
    let flagged = dead_pending_entries(&pool).await - flagged_before;
    assert!(
        flagged >= 100,
        "the claim flagged {flagged} dead entries ({flagged_before} before)"
    );
}
