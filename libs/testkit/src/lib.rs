#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod lambda_api;
pub mod orders;
pub mod processes;
pub mod smtp;
pub mod statements;
pub mod stripe;

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use aws_sdk_sqs::{
    Client,
    types::{Message, MessageSystemAttributeName, QueueAttributeName},
};
use secrecy::ExposeSecret;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use sqlx::{Connection, Executor, PgConnection, PgPool, postgres::PgPoolOptions};

/// The schema, compiled in so that a test always uses the one in the repository.
pub const SCHEMA: &str = include_str!("../../../init.sql");
/// The queue definitions shared with the LocalStack ready hook.
pub const QUEUES_JSON: &str = include_str!("../../../localstack/queues.json");

/// The link secret every test's settings carry (`APP__SHOP__LINK_SECRET`), so tests can make
/// and check order and sign-in links with `domain::links`.
pub const LINK_SECRET: &str = "chargeflow-test-link-secret-0123456789abcdef";

/// A result for test helpers: any error, with its message.
pub type TestResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The destinations with rates of their own in every test's settings (the shop's default, 4.90
/// shipping and 19 % tax, applies everywhere else): Austria 6.90 and 20 %, Switzerland 14.90 and
/// no tax. Quote tests use DE, AT and CH to see three sets of rates.
pub const COUNTRY_RATES: [(&str, &str); 4] = [
    ("APP__INVOICE__COUNTRIES__AT__SHIPPING_FEE_MINOR", "690"),
    ("APP__INVOICE__COUNTRIES__AT__TAX_RATE_BP", "2000"),
    ("APP__INVOICE__COUNTRIES__CH__SHIPPING_FEE_MINOR", "1490"),
    ("APP__INVOICE__COUNTRIES__CH__TAX_RATE_BP", "0"),
];

/// The web-server's rate limits (`APP__LIMITS__<NAME>_BURST` and `…_PER_MINUTE`), as named in
/// `settings::LimitSettings`.
pub const RATE_LIMITS: [&str; 9] = [
    "API_PER_CLIENT",
    "NEW_SESSION_PER_CLIENT",
    "CART_WRITE_PER_SESSION",
    "CART_WRITE_PER_CLIENT",
    "CHECKOUT_PER_SESSION",
    "CHECKOUT_PER_CLIENT",
    "CANCEL_PER_SESSION",
    "CANCEL_PER_CLIENT",
    "SIGN_IN_PER_CLIENT",
];

/// Every rate limit of [`RATE_LIMITS`] so high that nothing is ever limited (a million at once,
/// a million a second): the tests and the benchmark send many requests from 127.0.0.1. A test
/// of the limits sets its own low ones on top.
pub fn generous_limits() -> Vec<(String, String)> {
    RATE_LIMITS
        .iter()
        .flat_map(|name| {
            [
                (format!("APP__LIMITS__{name}_BURST"), "1000000".to_owned()),
                (
                    format!("APP__LIMITS__{name}_PER_MINUTE"),
                    "60000000".to_owned(),
                ),
            ]
        })
        .collect()
}

/// The settings the test run exported (`APP__…`), the test [`LINK_SECRET`],
/// [`generous_limits`] and [`COUNTRY_RATES`], with `overrides` on top.
///
/// # Panics
/// When the settings do not load: the test run is misconfigured.
pub fn test_settings(overrides: &[(&str, &str)]) -> settings::Settings {
    let keys = [
        "APP__DATABASE__URL",
        "APP__REDIS__URL",
        "APP__SQS__ENDPOINT_URL",
        "APP__SQS__REGION",
    ];
    let mut pairs: Vec<(String, String)> = keys
        .iter()
        .filter_map(|k| Some(((*k).to_owned(), std::env::var(k).ok()?)))
        .collect();
    // The tests' profile, as the local stack's (the checks of production are tested on their own).
    pairs.push(("APP__PROFILE".to_owned(), "local".to_owned()));
    pairs.push(("APP__SHOP__LINK_SECRET".to_owned(), LINK_SECRET.to_owned()));
    // No operations ports unless a test asks for one: the processes' default ports would collide
    // between the tests running at once (and with a running dev stack).
    pairs.push(("APP__METRICS__ADDR".to_owned(), String::new()));
    pairs.extend(generous_limits());
    pairs.extend(
        COUNTRY_RATES
            .iter()
            .chain(overrides)
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let borrowed: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    settings::Settings::from_sources(&borrowed).expect("test settings must load")
}

pub(crate) fn require_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with scripts/test.sh, which starts the services")
    })
}

