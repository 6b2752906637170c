//! Each e-mail as close to once as SMTP allows: the intent committed before the send, the
//! server's answer recorded right after it in a transaction retried through a database outage,
//! redeliveries that find the intent, and two deliveries at once. Real PostgreSQL and the SMTP
//! sink; the sink's `hold*` switch keeps the server's `250` back until the test lets it go, so
//! the database can be taken away exactly between the server's having the e-mail and the
//! worker's hearing so.

use std::time::Duration;

use domain::EventEnvelope;
use email_service::{
    answers::Answers,
    claims::Claims,
    store::{OrderEmailClaim, Recorded, SentEmail},
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use worker::{Disposition, Poller};

use crate::helpers::{Harness, harness, wait_stored};

#[tokio::test]
async fn postgres_going_away_right_after_the_server_accepted_costs_no_second_email() {
    let h = harness(4).await;
    let (envelope, address) = h.order_to("hold").await;
    testkit::orders::send_bodies(
        &h.sqs,
        h.queues.url("email"),
        &[serde_json::to_string(&envelope).expect("body")],
    )
    .await
    .expect("sent to the queue");
    let settings = h.settings(&[]);
    let worker_pool = testkit::pool(&h.db_url, 4).await.expect("worker pool");
    let poller = Poller::connect_on(&settings, worker_pool, h.handler(30))
        .await
        .expect("worker");
    let stop = CancellationToken::new();
    let worker = tokio::spawn(poller.run(stop.clone()));

    // The server has the e-mail and holds its answer; the database goes away; then the answer.
    wait_stored(&h, &address, 1).await;
    h.database_away().await;
    h.sink.release_held().expect("release");
    // A restart of a few seconds: the worker keeps trying to record the answer meanwhile.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let back_at = h.database_back().await;

    testkit::wait_drained(&h.sqs, h.queues.url("email"), Duration::from_secs(30))
        .await
        .expect("the message is deleted");
    stop.cancel();
    worker.await.expect("worker stops");
    let message_id = format!("{}@chargeflow.example", envelope.event_id);
    assert_eq!(h.message_ids_to(&address), [message_id], "exactly one copy");
    assert_eq!(
        h.intent(envelope.event_id).await,
        (1, true),
        "one attempt, answered"
    );
    let sent = "SELECT count(*) FROM sent_emails WHERE event_id = $1 AND status = 'sent'";
    assert_eq!(h.count(sent, envelope.event_id).await, 1);
    let timeline =
        "SELECT count(*) FROM order_timeline WHERE order_id = $1 AND event_type = 'email.sent'";
    assert_eq!(h.count(timeline, envelope.order_id).await, 1);
    assert!(h.in_inbox(envelope.event_id).await);
    let answered_at: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT answered_at FROM email_intents WHERE event_id = $1")
            .bind(envelope.event_id)
            .fetch_one(&h.pool)
            .await
            .expect("answered");
    assert!(
        answered_at > back_at,
        "the answer, which came while the database was away, was recorded after it returned"
    );
}

#[tokio::test]
async fn an_intent_without_an_answer_is_sent_once_more_with_its_message_id_and_an_answered_one_not_at_all()
 {
    let h = harness(4).await;
    let handler = h.handler(30);
    // A worker killed after the server accepted: the intent (made when the shop's sender domain
    // was another) is committed, its answer is not, and its holder's time is over.
    let (killed, killed_to) = h.order_to("killed").await;
    let first_id = format!("<{}@old.example>", killed.event_id);
    write_intent(&h, &killed, &first_id, "now() - interval '1 second'", false).await;
    // One whose answer was recorded, but whose inbox row was not (the inbox had no part in it).
    let (answered, answered_to) = h.order_to("answered").await;
    let answered_id = format!("<{}@chargeflow.example>", answered.event_id);
    write_intent(&h, &answered, &answered_id, "now()", true).await;

    assert_eq!(h.process(&handler, &killed).await, Disposition::Done);
    assert_eq!(h.process(&handler, &answered).await, Disposition::Done);

    assert_eq!(
        h.message_ids_to(&killed_to),
        [format!("{}@old.example", killed.event_id)],
        "one more copy, with the intent's Message-ID"
    );
    assert_eq!(h.intent(killed.event_id).await, (2, true));
    let sent = "SELECT count(*) FROM sent_emails WHERE event_id = $1";
    assert_eq!(h.count(sent, killed.event_id).await, 1);
    assert!(h.message_ids_to(&answered_to).is_empty(), "nothing sent");
    assert_eq!(h.intent(answered.event_id).await, (1, true));
    assert!(h.in_inbox(killed.event_id).await && h.in_inbox(answered.event_id).await);

    // A redelivery after that finds the inbox row and sends nothing either.
    assert_eq!(h.process(&handler, &killed).await, Disposition::Duplicate);
    assert_eq!(h.message_ids_to(&killed_to).len(), 1);
}

#[tokio::test]
async fn a_delivery_finding_the_intent_held_sends_nothing_and_comes_back_when_the_hold_ends() {
    let h = harness(4).await;
    let handler = h.handler(30);
    let (envelope, address) = h.order_to("held").await;
    let message_id = format!("<{}@chargeflow.example>", envelope.event_id);
    write_intent(
        &h,
        &envelope,
        &message_id,
        "now() + interval '20 seconds'",
        false,
    )
    .await;

    let decided = h.process(&handler, &envelope).await;

    let Disposition::Retry {
        after: Some(after), ..
    } = decided
    else {
        panic!("retried after the hold: {decided:?}");
    };
    assert!(
        after > Duration::from_secs(10) && after <= Duration::from_secs(20),
        "{after:?}"
    );
    assert!(h.message_ids_to(&address).is_empty());
    assert_eq!(h.intent(envelope.event_id).await, (1, false));
    assert!(!h.in_inbox(envelope.event_id).await);
}

#[tokio::test]
async fn two_deliveries_of_one_event_at_once_send_one_email() {
    let h = harness(6).await;
    let handler = std::sync::Arc::new(h.handler(30));
    let (envelope, address) = h.order_to("hold").await;
    let first = h.spawn_process(&handler, &envelope, Duration::from_secs(30));
    // The first delivery is talking to the server (which holds its answer) when the second comes.
    wait_stored(&h, &address, 1).await;

    let second = h.process(&handler, &envelope).await;
    h.sink.release_held().expect("release");
    let first = first.await.expect("first delivery");

    assert_eq!(first, Disposition::Done);
    assert!(
        matches!(second, Disposition::Retry { after: Some(_), .. }),
        "{second:?}"
    );
    assert_eq!(h.process(&handler, &envelope).await, Disposition::Duplicate);
    assert_eq!(h.message_ids_to(&address).len(), 1);
    assert_eq!(h.intent(envelope.event_id).await, (1, true));
}

#[tokio::test]
async fn no_pool_connection_is_held_while_the_server_talks() {
    // One pool of one connection for the worker and the test.
    let h = harness(1).await;
    let handler = std::sync::Arc::new(h.handler(30));
    let (envelope, address) = h.order_to("hold").await;
    let delivery = h.spawn_process(&handler, &envelope, Duration::from_secs(30));
    wait_stored(&h, &address, 1).await;

    // The server holds its answer: the worker is in the SMTP conversation, and the pool's only
    // connection is idle (`try_acquire` never waits and never opens one).
    let mut free = None;
    testkit::eventually(
        "the pool's connection to be idle",
        Duration::from_secs(10),
        || {
            free = h.pool.try_acquire();
            std::future::ready(free.is_some())
        },
    )
    .await
    .expect("no connection held across the SMTP call");
    let mut conn = free.expect("connection");
    sqlx::query("SELECT 1")
        .execute(&mut *conn)
        .await
        .expect("usable");
    drop(conn);
    h.sink.release_held().expect("release");

    assert_eq!(delivery.await.expect("delivery"), Disposition::Done);
    assert_eq!(h.message_ids_to(&address).len(), 1);
}

#[tokio::test]
async fn past_the_retry_bound_the_email_is_sent_again_once_with_the_same_message_id() {
    let h = harness(4).await;
    // A 5 s handler timeout: the answer is retried until 1 s before it.
    let handler = std::sync::Arc::new(h.handler(5));
    let (envelope, address) = h.order_to("hold").await;
    let first = h.spawn_process(&handler, &envelope, Duration::from_secs(5));
    wait_stored(&h, &address, 1).await;
    h.database_away().await;
    h.sink.release_held().expect("release");
    let first = first.await.expect("first delivery");
    h.database_back().await;
    assert!(
        matches!(&first, Disposition::Retry { reason, .. } if reason.contains("could not be recorded")),
        "{first:?}"
    );

    // The message comes back once the first delivery's hold is over.
    let held_until =
        "SELECT count(*) FROM email_intents WHERE event_id = $1 AND claimed_until < now()";
    testkit::eventually("the hold to end", Duration::from_secs(10), || async {
        h.count(held_until, envelope.event_id).await == 1
    })
    .await
    .expect("hold over");
    assert_eq!(h.process(&handler, &envelope).await, Disposition::Done);

    let message_id = format!("{}@chargeflow.example", envelope.event_id);
    assert_eq!(
        h.message_ids_to(&address),
        [message_id.clone(), message_id],
        "the one repeat the window allows, with the same Message-ID"
    );
    assert_eq!(h.intent(envelope.event_id).await, (2, true));
    let sent = "SELECT count(*) FROM sent_emails WHERE event_id = $1";
    assert_eq!(h.count(sent, envelope.event_id).await, 1);
}

#[tokio::test]
async fn a_sign_in_request_gets_one_outcome_and_at_most_one_email_whatever_comes_again() {
    let h = harness(4).await;
    let handler = h.handler(30);
    let (order, address) = h.order_to("signin").await;
    let with_orders = sign_in_request(&h, &address).await;
    let without_orders = sign_in_request(&h, "nobody@example.com").await;

    assert_eq!(h.process(&handler, &with_orders).await, Disposition::Done);
    assert_eq!(
        h.process(&handler, &without_orders).await,
        Disposition::Done
    );
    // Deliveries that come again before their inbox row commits (simulated by deleting it),
    // after the address without orders placed one.
    sqlx::query("DELETE FROM inbox WHERE consumer = 'email'")
        .execute(&h.pool)
        .await
        .expect("inbox emptied");
    sqlx::query("UPDATE customers SET email = 'nobody@example.com' WHERE id = (SELECT customer_id FROM orders WHERE id = $1)")
        .bind(order.order_id)
        .execute(&h.pool)
        .await
        .expect("the address has orders now");
    assert_eq!(h.process(&handler, &with_orders).await, Disposition::Done);
    assert_eq!(
        h.process(&handler, &without_orders).await,
        Disposition::Done
    );

    for (request, outcome) in [(&with_orders, "sent"), (&without_orders, "no_orders")] {
        let recorded: Option<String> =
            sqlx::query_scalar("SELECT mail_outcome FROM sign_in_requests WHERE id = $1")
                .bind(request.order_id)
                .fetch_one(&h.pool)
                .await
                .expect("outcome");
        assert_eq!(
            recorded.as_deref(),
            Some(outcome),
            "the first outcome stays"
        );
    }
    let mails = h.sink.messages().expect("mails");
    assert_eq!(mails.len(), 1, "one sign-in e-mail: {mails:?}");
    assert_eq!(
        mails[0].message_id,
        format!("{}@chargeflow.example", with_orders.event_id)
    );
}

#[tokio::test]
async fn an_answer_whose_commit_went_through_unseen_is_not_written_again_when_retried() {
    let h = harness(2).await;
    let (envelope, _) = h.order_to("unseen").await;
    let message_id = format!("<{}@chargeflow.example>", envelope.event_id);
    write_intent(
        &h,
        &envelope,
        &message_id,
        "now() + interval '20 seconds'",
        false,
    )
    .await;
    let sent = answer_to(&envelope, &message_id);
    let answers = Answers::start(h.pool.clone());

    let first = answers.run(sent.clone()).await.expect("recorded");
    let retried = answers.run(sent).await.expect("retried");

    assert_eq!((first, retried), (Recorded::Now, Recorded::Before));
    assert!(
        h.in_inbox(envelope.event_id).await,
        "the inbox row is written with the answer"
    );
    let rows = "SELECT count(*) FROM sent_emails WHERE event_id = $1";
    assert_eq!(h.count(rows, envelope.event_id).await, 1);
    let timeline =
        "SELECT count(*) FROM order_timeline WHERE order_id = $1 AND event_type = 'email.sent'";
    assert_eq!(h.count(timeline, envelope.order_id).await, 1);
}

#[tokio::test]
async fn an_event_in_the_inbox_without_an_intent_is_neither_claimed_nor_sent() {
    // Handled by a release before e-mail intents, or its inbox row written some other way.
    let h = harness(4).await;
    let handler = h.handler(30);
    let (envelope, address) = h.order_to("handled").await;
    sqlx::query("INSERT INTO inbox (consumer, event_id) VALUES ('email', $1)")
        .bind(envelope.event_id)
        .execute(&h.pool)
        .await
        .expect("inbox row");

    assert_eq!(h.process(&handler, &envelope).await, Disposition::Duplicate);

    assert!(h.message_ids_to(&address).is_empty(), "nothing sent");
    let intents = "SELECT count(*) FROM email_intents WHERE event_id = $1";
    assert_eq!(
        h.count(intents, envelope.event_id).await,
        0,
        "nothing claimed"
    );
}

/// Writes an intent for the event held until `claimed_until` (SQL), answered or not (with its
/// `sent_emails` row when answered).
#[tokio::test]
async fn answers_that_come_together_are_recorded_by_one_statement_each_told_its_own_result() {
    let h = harness(4).await;
    let mut answers_given = Vec::new();
    for n in 0..10 {
        // The last one's answer was recorded by an earlier attempt.
        answers_given.push(sent_and_unrecorded(&h, &format!("together{n}"), n == 9).await);
    }
    let answers = Answers::start(h.pool.clone());

    // All ten are queued before the recorder runs (this test's runtime has one thread).
    let results =
        futures::future::join_all(answers_given.iter().map(|a| answers.run(a.clone()))).await;

    let results: Vec<Recorded> = results.into_iter().map(|r| r.expect("recorded")).collect();
    let mut expected = vec![Recorded::Now; 9];
    expected.push(Recorded::Before);
    assert_eq!(results, expected);
    let ids: Vec<Uuid> = answers_given.iter().map(|a| a.event_id).collect();
    let (writers, inbox_rows): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(DISTINCT xmin::text) FROM email_intents WHERE event_id = ANY($2)),
                (SELECT count(*) FROM inbox WHERE consumer = 'email' AND event_id = ANY($1))",
    )
    .bind(&ids)
    .bind(&ids[..9])
    .fetch_one(&h.pool)
    .await
    .expect("counts");
    assert_eq!(
        writers, 1,
        "the nine answers were written by one transaction"
    );
    assert_eq!(
        inbox_rows, 10,
        "every event is handled, the one answered before too"
    );
    let sent = "SELECT count(*) FROM sent_emails WHERE event_id = $1";
    for id in ids {
        assert_eq!(h.count(sent, id).await, 1, "one record per e-mail");
    }
}

