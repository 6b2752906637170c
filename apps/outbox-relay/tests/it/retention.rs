//! Bounded tables: a running relay purges `inbox`, `idempotency_keys`, `stripe_events`,
//! `partner_events`, `sign_in_requests` and `session_grants` rows past their retention, keeps
//! the recent ones, publishes meanwhile, and never waits on a row another transaction holds (it
//! takes it at a later round).

use std::time::Duration;

use domain::EventType;
use uuid::Uuid;

use crate::helpers::{harness, kill_9};

/// Rows past and within their retention in each bounded table.
async fn seed(pool: &sqlx::PgPool) {
    let statements = [
        "INSERT INTO inbox (consumer, event_id, processed_at) VALUES
             ('invoice', '00000000-0000-7000-8000-000000000001', now() - interval '16 days'),
             ('email',   '00000000-0000-7000-8000-000000000002', now() - interval '16 days'),
             ('invoice', '00000000-0000-7000-8000-000000000003', now() - interval '14 days')",
        "INSERT INTO idempotency_keys (owner_session, idempotency_key, request_hash, created_at) VALUES
             (repeat('a', 64), 'old', 'h', now() - interval '25 hours'),
             (repeat('a', 64), 'recent', 'h', now() - interval '23 hours')",
        "INSERT INTO stripe_events (event_id, event_type, received_at) VALUES
             ('evt_old', 'payment_intent.succeeded', now() - interval '4 days'),
             ('evt_recent', 'payment_intent.succeeded', now() - interval '2 days')",
        "INSERT INTO partner_events (event_id, event_type, received_at) VALUES
             ('evt_old', 'shipment.delivered', now() - interval '4 days'),
             ('evt_recent', 'shipment.delivered', now() - interval '2 days')",
        "INSERT INTO sign_in_requests (id, email, created_at, expires_at) VALUES
             (gen_random_uuid(), 'old@example.com', now() - interval '26 hours', now() - interval '25 hours'),
             (gen_random_uuid(), 'recent@example.com', now() - interval '2 hours', now() - interval '1 hour')",
        "INSERT INTO customers (id, email, name) VALUES
             ('00000000-0000-7000-8000-0000000000c1', 'granted@example.com', 'Ada Lovelace')",
        "INSERT INTO session_grants (owner_session, customer_id, granted_at) VALUES
             (repeat('b', 64), '00000000-0000-7000-8000-0000000000c1', now() - interval '31 days'),
             (repeat('c', 64), '00000000-0000-7000-8000-0000000000c1', now() - interval '29 days')",
    ];
    for sql in statements {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(pool)
            .await
            .expect("seed");
    }
}

async fn keys(pool: &sqlx::PgPool, sql: &'static str) -> Vec<String> {
    sqlx::query_scalar(sql).fetch_all(pool).await.expect("keys")
}

#[tokio::test]
async fn the_relay_purges_rows_past_their_retention_keeps_recent_ones_and_skips_locked_ones() {
    let h = harness().await;
    seed(&h.pool).await;
    // A transaction holds one old inbox row (as a handler would, mid-message).
    let mut holder = h.pool.begin().await.unwrap();
    sqlx::query(
        "SELECT 1 FROM inbox WHERE event_id = '00000000-0000-7000-8000-000000000002' FOR UPDATE",
    )
    .execute(&mut *holder)
    .await
    .unwrap();

    let mut relay = h.spawn_relay_process_with(&[("APP__RELAY__PURGE_INTERVAL_S", "1")]);
    // The relay publishes as it purges.
    h.enqueue(Uuid::now_v7(), EventType::OrderPlaced).await;
    testkit::eventually("the old rows to go", Duration::from_secs(30), || async {
        keys(
            &h.pool,
            "SELECT event_id::text FROM inbox ORDER BY event_id",
        )
        .await
        .len()
            == 2
            && keys(&h.pool, "SELECT event_id FROM stripe_events").await == ["evt_recent"]
    })
    .await
    .expect("purged in time");
    h.wait_all_published(1, Duration::from_secs(30)).await;

    assert_eq!(
        keys(
            &h.pool,
            "SELECT event_id::text FROM inbox ORDER BY event_id"
        )
        .await,
        [
            "00000000-0000-7000-8000-000000000002",
            "00000000-0000-7000-8000-000000000003"
        ],
        "the held row waits, the 14-day-old one is kept (15 days by default)"
    );
    assert_eq!(
        keys(&h.pool, "SELECT idempotency_key FROM idempotency_keys").await,
        ["recent"]
    );
    assert_eq!(
        keys(&h.pool, "SELECT event_id FROM partner_events").await,
        ["evt_recent"]
    );
    assert_eq!(
        keys(&h.pool, "SELECT email FROM sign_in_requests").await,
        ["recent@example.com"],
        "a request expired a day ago goes with its address"
    );
    assert_eq!(
        keys(&h.pool, "SELECT owner_session FROM session_grants").await,
        ["c".repeat(64)]
    );

    holder.rollback().await.unwrap();
    testkit::eventually(
        "the released row to go",
        Duration::from_secs(30),
        || async {
            keys(&h.pool, "SELECT event_id::text FROM inbox")
                .await
                .len()
                == 1
        },
    )
    .await
    .expect("purged once released");
    kill_9(&mut relay);
}
