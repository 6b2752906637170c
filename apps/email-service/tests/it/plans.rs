//! The worker's statements are planned once per session (`connect_with_generic_plans`, as
//! main.rs makes its pool) and stay key lookups after its tables grew: a plan made while the
//! tables were empty (a new database) is the one used when they hold many rows. Counted by
//! `pg_stat_statements`: plannings per call, and the blocks one call reads, which a scan of a
//! grown table multiplies.

use email_service::{answers::Answers, claims::Claims, store::SentEmail};
use sqlx::PgPool;
use testkit::statements;

use crate::{
    helpers::{Harness, harness},
    once::claim_of,
};

/// Rows added behind the worker's back: a scan of `email_intents` or of the inbox would read
/// hundreds of blocks.
const GROWN: i64 = 20_000;

#[tokio::test]
async fn the_worker_pool_plans_the_claims_statement_once_per_session_not_at_every_call() {
    let h = harness(2).await;
    let claims = Claims::start(worker_pool(&h).await);
    let rounds = 12;
    for n in 0..rounds {
        let (envelope, _) = h.order_to(&format!("plans{n}")).await;
        let found = claims.run(claim_of(&envelope)).await.expect("claimed");
        assert!(found.claimed.is_some());
    }

    let counted = statements::counts(&h.pool, "WITH req AS%")
        .await
        .expect("the statement's counts");
    assert_eq!(counted.calls, rounds);
    // PostgreSQL's own choice planned it at every call (a custom plan for each array).
    assert_eq!(
        counted.plans, 1,
        "planned {} times for {} calls on one session",
        counted.plans, counted.calls
    );
}

#[tokio::test]
async fn claims_and_answers_planned_on_empty_tables_read_a_few_blocks_after_they_grew() {
    let h = harness(2).await;
    let pool = worker_pool(&h).await;
    let (claims, answers) = (Claims::start(pool.clone()), Answers::start(pool));
    // Planned now, on tables holding one order.
    claim_and_answer(&h, &claims, &answers, "empty").await;

    grow_the_tables(&h).await;
    statements::start_counting(&h.pool).await.expect("reset");
    claim_and_answer(&h, &claims, &answers, "grown").await;

    for statement in ["WITH req AS%", "WITH answer AS%"] {
        let counted = statements::counts(&h.pool, statement)
            .await
            .expect("the statement's counts");
        assert_eq!(counted.calls, 1, "{statement}");
        assert!(
            counted.blocks < 100,
            "{statement} read {} blocks for one e-mail: it scans a table",
            counted.blocks
        );
    }
}

/// The worker's pool as main.rs makes it, of one connection whose planning is counted, with
/// the counts started.
async fn worker_pool(h: &Harness) -> PgPool {
    statements::start_counting(&h.pool)
        .await
        .expect("pg_stat_statements");
    let url = statements::tracking_planning(&h.db_url);
    let settings = h.settings(&[
        ("APP__DATABASE__URL", &url),
        ("APP__DATABASE__MAX_CONNECTIONS", "1"),
    ]);
    settings
        .database
        .connect_with_generic_plans()
        .await
        .expect("worker pool")
}

/// One order e-mail claimed and its answer recorded, as the worker does.
async fn claim_and_answer(h: &Harness, claims: &Claims, answers: &Answers, prefix: &str) {
    let (envelope, _) = h.order_to(prefix).await;
    let claim = claim_of(&envelope);
    let found = claims.run(claim.clone()).await.expect("claimed");
    assert!(found.claimed.is_some());
    answers
        .run(SentEmail {
            event_id: envelope.event_id,
            order_id: Some(envelope.order_id),
            sign_in_request: None,
            kind: "order_confirmation".into(),
            message_id: claim.message_id,
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