#[tokio::test]
async fn an_answer_that_cannot_be_recorded_fails_alone_and_its_batch_mates_are_recorded() {
    let h = harness(4).await;
    let mut answers_given = Vec::new();
    for n in 0..3 {
        answers_given.push(sent_and_unrecorded(&h, &format!("mates{n}"), false).await);
    }
    // An order e-mail without its order breaks `sent_emails_order_check`: it can never be
    // recorded.
    answers_given[1].order_id = None;
    let answers = Answers::start(h.pool.clone());

    let results =
        futures::future::join_all(answers_given.iter().map(|a| answers.run(a.clone()))).await;

    assert_eq!(results[0].as_ref().ok(), Some(&Recorded::Now));
    assert_eq!(results[2].as_ref().ok(), Some(&Recorded::Now));
    let error = results[1].as_ref().expect_err("the broken answer fails");
    let code = match error.as_ref() {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        other => panic!("not a database error: {other}"),
    };
    assert_eq!(
        code.as_deref(),
        Some("23514"),
        "the check constraint's error"
    );
    assert!(h.in_inbox(answers_given[0].event_id).await);
    assert!(h.in_inbox(answers_given[2].event_id).await);
    assert!(
        !h.in_inbox(answers_given[1].event_id).await,
        "nothing of the broken answer is written"
    );
    assert_eq!(
        h.intent(answers_given[1].event_id).await,
        (1, false),
        "still unanswered"
    );
}