/// A fresh database cloned from the schema template; returns its URL.
///
/// # Errors
/// When PostgreSQL cannot be reached or the schema does not apply.
pub async fn fresh_database() -> TestResult<String> {
    let server_url = require_env("APP__DATABASE__URL");
    let mut admin = PgConnection::connect(&server_url).await?;
    let template = format!("cf_tpl_{}", &hex::encode(Sha256::digest(SCHEMA))[..12]);
    ensure_template(&mut admin, &server_url, &template).await?;
    let name = format!("cf_test_{}", uuid::Uuid::new_v4().simple());
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {name} TEMPLATE {template}"
        )))
        .await?;
    admin.close().await?;
    Ok(with_database(&server_url, &name))
}

/// A pool of `size` connections to `url`.
///
/// # Errors
/// When the database cannot be reached.
pub async fn pool(url: &str, size: u32) -> TestResult<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(size)
        .connect(url)
        .await?)
}

async fn ensure_template(
    admin: &mut PgConnection,
    server_url: &str,
    template: &str,
) -> TestResult<()> {
    // Test binaries run in parallel: one builds the template, the others wait for it.
    admin.execute("SELECT pg_advisory_lock(7426001)").await?;
    let result = build_template_if_missing(admin, server_url, template).await;
    admin.execute("SELECT pg_advisory_unlock(7426001)").await?;
    result
}

async fn build_template_if_missing(
    admin: &mut PgConnection,
    server_url: &str,
    template: &str,
) -> TestResult<()> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(template)
            .fetch_one(&mut *admin)
            .await?;
    if exists {
        return Ok(());
    }
    let building = format!("{template}_building");
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {building}"
        )))
        .await?;
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {building}")))
        .await?;
    let mut conn = PgConnection::connect(&with_database(server_url, &building)).await?;
    sqlx::raw_sql(SCHEMA).execute(&mut conn).await?;
    conn.close().await?;
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE {building} RENAME TO {template}"
        )))
        .await?;
    Ok(())
}

/// `url` with its database name replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
    match query {
        Some(q) => format!("{server}/{database}?{q}"),
        None => format!("{server}/{database}"),
    }
}

#[derive(Debug, Deserialize)]
struct QueueSpec {
    name: String,
    visibility_timeout_s: u32,
    max_receive_count: u32,
}

/// Queue URLs of one fresh queue set.
#[derive(Debug, Clone)]
pub struct Queues {
    /// The prefix: pass it as `APP__SQS__QUEUE_PREFIX`.
    pub prefix: String,
    /// `(consumer name, queue URL, DLQ URL)` for each consumer.
    pub urls: Vec<(String, String, String)>,
}

impl Queues {
    /// The queue URL of `consumer`.
    ///
    /// # Panics
    /// When the consumer is not in `queues.json`.
    pub fn url(&self, consumer: &str) -> &str {
        &self
            .urls
            .iter()
            .find(|(c, _, _)| c == consumer)
            .expect("known consumer")
            .1
    }

    /// The dead-letter queue URL of `consumer`.
    ///
    /// # Panics
    /// When the consumer is not in `queues.json`.
    pub fn dlq(&self, consumer: &str) -> &str {
        &self
            .urls
            .iter()
            .find(|(c, _, _)| c == consumer)
            .expect("known consumer")
            .2
    }

    /// Deletes every queue and dead-letter queue of the set, with the messages in them. A
    /// benchmark phase that leaves its messages behind makes the local queue service slower for
    /// the phases after it (more objects for its garbage collector to walk), so each phase
    /// deletes its queues before the next one is timed.
    ///
    /// # Errors
    /// When SQS cannot be reached or refuses a deletion.
    pub async fn delete(&self, client: &Client) -> TestResult<()> {
        for (_, url, dlq) in &self.urls {
            client.delete_queue().queue_url(url).send().await?;
            client.delete_queue().queue_url(dlq).send().await?;
        }
        Ok(())
    }
}

/// An SQS client for `endpoint` with test credentials.
pub async fn sqs_client(endpoint: &str) -> Client {
    let settings = test_settings(&[("APP__SQS__ENDPOINT_URL", endpoint)]);
    sqs_transport::connect(&settings.sqs, Duration::from_secs(10)).await
}

