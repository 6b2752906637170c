//! Measures the window the once-only sending leaves: from the SMTP server's answer to the commit
//! of its record ([`Delivered::Sent::window`]); a kill inside it sends the e-mail once more.
//! Prints p50, p99 and the largest over a few hundred e-mails, one at a time and ten at once;
//! asserts only that every e-mail went out once (times are never asserted).

use std::{sync::Arc, time::Duration};

use domain::{Event, EventEnvelope};
use email_service::{EmailHandler, delivery::Delivered};
use sqlx::PgPool;

use crate::helpers::harness;

const EMAILS: usize = 300;
const AT_ONCE: usize = 10;

#[tokio::test]
async fn the_window_between_the_servers_answer_and_its_record_is_measured() {
    let h = harness(AT_ONCE as u32).await;
    let handler = Arc::new(h.handler(30));
    let mut orders = Vec::new();
    for _ in 0..2 * EMAILS {
        orders.push(h.order_to("window").await.0);
    }
    let concurrent = orders.split_off(EMAILS);

    let mut one_at_a_time = Vec::new();
    for envelope in orders {
        one_at_a_time.push(window_of(&handler, &h.pool, envelope).await);
    }
    let ten_at_once = in_parallel(&handler, &h.pool, concurrent).await;

    println!(
        "e-mail window (server's answer → its record committed), {EMAILS} e-mails each:\n  \
         one at a time: {}\n  {AT_ONCE} at once:     {}",
        summary(one_at_a_time),
        summary(ten_at_once)
    );
    assert_eq!(h.sink.messages().expect("mails").len(), 2 * EMAILS);
    assert_eq!(
        testkit::scalar(
            &h.pool,
            "SELECT count(*) FROM email_intents WHERE attempts = 1 AND answered_at IS NOT NULL"
        )
        .await,
        (2 * EMAILS) as i64
    );
}

/// Sends the e-mails of `envelopes` from [`AT_ONCE`] tasks; their windows.
async fn in_parallel(
    handler: &Arc<EmailHandler>,
    pool: &PgPool,
    envelopes: Vec<EventEnvelope>,
) -> Vec<Duration> {
    let mut tasks = tokio::task::JoinSet::new();
    let per_task = envelopes.len().div_ceil(AT_ONCE);
    let mut envelopes = envelopes.into_iter();
    for _ in 0..AT_ONCE {
        let share: Vec<_> = envelopes.by_ref().take(per_task).collect();
        let (handler, pool) = (handler.clone(), pool.clone());
        tasks.spawn(async move {
            let mut windows = Vec::new();
            for envelope in share {
                windows.push(window_of(&handler, &pool, envelope).await);
            }
            windows
        });
    }
    let mut windows = Vec::new();
    while let Some(done) = tasks.join_next().await {
        windows.extend(done.expect("task"));
    }
    windows
}

async fn window_of(handler: &EmailHandler, pool: &PgPool, envelope: EventEnvelope) -> Duration {
    let event = Event::from_envelope(envelope).expect("event");
    match handler.deliver(&event, pool).await.expect("sent") {
        Delivered::Sent {
            status: "sent",
            attempt: 1,
            window,
        } => window,
        other => panic!("not sent once: {other:?}"),
    }
}

fn summary(mut windows: Vec<Duration>) -> String {
    windows.sort();
    let at = |q: f64| windows[((windows.len() - 1) as f64 * q).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (n = {})",
        ms(at(0.5)),
        ms(at(0.99)),
        ms(at(1.0)),
        windows.len()
    )
}