/// An order whose confirmation e-mail's intent is held (its delivery is sending), and the
/// server's acceptance of it; with `recorded_before`, an earlier attempt recorded it already.
async fn sent_and_unrecorded(h: &Harness, local_prefix: &str, recorded_before: bool) -> SentEmail {
    let (envelope, _) = h.order_to(local_prefix).await;
    let message_id = format!("<{}@chargeflow.example>", envelope.event_id);
    let held = "now() + interval '20 seconds'";
    write_intent(h, &envelope, &message_id, held, recorded_before).await;
    answer_to(&envelope, &message_id)
}

/// The server's acceptance of the order confirmation of `envelope`.
fn answer_to(envelope: &EventEnvelope, message_id: &str) -> SentEmail {
    SentEmail {
        event_id: envelope.event_id,
        order_id: Some(envelope.order_id),
        sign_in_request: None,
        kind: "order_confirmation".into(),
        message_id: message_id.into(),
        status: "sent",
        smtp_response: "250 2.0.0 OK: queued".into(),
    }
}

async fn write_intent(
    h: &Harness,
    event: &EventEnvelope,
    message_id: &str,
    claimed_until: &str,
    answered: bool,
) {
    let answered_at = if answered { "now()" } else { "NULL" };
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO email_intents (event_id, message_id, claimed_until, answered_at)
         VALUES ($1, $2, {claimed_until}, {answered_at})"
    )))
    .bind(event.event_id)
    .bind(message_id)
    .execute(&h.pool)
    .await
    .expect("intent");
    if answered {
        sqlx::query(
            "INSERT INTO sent_emails (event_id, order_id, kind, message_id, status)
             VALUES ($1, $2, 'order_confirmation', $3, 'sent')",
        )
        .bind(event.event_id)
        .bind(event.order_id)
        .bind(message_id)
        .execute(&h.pool)
        .await
        .expect("answer");
    }
}