/// Creates a randomly prefixed set of FIFO queues, each with its FIFO DLQ, as in `queues.json`.
///
/// # Errors
/// When SQS cannot be reached.
pub async fn fresh_queues(client: &Client) -> TestResult<Queues> {
    let prefix = format!("t{}-", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    create_queues(client, &prefix).await
}

/// What most integration tests start from: a fresh database with a pool, and a fresh queue set
/// with its SQS client.
#[derive(Clone)]
pub struct Backends {
    /// The database's URL (pass it as `APP__DATABASE__URL`).
    pub db_url: String,
    /// A pool on that database.
    pub pool: PgPool,
    /// An SQS client for `endpoint`.
    pub sqs: Client,
    /// The SQS endpoint (pass it as `APP__SQS__ENDPOINT_URL`).
    pub endpoint: String,
    /// The queues.
    pub queues: Queues,
}

impl Backends {
    /// A fresh database (pool of `pool_size`) and fresh queues on the test settings' endpoint.
    ///
    /// # Errors
    /// When PostgreSQL or SQS cannot be reached.
    pub async fn start(pool_size: u32) -> TestResult<Self> {
        let endpoint = test_settings(&[]).sqs.endpoint_url;
        Self::start_on(&endpoint, pool_size).await
    }

    /// Like [`Backends::start`], with the queues on `endpoint`.
    ///
    /// # Errors
    /// When PostgreSQL or SQS cannot be reached.
    pub async fn start_on(endpoint: &str, pool_size: u32) -> TestResult<Self> {
        let db_url = fresh_database().await?;
        let pool = pool(&db_url, pool_size).await?;
        let sqs = sqs_client(endpoint).await;
        let queues = fresh_queues(&sqs).await?;
        Ok(Backends {
            db_url,
            pool,
            sqs,
            endpoint: endpoint.to_owned(),
            queues,
        })
    }
}

/// Creates the queue set with a given prefix (idempotent, as SQS `CreateQueue` is).
///
/// # Errors
/// When SQS cannot be reached.
pub async fn create_queues(client: &Client, prefix: &str) -> TestResult<Queues> {
    let specs: Vec<QueueSpec> = serde_json::from_str(QUEUES_JSON)?;
    let mut urls = Vec::new();
    for spec in specs {
        let dlq = client
            .create_queue()
            .queue_name(format!("{prefix}{}-dlq.fifo", spec.name))
            .attributes(QueueAttributeName::FifoQueue, "true")
            .send()
            .await?
            .queue_url
            .unwrap_or_default();
        let dlq_arn = client
            .get_queue_attributes()
            .queue_url(&dlq)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await?
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .unwrap_or_default();
        let redrive = serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": spec.max_receive_count});
        let url = client
            .create_queue()
            .queue_name(format!("{prefix}{}.fifo", spec.name))
            .attributes(QueueAttributeName::FifoQueue, "true")
            .attributes(
                QueueAttributeName::VisibilityTimeout,
                spec.visibility_timeout_s.to_string(),
            )
            .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
            .send()
            .await?
            .queue_url
            .unwrap_or_default();
        urls.push((spec.name, url, dlq));
    }
    Ok(Queues {
        prefix: prefix.to_owned(),
        urls,
    })
}

/// Receives and deletes messages from `queue_url` until `expected` have arrived (or `timeout`
/// passes), then goes on until one receive comes back empty, so that surplus messages
/// (duplicates) show up in the result too. Returns them in the order received.
///
/// # Errors
/// When SQS cannot be reached.
pub async fn receive_all(
    client: &Client,
    queue_url: &str,
    expected: usize,
    timeout: Duration,
) -> TestResult<Vec<Message>> {
    let deadline = Instant::now() + timeout;
    let mut messages = Vec::new();
    loop {
        let batch = receive_batch(client, queue_url).await?;
        let empty = batch.is_empty();
        messages.extend(batch);
        let enough = messages.len() >= expected;
        if (enough && empty) || Instant::now() >= deadline {
            return Ok(messages);
        }
    }
}

async fn receive_batch(client: &Client, queue_url: &str) -> TestResult<Vec<Message>> {
    let out = client
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .send()
        .await?;
    let messages = out.messages.unwrap_or_default();
    for message in &messages {
        if let Some(handle) = &message.receipt_handle {
            client
                .delete_message()
                .queue_url(queue_url)
                .receipt_handle(handle)
                .send()
                .await?;
        }
    }
    Ok(messages)
}

/// A port that was free a moment ago on 127.0.0.1.
///
/// # Panics
/// When no port can be bound.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// A private LocalStack process (SQS only) on its own port, stopped by process id.
pub struct LocalStack {
    port: u16,
    root: std::path::PathBuf,
    child: Option<Child>,
}

impl LocalStack {
    /// Starts LocalStack on a free port and waits until SQS runs.
    ///
    /// # Errors
    /// When it does not become ready within 60 s.
    pub async fn start() -> TestResult<Self> {
        let root =
            std::env::temp_dir().join(format!("cf-localstack-{}", uuid::Uuid::new_v4().simple()));
        let mut localstack = LocalStack {
            port: free_port(),
            root,
            child: None,
        };
        localstack.resume().await?;
        Ok(localstack)
    }

    /// The endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills the process (SIGKILL, like a crash) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            // LocalStack may have started helpers in its process group: kill the group too.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
        }
    }

    /// Starts the process again on the same port (its queues are gone: create them again).
    ///
    /// # Errors
    /// When it does not become ready within 60 s.
    pub async fn resume(&mut self) -> TestResult<()> {
        let venv = require_env("CHARGEFLOW_VENV");
        std::fs::create_dir_all(&self.root)?;
        let log = std::fs::File::create(self.root.join("localstack.log"))?;
        let addr = format!("127.0.0.1:{}", self.port);
        let mut command = Command::new(format!("{venv}/bin/python"));
        command
            .args(["-m", "localstack.runtime.main"])
            .env("GATEWAY_LISTEN", &addr)
            // This machine looks like a container to LocalStack; without this it ignores
            // FILESYSTEM_ROOT and binds every interface.
            .env("OVERRIDE_IN_DOCKER", "0")
            .env("GATEWAY_SERVER", "hypercorn")
            .env("SERVICES", "sqs")
            .env("EAGER_SERVICE_LOADING", "1")
            .env("DNS_ADDRESS", "0")
            .env("DISABLE_EVENTS", "1")
            .env("SKIP_SSL_CERT_DOWNLOAD", "1")
            .env("SQS_ENDPOINT_STRATEGY", "path")
            // No log line per request (as scripts/services.sh).
            .env("LS_LOG", "warn")
            .env("LOCALSTACK_HOST", &addr)
            .env("FILESYSTEM_ROOT", &self.root)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        self.child = Some(command.spawn()?);
        self.wait_ready().await
    }

    async fn wait_ready(&self) -> TestResult<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let client = sqs_client(&self.endpoint()).await;
        while Instant::now() < deadline {
            if client.list_queues().send().await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(format!(
            "LocalStack on port {} did not start; see {}",
            self.port,
            self.root.display()
        )
        .into())
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Waits until `check` returns true, polling every 50 ms, for at most `timeout`.
///
/// # Errors
/// When the time runs out, naming `what`.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F) -> TestResult<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check().await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("timed out after {timeout:?} waiting for {what}").into())
}

