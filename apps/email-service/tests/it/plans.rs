//! The worker's statements stay key lookups after its tables grew: the worker plans each
//! statement once per session (`connect_with_generic_plans`), so a plan made while the tables
//! were empty (a new database) is the one used when they hold many rows. Measured by the
//! blocks one call reads (`pg_stat_statements`), which a scan of a grown table multiplies.

use std::time::Duration;

use email_service::{
    answers::Answers,
    claims::Claims,
    store::{OrderEmailClaim, SentEmail},
};

use crate::helpers::{Harness, harness};

/// Rows added behind the worker's back: a scan of `email_intents` or of the inbox would read
/// hundreds of blocks.
const GROWN: i64 = 20_000;

#[tokio::test]
async fn claims_and_answers_planned_on_empty_tables_read_a_few_blocks_after_they_grew() {
    let h = harness(2).await;
    sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .execute(&h.pool)
        .await
        .expect("pg_stat_statements");
    let settings = h.settings(&[("APP__DATABASE__MAX_CONNECTIONS", "1")]);
    let pool = settings
        .database
        .connect_with_generic_plans()
        .await
        .expect("worker pool");
    let (claims, answers) = (Claims::start(pool.clone()), Answers::start(pool));
    // Planned now, on tables holding one order.
    claim_and_answer(&h, &claims, &answers, "empty").await;

    grow_the_tables(&h).await;
    sqlx::query(
        "SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database
                                             WHERE datname = current_database()), 0)",
    )
    .execute(&h.pool)
    .await
    .expect("reset this database's counts");
    claim_and_answer(&h, &claims, &answers, "grown").await;

    for statement in ["WITH req AS%", "WITH answer AS%"] {
        let (calls, blocks): (i64, i64) = sqlx::query_as(
            "SELECT calls, (shared_blks_hit + shared_blks_read)::int8 FROM pg_stat_statements
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND query LIKE $1",
        )
        .bind(statement)
        .fetch_one(&h.pool)
        .await
        .expect("the statement's counts");
        assert_eq!(calls, 1, "{statement}");
        assert!(
            blocks < 100,
            "{statement} read {blocks} blocks for one e-mail: it scans a table"
        );
    }
}

/// One order e-mail claimed and its answer recorded, as the worker does.
async fn claim_and_answer(h: &Harness, claims: &Claims, answers: &Answers, prefix: &str) {
    let (envelope, _) = h.order_to(prefix).await;
    let message_id = format!("<{}@chargeflow.example>", envelope.event_id);
    let found = claims
        .run(OrderEmailClaim {
            event_id: envelope.event_id,
            order_id: envelope.order_id,
            with_invoice: false,
            message_id: message_id.clone(),
            hold: Duration::from_secs(10),
        })
        .await
        .expect("claimed");
    assert!(found.claimed.is_some());
    answers
        .run(SentEmail {
            event_id: envelope.event_id,
            order_id: Some(envelope.order_id),
            sign_in_request: None,
            kind: "order_confirmation".into(),
            message_id,
            status: "sent",
            smtp_response: "250 OK".into(),
        })
        .await
        .expect("recorded");
}

/// Answered intents and inbox rows of e-mails sent before, without new statistics (no
/// `ANALYZE`): what a worker started on a new database meets a minute later.
async fn grow_the_tables(h: &Harness) {
    sqlx::query(
        "WITH ids AS (SELECT gen_random_uuid() AS id FROM generate_series(1, $1)),
              intents AS (
                  INSERT INTO email_intents (event_id, message_id, claimed_until, answered_at)
                  SELECT id, '<' || id || '@grown.example>', now(), now() FROM ids
              )
         INSERT INTO inbox (consumer, event_id) SELECT 'email', id FROM ids",
    )
    .bind(GROWN)
    .execute(&h.pool)
    .await
    .expect("grown");
}