/// A sign-in request for `address`, valid for 15 minutes, and its event.
async fn sign_in_request(h: &Harness, address: &str) -> EventEnvelope {
    let id = Uuid::now_v7();
    let expires_at = chrono::Utc::now() + chrono::Duration::minutes(15);
    sqlx::query("INSERT INTO sign_in_requests (id, email, expires_at) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(address)
        .bind(expires_at)
        .execute(&h.pool)
        .await
        .expect("sign-in request");
    EventEnvelope::new(
        domain::EventType::SignInRequested,
        id,
        "test",
        "",
        &serde_json::json!({ "expires_at": expires_at }),
    )
    .expect("envelope")
}

#[tokio::test]
async fn a_delivery_renews_its_short_hold_while_it_works_and_a_dead_one_lets_go_within_it() {
    let h = harness(4).await;
    let handler = std::sync::Arc::new(h.handler(30));
    let (envelope, address) = h.order_to("hold").await;
    let delivery = h.spawn_process(&handler, &envelope, Duration::from_secs(30));
    // The server holds its answer: the delivery is at work past a third of its hold.
    wait_stored(&h, &address, 1).await;
    let hold = email_service::delivery::INTENT_HOLD;
    tokio::time::sleep(hold / 2).await;

    // Killed (dropped mid-conversation: no release, no more renewals).
    delivery.abort();
    let left: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM claimed_until - clock_timestamp())::float8
         FROM email_intents WHERE event_id = $1",
    )
    .bind(envelope.event_id)
    .fetch_one(&h.pool)
    .await
    .expect("intent");
    h.sink.release_held().expect("release");

    // Renewed at a third of the hold (without, half of it would be left) and never the handler's
    // timeout (30 s): the message of a killed worker finds the intent free within the hold.
    let hold_s = hold.as_secs_f64();
    assert!(
        left > hold_s * 0.6 && left <= hold_s,
        "{left:.1} s of the hold left"
    );
}

