//! A fresh database and queue set per test, orders written straight into the tables, and
//! events sent straight to the invoice queue (no web-server, no relay).

use std::time::Duration;

use domain::EventEnvelope;
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

pub async fn harness() -> Harness {
    Harness(
        testkit::Backends::start(5)
            .await
            .expect("database and queues"),
    )
}

impl Harness {
    /// The settings a worker of this harness runs with.
    pub fn overrides(&self) -> Vec<(&'static str, String)> {
        testkit::worker_overrides(&self.db_url, &self.endpoint, &self.queues)
    }

    pub fn settings(&self) -> settings::Settings {
        testkit::test_settings_from(&self.overrides())
    }

    /// Writes an order (2 × demo product 1) and returns its `order.placed` envelope.
    pub async fn place_order(&self) -> EventEnvelope {
        testkit::orders::insert_order(&self.pool)
            .await
            .expect("order")
    }

    /// Sends raw bodies to the invoice queue, each in its own message group.
    pub async fn send(&self, bodies: &[String]) {
        testkit::orders::send_bodies(&self.sqs, self.queues.url("invoice"), bodies)
            .await
            .expect("send");
    }

    pub async fn status(&self, order_id: Uuid) -> String {
        testkit::order_status(&self.pool, order_id).await
    }

    pub async fn count(&self, sql: &str) -> i64 {
        testkit::scalar(&self.pool, sql).await
    }

    pub async fn wait_status(&self, order_id: Uuid, status: &str, timeout: Duration) {
        testkit::eventually(&format!("order to be {status}"), timeout, || async {
            self.status(order_id).await == status
        })
        .await
        .expect("status in time");
    }
}
