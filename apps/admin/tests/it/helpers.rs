//! A fresh database and queue set per test, the admin binary run with that test's settings,
//! orders written straight into the tables (with their stock reserved), and the invoice worker
//! run in-process.

use std::{process::Output, time::Duration};

use domain::EventEnvelope;
use invoice_service::InvoiceHandler;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use worker::Poller;

/// A fresh database and queue set ([`testkit::Backends`]), with the helpers below.
#[derive(Clone)]
pub struct Harness(testkit::Backends);

impl std::ops::Deref for Harness {
    type Target = testkit::Backends;

    fn deref(&self) -> &testkit::Backends {
        &self.0
    }
}

pub async fn harness() -> Harness {
    Harness(
        testkit::Backends::start(5)
            .await
            .expect("database and queues"),
    )
}

/// What one run of the binary printed, and how it ended.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The stdout of a run that must have succeeded.
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.code,
            Some(0),
            "the command failed: {}{}",
            self.stdout,
            self.stderr
        );
        &self.stdout
    }

    /// The stdout of a successful `--json` run, parsed.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok()).expect("JSON output")
    }

    /// The one-line error of a run that must have failed with exit code 1.
    pub fn error(&self) -> &str {
        assert_eq!(
            self.code,
            Some(1),
            "the command should fail: {}",
            self.stdout
        );
        assert!(self.stdout.is_empty(), "nothing on stdout when failing");
        assert_eq!(self.stderr.lines().count(), 1, "one line: {}", self.stderr);
        self.stderr.trim_end()
    }
}