#[tokio::test]
async fn claims_that_come_together_are_made_by_one_statement_each_told_its_own_event() {
    let h = harness(4).await;
    let mut envelopes = Vec::new();
    for n in 0..8 {
        envelopes.push(h.order_to(&format!("claims{n}")).await.0);
    }
    // 5: handled (inbox row), 6: answered by an earlier attempt, 7: held by another delivery.
    sqlx::query("INSERT INTO inbox (consumer, event_id) VALUES ('email', $1)")
        .bind(envelopes[5].event_id)
        .execute(&h.pool)
        .await
        .expect("inbox row");
    let earlier = |e: &EventEnvelope| format!("<{}@earlier.example>", e.event_id);
    write_intent(&h, &envelopes[6], &earlier(&envelopes[6]), "now()", true).await;
    let held = "now() + interval '20 seconds'";
    write_intent(&h, &envelopes[7], &earlier(&envelopes[7]), held, false).await;
    // 0 asked for twice: one of the two claims it.
    let mut asked: Vec<OrderEmailClaim> = envelopes.iter().map(claim_of).collect();
    asked.push(claim_of(&envelopes[0]));
    let claims = Claims::start(h.pool.clone());

    // All nine are queued before the task runs (this test's runtime has one thread).
    let found = futures::future::join_all(asked.iter().map(|c| claims.run(c.clone()))).await;

    let found: Vec<_> = found.into_iter().map(|f| f.expect("claimed")).collect();
    for (n, f) in found.iter().enumerate().take(5) {
        let order = f.order.as_ref().expect("the order's data");
        assert!(
            order.email.starts_with(&format!("claims{n}-")),
            "its own order"
        );
        assert!(!f.lines.is_empty(), "its lines");
    }
    let claimed: Vec<Option<i32>> = found
        .iter()
        .map(|f| f.claimed.as_ref().map(|c| c.0))
        .collect();
    assert_eq!(
        claimed,
        [
            Some(1),
            Some(1),
            Some(1),
            Some(1),
            Some(1),
            None,
            None,
            None,
            None
        ],
        "a first attempt for each free event, nothing for the handled, answered, held one, and \
         nothing for the second request of the same event"
    );
    let handled: Vec<bool> = found.iter().map(|f| f.handled).collect();
    assert_eq!(
        handled,
        [false, false, false, false, false, true, false, false, false]
    );
    assert_eq!(
        found[1].claimed.as_ref().map(|c| c.1.clone()),
        Some(asked[1].message_id.clone()),
        "a first attempt carries the Message-ID it asked with"
    );
    let ids: Vec<Uuid> = envelopes[..5].iter().map(|e| e.event_id).collect();
    let writers: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT xmin::text) FROM email_intents WHERE event_id = ANY($1)",
    )
    .bind(&ids)
    .fetch_one(&h.pool)
    .await
    .expect("count");
    assert_eq!(
        writers, 1,
        "the five intents were written by one transaction"
    );
    assert_eq!(
        h.intent(envelopes[7].event_id).await,
        (1, false),
        "the held one is untouched"
    );
}

