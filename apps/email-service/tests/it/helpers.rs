//! What the once-only and window tests share: a fresh database and queues, a private SMTP sink,
//! the e-mail handler on them, orders to particular recipients, and a switch that makes the
//! test's database refuse connections (the database side of a PostgreSQL restart) without
//! touching the other tests' databases on the same server.

use std::time::Duration;

use domain::EventEnvelope;
use email_service::{EmailHandler, mailer::Mailer, templates::Templates};
use sqlx::{Connection, Executor, PgConnection};
use testkit::smtp::SmtpSink;
use uuid::Uuid;
use worker::Disposition;

const TEMPLATES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/templates");

/// A fresh database and queue set ([`testkit::Backends`]) and an SMTP sink.
pub struct Harness {
    pub backends: testkit::Backends,
    pub sink: SmtpSink,
}

impl std::ops::Deref for Harness {
    type Target = testkit::Backends;

    fn deref(&self) -> &testkit::Backends {
        &self.backends
    }
}

pub async fn harness(pool_size: u32) -> Harness {
    let backends = testkit::Backends::start(pool_size)
        .await
        .expect("database and queues");
    let sink = SmtpSink::start().await.expect("SMTP sink");
    Harness { backends, sink }
}

impl Harness {
    /// The worker's settings on this harness's database, queues and sink, with `extra` on top.
    pub fn settings(&self, extra: &[(&'static str, &str)]) -> settings::Settings {
        let mut overrides = testkit::worker_overrides(&self.db_url, &self.endpoint, &self.queues);
        overrides.extend([
            ("APP__SMTP__HOST", "127.0.0.1".to_owned()),
            ("APP__SMTP__PORT", self.sink.port().to_string()),
            ("APP__SMTP__TEMPLATES_DIR", TEMPLATES.to_owned()),
        ]);
        overrides.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        testkit::test_settings_from(&overrides)
    }

    /// The e-mail handler of a worker whose handler timeout is `handler_timeout_s`.
    pub fn handler(&self, handler_timeout_s: u64) -> EmailHandler {
        let timeout = handler_timeout_s.to_string();
        let settings = self.settings(&[("APP__WORKER__HANDLER_TIMEOUT_S", &timeout)]);
        let templates = Templates::load(std::path::Path::new(TEMPLATES)).expect("templates");
        let mailer = Mailer::new(&settings.smtp).expect("mailer");
        EmailHandler::new(
            templates,
            mailer,
            settings.shop,
            Duration::from_secs(handler_timeout_s),
        )
        .expect("a link secret")
    }

    /// An order whose customer's address starts with `local_prefix` (a sink switch such as
    /// `hold`, or any other word); its `order.placed` envelope and the address.
    pub async fn order_to(&self, local_prefix: &str) -> (EventEnvelope, String) {
        let envelope = testkit::orders::insert_order(&self.pool)
            .await
            .expect("order");
        let address: String = sqlx::query_scalar(
            "UPDATE customers SET email = $2 || '-' || email
             WHERE id = (SELECT customer_id FROM orders WHERE id = $1) RETURNING email",
        )
        .bind(envelope.order_id)
        .bind(local_prefix)
        .fetch_one(&self.pool)
        .await
        .expect("customer");
        (envelope, address)
    }

    /// Runs one delivery of `envelope` through the worker runtime, as the poller would.
    pub async fn process(&self, handler: &EmailHandler, envelope: &EventEnvelope) -> Disposition {
        let body = serde_json::to_string(envelope).expect("body");
        worker::process(handler, &self.pool, &body, Duration::from_secs(30)).await
    }

    /// Starts one delivery of `envelope` in a task of its own (with `timeout` as the runtime's
    /// limit), for tests that act while it is talking to the server.
    pub fn spawn_process(
        &self,
        handler: &std::sync::Arc<EmailHandler>,
        envelope: &EventEnvelope,
        timeout: Duration,
    ) -> tokio::task::JoinHandle<Disposition> {
        let (handler, pool) = (handler.clone(), self.pool.clone());
        let body = serde_json::to_string(envelope).expect("body");
        tokio::spawn(async move { worker::process(handler.as_ref(), &pool, &body, timeout).await })
    }

    /// The e-mails the sink holds for `address`, by Message-ID.
    pub fn message_ids_to(&self, address: &str) -> Vec<String> {
        let mails = self.sink.messages().expect("mails");
        mails
            .into_iter()
            .filter(|m| m.to == address)
            .map(|m| m.message_id)
            .collect()
    }

    /// The `bigint` of a query with one uuid parameter.
    pub async fn count(&self, sql: &'static str, id: Uuid) -> i64 {
        sqlx::query_scalar(sql)
            .bind(id)
            .fetch_one(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The event's intent: attempts, and whether its answer is recorded.
    pub async fn intent(&self, event_id: Uuid) -> (i32, bool) {
        sqlx::query_as(
            "SELECT attempts, answered_at IS NOT NULL FROM email_intents WHERE event_id = $1",
        )
        .bind(event_id)
        .fetch_one(&self.pool)
        .await
        .expect("intent")
    }

    /// Whether the e-mail consumer's inbox holds the event.
    pub async fn in_inbox(&self, event_id: Uuid) -> bool {
        self.count(
            "SELECT count(*) FROM inbox WHERE consumer = 'email' AND event_id = $1",
            event_id,
        )
        .await
            == 1
    }

    /// Makes this test's database refuse new connections and ends the open ones, as a
    /// PostgreSQL restart does, until [`Harness::database_back`].
    pub async fn database_away(&self) {
        let name = self.database_name();
        let mut admin = admin().await;
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "ALTER DATABASE {name} ALLOW_CONNECTIONS false"
            )))
            .await
            .expect("refuse connections");
        sqlx::query(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1",
        )
        .bind(&name)
        .fetch_one(&mut admin)
        .await
        .expect("end the connections");
    }

    /// Lets the database take connections again; returns the server's time when it did.
    pub async fn database_back(&self) -> chrono::DateTime<chrono::Utc> {
        let name = self.database_name();
        let mut admin = admin().await;
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "ALTER DATABASE {name} ALLOW_CONNECTIONS true"
            )))
            .await
            .expect("allow connections");
        sqlx::query_scalar("SELECT clock_timestamp()")
            .fetch_one(&mut admin)
            .await
            .expect("server time")
    }

    fn database_name(&self) -> String {
        let path = self.db_url.split('?').next().unwrap_or_default();
        path.rsplit('/').next().unwrap_or_default().to_owned()
    }
}

/// A connection to the test server's administrative database.
async fn admin() -> PgConnection {
    PgConnection::connect(&testkit::server_url())
        .await
        .expect("admin connection")
}

/// Waits until the sink has stored `n` e-mails to `address` (whatever it has answered).
pub async fn wait_stored(h: &Harness, address: &str, n: usize) {
    testkit::eventually(
        "the sink to store the e-mail",
        Duration::from_secs(20),
        || async { h.message_ids_to(address).len() >= n },
    )
    .await
    .expect("stored");
}
