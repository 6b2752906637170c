//! A fresh database and queue set per test, relays in-process or as real processes, orders
//! written straight into the tables (with their stock reserved), and readers that check what
//! arrived on each queue.

use std::{
    collections::HashMap,
    process::{Child, Command, Stdio},
    time::Duration,
};

use aws_sdk_sqs::types::MessageSystemAttributeName;
use domain::{Consumer, EventEnvelope, EventType, route};
use outbox_relay::{Publisher, Relay};
use settings::OrdersSettings;
use uuid::Uuid;

/// A fresh database and queue set ([`testkit::Backends`]), with the helpers below.
#[derive(Clone)]
pub struct Harness(testkit::Backends);

impl std::ops::Deref for Harness {
    type Target = testkit::Backends;

    fn deref(&self) -> &testkit::Backends {
        &self.0
    }
}

/// An event as enqueued: which order, which id, which type.
#[derive(Debug, Clone)]
pub struct Sent {
    pub order_id: Uuid,
    pub event_id: Uuid,
    pub event_type: EventType,
}

/// An event as received from a queue.
#[derive(Debug, Clone)]
pub struct Received {
    pub group_id: String,
    pub dedup_id: String,
    pub event_type_attribute: String,
    pub envelope: EventEnvelope,
}

pub async fn harness() -> Harness {
    let endpoint = testkit::test_settings(&[]).sqs.endpoint_url;
    harness_on(&endpoint).await
}

pub async fn harness_on(endpoint: &str) -> Harness {
    Harness(
        testkit::Backends::start_on(endpoint, 10)
            .await
            .expect("database and queues"),
    )
}