#[tokio::test]
async fn a_claim_of_an_order_that_is_gone_or_an_invoice_not_issued_claims_nothing() {
    let h = harness(4).await;
    let (placed, _) = h.order_to("gone").await;
    let mut missing = claim_of(&placed);
    missing.event_id = Uuid::now_v7();
    missing.order_id = Uuid::now_v7();
    let mut no_invoice = claim_of(&placed);
    no_invoice.with_invoice = true;
    let claims = Claims::start(h.pool.clone());

    let found =
        futures::future::join_all([missing.clone(), no_invoice.clone()].map(|c| claims.run(c)))
            .await;

    let found: Vec<_> = found.into_iter().map(|f| f.expect("read")).collect();
    assert!(found[0].order.is_none() && found[0].claimed.is_none());
    assert!(found[1].order.is_some() && found[1].invoice.is_none());
    assert!(
        found[1].claimed.is_none(),
        "no intent before the invoice is there"
    );
    let intents = "SELECT count(*) FROM email_intents WHERE event_id = $1";
    assert_eq!(h.count(intents, placed.event_id).await, 0);
}

/// The claim of the order confirmation of `envelope`, held 10 s.
pub(crate) fn claim_of(envelope: &EventEnvelope) -> OrderEmailClaim {
    OrderEmailClaim {
        event_id: envelope.event_id,
        order_id: envelope.order_id,
        with_invoice: false,
        message_id: format!("<{}@chargeflow.example>", envelope.event_id),
        hold: Duration::from_secs(10),
    }
}
