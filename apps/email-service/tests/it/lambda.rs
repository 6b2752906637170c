//! The email binary under a stand-in Lambda Runtime API. The transient failure is the SMTP
//! server's `451 4.7.1` for one recipient: the sink greylists a local part starting with
//! `greylist` the first time it sees the address and accepts it afterwards.

use testkit::{
    lambda_api::{self, Function},
    smtp::SmtpSink,
};
use uuid::Uuid;

const TEMPLATES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/templates");

/// A fresh database and queue set ([`testkit::Backends`]) and an SMTP sink.
struct Harness {
    backends: testkit::Backends,
    sink: SmtpSink,
}

impl std::ops::Deref for Harness {
    type Target = testkit::Backends;

    fn deref(&self) -> &testkit::Backends {
        &self.backends
    }
}

async fn harness() -> Harness {
    let backends = testkit::Backends::start(5)
        .await
        .expect("database and queues");
    let sink = SmtpSink::start().await.expect("SMTP sink");
    Harness { backends, sink }
}

impl Harness {
    fn overrides(&self) -> Vec<(&'static str, String)> {
        let mut overrides = testkit::worker_overrides(&self.db_url, &self.endpoint, &self.queues);
        overrides.extend([
            ("APP__SMTP__HOST", "127.0.0.1".to_owned()),
            ("APP__SMTP__PORT", self.sink.port().to_string()),
            ("APP__SMTP__TEMPLATES_DIR", TEMPLATES.to_owned()),
        ]);
        overrides
    }

    /// The customer's address of an order.
    async fn email_of(&self, order_id: Uuid) -> String {
        sqlx::query_scalar(
            "SELECT c.email FROM customers c JOIN orders o ON o.customer_id = c.id WHERE o.id = $1",
        )
        .bind(order_id)
        .fetch_one(&self.pool)
        .await
        .expect("customer")
    }

    /// Mails the sink received for `address`.
    fn mails_to(&self, address: &str) -> usize {
        let mails = self.sink.messages().expect("mails");
        mails.iter().filter(|m| m.to == address).count()
    }

    async fn sent_rows(&self, event_id: Uuid) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM sent_emails WHERE event_id = $1")
            .bind(event_id)
            .fetch_one(&self.pool)
            .await
            .expect("sent_emails")
    }
}

#[tokio::test]
async fn the_email_binary_under_a_lambda_runtime_answers_a_batch_with_the_right_failures() {
    let h = harness().await;
    let good = testkit::orders::insert_order(&h.pool).await.expect("order");
    let duplicate = testkit::orders::insert_order(&h.pool).await.expect("order");
    let greylisted = testkit::orders::insert_order(&h.pool).await.expect("order");
    sqlx::query(
        "UPDATE customers SET email = 'greylist-' || email
         WHERE id = (SELECT customer_id FROM orders WHERE id = $1)",
    )
    .bind(greylisted.order_id)
    .execute(&h.pool)
    .await
    .expect("greylisted customer");
    let (good_to, duplicate_to, greylisted_to) = (
        h.email_of(good.order_id).await,
        h.email_of(duplicate.order_id).await,
        h.email_of(greylisted.order_id).await,
    );
    let batch = lambda_api::Batch::send(
        &h.pool,
        &h.sqs,
        &h.queues,
        "email",
        [&good, &duplicate, &greylisted],
    )
    .await
    .expect("batch");

    let binary = lambda_api::function_binary("email-service", env!("CARGO_BIN_EXE_email-service"));
    let mut env = h.overrides();
    env.push(("RUST_LOG", "warn".into()));
    let mut function = Function::start(&binary, &env)
        .await
        .expect("function process");
    let failures = function.invoke(batch.event.clone()).await;

    assert_eq!(
        failures,
        [batch.transient_id()],
        "only the transient failure (451) is retried"
    );
    assert_eq!(h.mails_to(&good_to), 1, "one e-mail for the good record");
    assert_eq!(h.sent_rows(good.event_id).await, 1);
    assert_eq!(
        h.mails_to(&duplicate_to),
        0,
        "the already processed event sent nothing"
    );
    assert_eq!(h.sent_rows(duplicate.event_id).await, 0);
    assert_eq!(h.mails_to(&greylisted_to), 0);
    assert_eq!(h.sent_rows(greylisted.event_id).await, 0);
    assert_eq!(h.sink.messages().expect("mails").len(), 1);
    lambda_api::assert_parked_alone(&h.sqs, h.queues.dlq("email"), "{not json").await;

    // The sink has seen the address now and accepts it: Lambda hands the same warm function the
    // retried record alone.
    let failures = function
        .invoke(lambda_api::redelivery(&[&batch.transient]))
        .await;
    function.stop();
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(h.mails_to(&greylisted_to), 1, "one e-mail once accepted");
    assert_eq!(h.mails_to(&good_to), 1);
    assert_eq!(h.mails_to(&duplicate_to), 0);
    assert_eq!(h.sink.messages().expect("mails").len(), 2);
    let message_ids: std::collections::HashSet<String> = h
        .sink
        .messages()
        .expect("mails")
        .into_iter()
        .map(|m| m.message_id)
        .collect();
    assert_eq!(
        message_ids,
        [good.event_id, greylisted.event_id]
            .iter()
            .map(|id| format!("{id}@chargeflow.example"))
            .collect(),
        "each e-mail carries its event's Message-ID"
    );
    assert_eq!(
        testkit::scalar(
            &h.pool,
            "SELECT count(*) FROM sent_emails WHERE status = 'sent'"
        )
        .await,
        2
    );
}
