//! `Pipeline::start()`: a fresh database, fresh queues and a private SMTP sink, with the
//! web-server, the relay and both workers running in-process until the test ends.

use std::time::Duration;

use email_service::{EmailHandler, mailer::Mailer, templates::Templates};
use invoice_service::InvoiceHandler;
use outbox_relay::Relay;
use reqwest::Client;
use serde_json::{Value, json};
use settings::Settings;
use sqlx::PgPool;
use testkit::{Queues, smtp::SmtpSink};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use web_server::Application;
use worker::Poller;

const TEMPLATES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../apps/email-service/templates"
);

pub struct Pipeline {
    pub address: String,
    pub pool: PgPool,
    pub sqs: aws_sdk_sqs::Client,
    pub queues: Queues,
    pub sink: SmtpSink,
    stop: CancellationToken,
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Pipeline {
    pub async fn start() -> Pipeline {
        let db_url = testkit::fresh_database().await.expect("fresh database");
        let endpoint = testkit::test_settings(&[]).sqs.endpoint_url;
        let sqs = testkit::sqs_client(&endpoint).await;
        let queues = testkit::fresh_queues(&sqs).await.expect("fresh queues");
        let sink = SmtpSink::start().await.expect("SMTP sink");
        let smtp_port = sink.port().to_string();
        let redis_prefix = format!("t{}:", Uuid::new_v4().simple());
        let settings = testkit::test_settings(&[
            ("APP__DATABASE__URL", &db_url),
            ("APP__DATABASE__MAX_CONNECTIONS", "20"),
            ("APP__REDIS__KEY_PREFIX", &redis_prefix),
            ("APP__HTTP__ADDR", "127.0.0.1:0"),
            ("APP__HTTP__STATIC_DIR", "no-front-end-in-tests"),
            ("APP__SQS__QUEUE_PREFIX", &queues.prefix),
            ("APP__RELAY__POLL_INTERVAL_MS", "100"),
            ("APP__WORKER__WAIT_TIME_S", "1"),
            ("APP__WORKER__RETRY_BASE_S", "1"),
            ("APP__SMTP__PORT", &smtp_port),
            ("APP__SMTP__TEMPLATES_DIR", TEMPLATES),
        ]);
        let stop = CancellationToken::new();
        let address = spawn_web(&settings).await;
        spawn_relay(&settings, &stop).await;
        spawn_invoice_worker(&settings, &stop).await;
        spawn_email_worker(&settings, &stop).await;
        let pool = testkit::pool(&db_url, 5).await.expect("test pool");
        Pipeline {
            address,
            pool,
            sqs,
            queues,
            sink,
            stop,
        }
    }

    /// Adds a product with plenty of stock; returns its id.
    pub async fn add_product(&self, sku: &str, name: &str, price_minor: i64) -> i64 {
        sqlx::query_scalar(
            "INSERT INTO products (sku, name, description, price_minor, currency, stock, image_url)
             VALUES ($1, $2, 'test product', $3, 'EUR', 10000, '/images/test.svg') RETURNING id",
        )
        .bind(sku)
        .bind(name)
        .bind(price_minor)
        .fetch_one(&self.pool)
        .await
        .expect("insert product")
    }

    /// A shopper with its own session.
    pub fn shopper(&self) -> Client {
        Client::builder()
            .cookie_store(true)
            .build()
            .expect("client")
    }

    /// Checks out `items` (`(product_id, quantity)`) as `shopper`; returns the order id.
    pub async fn checkout(&self, shopper: &Client, email: &str, items: &[(i64, u32)]) -> Uuid {
        let items: Vec<Value> = items
            .iter()
            .map(|(id, quantity)| json!({"product_id": id, "quantity": quantity}))
            .collect();
        let body = json!({
            "customer": {
                "name": "Ada Lovelace",
                "email": email,
                "address": {"line1": "12 Analytical Row", "city": "London", "postal_code": "N1 7AA", "country": "GB"}
            },
            "items": items,
            "payment_method": "pm_card_visa",
        });
        let response = shopper
            .post(format!("{}/api/orders", self.address))
            .json(&body)
            .send()
            .await
            .expect("checkout request");
        assert_eq!(
            response.status(),
            201,
            "checkout failed: {:?}",
            response.text().await
        );
        let body: Value = response.json().await.expect("json");
        body["order_id"]
            .as_str()
            .expect("order_id")
            .parse()
            .expect("uuid")
    }

    pub async fn status(&self, order_id: Uuid) -> String {
        sqlx::query_scalar("SELECT status FROM orders WHERE id = $1")
            .bind(order_id)
            .fetch_one(&self.pool)
            .await
            .expect("status")
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&self.pool)
            .await
            .expect("count")
    }

    /// Waits until `n` orders are invoiced.
    pub async fn wait_invoiced(&self, n: i64, timeout: Duration) {
        testkit::eventually("orders to be invoiced", timeout, || async {
            self.count("SELECT count(*) FROM orders WHERE status = 'invoiced'")
                .await
                >= n
        })
        .await
        .expect("invoiced in time");
    }

    /// Waits until the sink holds at least `n` e-mails.
    pub async fn wait_mails(&self, n: usize, timeout: Duration) {
        testkit::eventually("e-mails in the sink", timeout, || async {
            self.sink.messages().map(|m| m.len()).unwrap_or(0) >= n
        })
        .await
        .expect("e-mails in time");
    }

    /// Waits until no message is waiting or in flight on the invoice and e-mail queues.
    pub async fn wait_queues_idle(&self) {
        for consumer in ["invoice", "email"] {
            let url = self.queues.url(consumer).to_owned();
            testkit::eventually("the queue to be empty", Duration::from_secs(30), || async {
                testkit::queue_depth(&self.sqs, &url).await.unwrap_or(1) == 0
            })
            .await
            .expect("queue drained");
        }
    }
}

async fn spawn_web(settings: &Settings) -> String {
    let app = Application::build(settings.clone())
        .await
        .expect("web-server builds");
    let address = format!("http://{}", app.local_addr().expect("bound"));
    tokio::spawn(app.run(std::future::pending()));
    address
}

async fn spawn_relay(settings: &Settings, stop: &CancellationToken) {
    let relay = Relay::connect(settings).await.expect("relay starts");
    tokio::spawn(relay.run(stop.clone()));
}

async fn spawn_invoice_worker(settings: &Settings, stop: &CancellationToken) {
    let handler = InvoiceHandler::new(&settings.invoice).expect("invoice settings");
    let poller = Poller::connect(settings, handler)
        .await
        .expect("invoice worker starts");
    tokio::spawn(poller.run(stop.clone()));
}

async fn spawn_email_worker(settings: &Settings, stop: &CancellationToken) {
    let templates = Templates::load(std::path::Path::new(TEMPLATES)).expect("templates load");
    let mailer = Mailer::new(&settings.smtp).expect("mailer");
    let handler = EmailHandler::new(templates, mailer, settings.shop.clone());
    let poller = Poller::connect(settings, handler)
        .await
        .expect("email worker starts");
    tokio::spawn(poller.run(stop.clone()));
}

/// The text of a PDF, page after page.
pub fn pdf_text(pdf: &[u8]) -> (usize, String) {
    let doc = lopdf::Document::load_mem(pdf).expect("a valid PDF");
    let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
    let text = doc.extract_text(&pages).expect("text");
    (pages.len(), text)
}