/// The admin URL of the test server, for assertions that need no fresh database.
pub fn server_url() -> String {
    test_settings(&[]).database.url.expose_secret().to_owned()
}

/// Messages waiting plus in flight (received, not yet deleted) on a queue.
///
/// # Errors
/// When SQS cannot be reached.
pub async fn queue_depth(client: &Client, queue_url: &str) -> TestResult<i64> {
    let out = client
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await?;
    let attributes = out.attributes.unwrap_or_default();
    let number = |name| {
        attributes
            .get(&name)
            .and_then(|v: &String| v.parse::<i64>().ok())
            .unwrap_or(0)
    };
    Ok(number(QueueAttributeName::ApproximateNumberOfMessages)
        + number(QueueAttributeName::ApproximateNumberOfMessagesNotVisible))
}

/// The single `bigint` a query returns (a `count(*)`, say).
///
/// # Panics
/// When the query fails: the test is wrong.
pub async fn scalar(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The status of an order.
///
/// # Panics
/// When the order does not exist.
pub async fn order_status(pool: &PgPool, order_id: uuid::Uuid) -> String {
    sqlx::query_scalar("SELECT status FROM orders WHERE id = $1")
        .bind(order_id)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("status of order {order_id}: {e}"))
}

/// Waits until no message waits or is in flight on the queue.
///
/// # Errors
/// When that does not happen within `timeout`.
pub async fn wait_drained(client: &Client, queue_url: &str, timeout: Duration) -> TestResult<()> {
    eventually("the queue to drain", timeout, || async {
        queue_depth(client, queue_url).await.unwrap_or(1) == 0
    })
    .await
}

/// The settings a worker process of a test runs with: its database, SQS endpoint and queue
/// prefix, the test [`LINK_SECRET`], and short waits (1 s long polls, 3 s visibility, 1 s first
/// retry) so tests move fast.
pub fn worker_overrides(
    db_url: &str,
    sqs_endpoint: &str,
    queues: &Queues,
) -> Vec<(&'static str, String)> {
    vec![
        ("APP__DATABASE__URL", db_url.to_owned()),
        ("APP__SQS__ENDPOINT_URL", sqs_endpoint.to_owned()),
        ("APP__SQS__QUEUE_PREFIX", queues.prefix.clone()),
        ("APP__WORKER__WAIT_TIME_S", "1".into()),
        ("APP__WORKER__VISIBILITY_TIMEOUT_S", "3".into()),
        ("APP__WORKER__RETRY_BASE_S", "1".into()),
        ("APP__SHOP__LINK_SECRET", LINK_SECRET.into()),
    ]
}

/// [`test_settings`] for owned override values (as [`worker_overrides`] returns them).
///
/// # Panics
/// When the settings do not load.
pub fn test_settings_from(overrides: &[(&'static str, String)]) -> settings::Settings {
    let pairs: Vec<(&str, &str)> = overrides.iter().map(|(k, v)| (*k, v.as_str())).collect();
    test_settings(&pairs)
}