impl Harness {
    /// The `APP__…` settings a relay of this harness runs with.
    pub fn relay_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("APP__DATABASE__URL", self.db_url.clone()),
            ("APP__SQS__ENDPOINT_URL", self.endpoint.clone()),
            ("APP__SQS__QUEUE_PREFIX", self.queues.prefix.clone()),
            ("APP__RELAY__BATCH_SIZE", "20".into()),
            ("APP__RELAY__CONCURRENCY", "3".into()),
            ("APP__RELAY__POLL_INTERVAL_MS", "200".into()),
            ("APP__RELAY__BACKOFF_BASE_MS", "100".into()),
            ("APP__RELAY__BACKOFF_MAX_MS", "1000".into()),
            ("APP__RELAY__SQS_TIMEOUT_MS", "2000".into()),
        ]
    }

    /// A relay running inside the test process.
    pub async fn relay(&self) -> Relay {
        self.relay_with(&[]).await
    }

    /// A relay running inside the test process, with `extra` settings over [`Self::relay_env`].
    pub async fn relay_with(&self, extra: &[(&str, &str)]) -> Relay {
        let env = self.relay_env();
        let mut pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        pairs.extend_from_slice(extra);
        let settings = testkit::test_settings(&pairs);
        let client = sqs_transport::connect(&settings.sqs, Duration::from_secs(2)).await;
        Relay::new(
            self.pool.clone(),
            Publisher::new(client, self.queues.prefix.clone()),
            settings.relay,
        )
    }

    /// A relay running inside the test process with an expiry sweeper of `orders` settings, on
    /// a pool of its own (as a relay process has).
    pub async fn sweeping_relay(&self, orders: &OrdersSettings) -> Relay {
        let env = self.relay_env();
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let settings = testkit::test_settings(&pairs);
        let client = sqs_transport::connect(&settings.sqs, Duration::from_secs(2)).await;
        let pool = testkit::pool(&self.db_url, 8).await.expect("relay pool");
        Relay::new(
            pool,
            Publisher::new(client, self.queues.prefix.clone()),
            settings.relay,
        )
        .with_sweeper(orders)
    }

    /// Writes an order of two units of demo product 1, placed `age` ago and now in `status`,
    /// with its units reserved (taken off the product's stock) as checkout would have.
    pub async fn insert_order(&self, status: &str, age: Duration) -> Uuid {
        let order_id = Uuid::now_v7();
        testkit::orders::write_order(&self.pool, order_id)
            .await
            .expect("order");
        sqlx::query("UPDATE products SET stock = stock - 2 WHERE id = 1")
            .execute(&self.pool)
            .await
            .expect("stock reserved");
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

    /// Units of demo product 1 on the shelf (not reserved by an order).
    pub async fn stock(&self) -> i64 {
        testkit::scalar(
            &self.pool,
            "SELECT stock::bigint FROM products WHERE id = 1",
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

    /// The real relay binary, in its own process group, logging to a temp file.
    pub fn spawn_relay_process(&self) -> Child {
        self.spawn_relay_process_with(&[])
    }

    /// The real relay binary with some settings overridden.
    pub fn spawn_relay_process_with(&self, overrides: &[(&'static str, &str)]) -> Child {
        let log = std::env::temp_dir().join(format!("relay-{}.log", Uuid::new_v4().simple()));
        let log = std::fs::File::create(log).expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_outbox-relay"));
        command
            .envs(self.relay_env())
            .envs(overrides.iter().copied())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        command.spawn().expect("relay process starts")
    }

    pub async fn enqueue(&self, order_id: Uuid, event_type: EventType) -> Sent {
        let event = EventEnvelope::new(
            event_type,
            order_id,
            "test",
            "",
            &serde_json::json!({"n": 1}),
        )
        .expect("envelope");
        let mut tx = self.pool.begin().await.expect("begin");
        outbox::enqueue(&mut tx, &event).await.expect("enqueue");
        tx.commit().await.expect("commit");
        Sent {
            order_id,
            event_id: event.event_id,
            event_type,
        }
    }

    /// `events_per_order` events for each of `orders` orders, written by `writers` concurrent
    /// tasks so that commits of different orders interleave. Returns them in commit order per order.
    pub async fn enqueue_many(
        &self,
        orders: usize,
        events_per_order: usize,
        writers: usize,
    ) -> Vec<Sent> {
        let order_ids: Vec<Uuid> = (0..orders).map(|_| Uuid::now_v7()).collect();
        let mut tasks = tokio::task::JoinSet::new();
        for writer in 0..writers {
            let mine: Vec<Uuid> = order_ids
                .iter()
                .copied()
                .skip(writer)
                .step_by(writers)
                .collect();
            let harness = self.clone();
            tasks.spawn(async move {
                let mut sent = Vec::new();
                for n in 0..events_per_order {
                    for order_id in &mine {
                        let event_type = EventType::ALL
                            [(n + order_id.as_bytes()[15] as usize) % EventType::ALL.len()];
                        sent.push(harness.enqueue(*order_id, event_type).await);
                    }
                }
                sent
            });
        }
        let mut all = Vec::new();
        while let Some(sent) = tasks.join_next().await {
            all.extend(sent.expect("writer task"));
        }
        all
    }

    pub async fn published(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NOT NULL")
            .fetch_one(&self.pool)
            .await
            .expect("count")
    }

    pub async fn wait_all_published(&self, total: usize, timeout: Duration) {
        let total = i64::try_from(total).expect("fits");
        testkit::eventually("all outbox rows published", timeout, || async {
            self.published().await == total
        })
        .await
        .expect("published in time");
    }

    /// Everything on `consumer`'s queue, expecting `expected` messages.
    pub async fn receive(&self, consumer: Consumer, expected: usize) -> Vec<Received> {
        let url = self.queues.url(consumer.name());
        let messages = testkit::receive_all(&self.sqs, url, expected, Duration::from_secs(60))
            .await
            .expect("receive");
        messages
            .into_iter()
            .map(|m| {
                let system = m.attributes.clone().unwrap_or_default();
                let attribute = |name: MessageSystemAttributeName| {
                    system.get(&name).cloned().unwrap_or_default()
                };
                Received {
                    group_id: attribute(MessageSystemAttributeName::MessageGroupId),
                    dedup_id: attribute(MessageSystemAttributeName::MessageDeduplicationId),
                    event_type_attribute: m
                        .message_attributes
                        .as_ref()
                        .and_then(|a| a.get("event_type"))
                        .and_then(|v| v.string_value.clone())
                        .unwrap_or_default(),
                    envelope: serde_json::from_str(m.body.as_deref().unwrap_or_default())
                        .expect("body is an envelope"),
                }
            })
            .collect()
    }

    /// Asserts every queue holds exactly the events routed to it, once each, in commit order per order.
    pub async fn assert_delivered_in_order(&self, sent: &[Sent]) {
        for consumer in Consumer::ALL {
            let expected: Vec<&Sent> = sent
                .iter()
                .filter(|s| route(s.event_type).contains(&consumer))
                .collect();
            let received = self.receive(consumer, expected.len()).await;
            assert_eq!(
                received.len(),
                expected.len(),
                "{consumer}: every routed event exactly once"
            );
            let mut want: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
            for s in &expected {
                want.entry(s.order_id).or_default().push(s.event_id);
            }
            let mut got: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
            for r in &received {
                assert_eq!(
                    r.group_id,
                    r.envelope.order_id.to_string(),
                    "group id is the order id"
                );
                assert_eq!(
                    r.dedup_id,
                    r.envelope.event_id.to_string(),
                    "dedup id is the event id"
                );
                got.entry(r.envelope.order_id)
                    .or_default()
                    .push(r.envelope.event_id);
            }
            assert_eq!(got, want, "{consumer}: per-order commit order");
        }
    }
}

/// Kills the process and its group with SIGKILL (`kill -9`: no chance to clean up) and reaps it.
pub fn kill_9(child: &mut Child) {
    let _ = child.kill();
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .status();
    let _ = child.wait();
}

/// An `order.placed` (routed to the invoice and the e-mail queues) for each of `orders` new
/// orders, committed in one transaction when `together`, else one transaction each.
pub async fn commit_placed(h: &Harness, orders: usize, together: bool) {
    let mut tx = h.pool.begin().await.expect("begin");
    for _ in 0..orders {
        let event = EventEnvelope::new(
            EventType::OrderPlaced,
            Uuid::now_v7(),
            "test",
            "",
            &serde_json::json!({"n": 1}),
        )
        .expect("envelope");
        outbox::enqueue(&mut tx, &event).await.expect("enqueue");
        if !together {
            tx.commit().await.expect("commit");
            tx = h.pool.begin().await.expect("begin");
        }
    }
    tx.commit().await.expect("commit");
}