/// Runs `chargeflow-admin args…` with the given settings (over the test run's environment).
pub async fn admin(env: &[(&str, String)], args: &[&str]) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = tokio::process::Command::new(env!("CARGO_BIN_EXE_chargeflow-admin"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .await
        .expect("the admin binary runs");
    Run {
        code: status.code(),
        stdout: String::from_utf8(stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(stderr).expect("UTF-8 stderr"),
    }
}

/// An `order.placed` envelope for `order_id` (whether or not the order exists).
pub fn order_placed(order_id: Uuid) -> EventEnvelope {
    testkit::orders::order_placed(order_id).expect("envelope")
}

/// Writes order `order_id`: two units of demo product 1 (`MUG-ENAMEL`, 14.50 EUR) for a new
/// customer, as checkout would have.
pub async fn insert_order(pool: &PgPool, order_id: Uuid) {
    testkit::orders::write_order(pool, order_id)
        .await
        .expect("order");
}

/// The invoice worker, polling in this process until cancelled.
pub struct RunningWorker {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl RunningWorker {
    pub async fn stop(self) {
        self.stop.cancel();
        self.task.await.expect("the worker stops cleanly");
    }
}

impl Harness {
    /// The settings of this test: its database, SQS endpoint and queue prefix.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        testkit::worker_overrides(&self.db_url, &self.endpoint, &self.queues)
    }

    /// Runs the admin binary with this test's settings.
    pub async fn admin(&self, args: &[&str]) -> Run {
        admin(&self.env(), args).await
    }

    pub async fn start_invoice_worker(&self) -> RunningWorker {
        let settings = testkit::test_settings_from(&self.env());
        let handler = InvoiceHandler::new(&settings.invoice).expect("handler");
        let poller = Poller::connect(&settings, handler).await.expect("poller");
        let stop = CancellationToken::new();
        let task = tokio::spawn(poller.run(stop.clone()));
        RunningWorker { stop, task }
    }

    /// Sends `event` to `consumer`'s queue the way the relay does.
    pub async fn publish(&self, consumer: &str, event: &EventEnvelope) {
        let message = sqs_transport::OutgoingMessage {
            entry_id: "e".into(),
            body: serde_json::to_string(event).expect("json"),
            group_id: event.order_id.to_string(),
            dedup_id: event.event_id.to_string(),
            attributes: vec![("event_type", event.event_type.as_str().to_owned())],
        };
        sqs_transport::consume::send_one(&self.sqs, self.queues.url(consumer), &message)
            .await
            .expect("sent");
    }

    /// Sends a message straight to `consumer`'s dead-letter queue, as if it had been parked.
    pub async fn park(&self, consumer: &str, group: &str, body: &str, reason: Option<&str>) {
        let mut attributes = vec![("event_type", "order.placed".to_owned())];
        if let Some(reason) = reason {
            attributes.push(("parked_reason", reason.to_owned()));
        }
        let message = sqs_transport::OutgoingMessage {
            entry_id: "p".into(),
            body: body.to_owned(),
            group_id: group.to_owned(),
            dedup_id: Uuid::new_v4().to_string(),
            attributes,
        };
        sqs_transport::consume::send_one(&self.sqs, self.queues.dlq(consumer), &message)
            .await
            .expect("parked");
    }

    /// Writes an order of two units of demo product 1 (`MUG-ENAMEL`), placed `age` ago and now
    /// in `status`, with its units reserved (taken off the product's stock) as checkout would
    /// have.
    pub async fn order(&self, status: &str, age: Duration) -> Uuid {
        let order_id = Uuid::now_v7();
        insert_order(&self.pool, order_id).await;
        self.reserve(order_id, 1).await;
        sqlx::query(
            "UPDATE orders SET status = $2, created_at = now() - make_interval(secs => $3)
             WHERE id = $1",
        )
        .bind(order_id)
        .bind(status)
        .bind(age.as_secs_f64())
        .execute(&self.pool)
        .await
        .expect("status and age");
        order_id
    }

    /// Adds a line of one unit of demo product 2 at the largest price there is (its unit
    /// reserved): the order's total overflows, so the invoice worker cannot invoice it and
    /// parks its `order.placed`.
    pub async fn add_overflowing_line(&self, order_id: Uuid) {
        self.execute(
            "INSERT INTO order_items (order_id, line_no, product_id, sku, name, unit_price_minor, quantity)
             SELECT $1, 2, id, sku, name, 9223372036854775807, 1 FROM products WHERE id = 2",
            order_id,
        )
        .await;
        self.reserve(order_id, 2).await;
    }

    /// Takes the units of the order's line `line_no` off its product's stock.
    async fn reserve(&self, order_id: Uuid, line_no: i16) {
        sqlx::query(
            "UPDATE products p SET stock = p.stock - i.quantity FROM order_items i
             WHERE i.order_id = $1 AND i.line_no = $2 AND p.id = i.product_id",
        )
        .bind(order_id)
        .bind(line_no)
        .execute(&self.pool)
        .await
        .expect("stock reserved");
    }

    /// Records the order's `order.placed` as checkout does (timeline entry and outbox row) and
    /// marks the row published, as the relay would have; returns the event.
    pub async fn record_placed(&self, order_id: Uuid) -> EventEnvelope {
        let event = order_placed(order_id);
        let mut tx = self.pool.begin().await.expect("begin");
        orders::record_event(&mut tx, &event, serde_json::json!({}))
            .await
            .expect("order.placed recorded");
        tx.commit().await.expect("commit");
        self.execute(
            "UPDATE outbox SET published_at = now() WHERE aggregate_id = $1",
            order_id,
        )
        .await;
        event
    }

    /// Units of demo products 1 and 2 on the shelf (not reserved by an order).
    pub async fn stock(&self) -> i64 {
        testkit::scalar(
            &self.pool,
            "SELECT sum(stock)::bigint FROM products WHERE id IN (1, 2)",
        )
        .await
    }

    /// The order's status and cancel reason.
    pub async fn order_state(&self, order_id: Uuid) -> (String, Option<String>) {
        testkit::orders::order_state(&self.pool, order_id).await
    }

    /// The `order.cancelled` outbox rows of the order.
    pub async fn cancellations(&self, order_id: Uuid) -> i64 {
        testkit::orders::outbox_events(&self.pool, order_id, domain::EventType::OrderCancelled)
            .await
    }

    async fn execute(&self, sql: &str, id: Uuid) {
        sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .bind(id)
            .execute(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    pub async fn depth(&self, queue_url: &str) -> i64 {
        testkit::queue_depth(&self.sqs, queue_url)
            .await
            .expect("depth")
    }

    pub async fn wait_depth(&self, queue_url: &str, depth: i64) {
        testkit::eventually(
            &format!("{depth} message(s) on {queue_url}"),
            Duration::from_secs(20),
            || async { self.depth(queue_url).await == depth },
        )
        .await
        .expect("queue depth in time");
    }

    pub async fn count(&self, sql: &str, id: Uuid) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .bind(id)
            .fetch_one(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}
