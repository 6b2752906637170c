//! `Pipeline::start()`: a fresh database, fresh queues and a private SMTP sink, with the
//! web-server, the relay and both workers running in-process until the test ends.

use std::time::Duration;

use email_service::{EmailHandler, mailer::Mailer, templates::Templates};
use invoice_service::InvoiceHandler;
use outbox_relay::Relay;
use partner_sim::Faults;
use reqwest::Client;
use serde_json::{Value, json};
use settings::Settings;
use sqlx::PgPool;
use testkit::{Queues, smtp::SmtpSink, stripe::FakeStripe};
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
    /// The fake Stripe and the partner simulator, when the whole lifecycle runs.
    pub stripe: Option<FakeStripe>,
    pub partner: Option<String>,
    settings: Settings,
    stop: CancellationToken,
}

/// Which workers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    /// Invoice and e-mail only: orders stop at `invoiced`.
    InvoiceAndEmail,
    /// All four, with a fake Stripe and the partner simulator (with `Faults`).
    All,
    /// All but billing (start it with [`Pipeline::start_billing`]).
    AllButBilling,
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Pipeline {
    pub async fn start() -> Pipeline {
        Self::start_with(Workers::InvoiceAndEmail, Faults::default()).await
    }

    pub async fn start_with(workers: Workers, faults: Faults) -> Pipeline {
        Self::start_configured(workers, faults, &[]).await
    }

    /// All workers but billing (so nothing is paid), with unpaid orders expiring `after` their
    /// checkout and the relay's sweeper looking every second.
    pub async fn start_expiring(after: Duration) -> Pipeline {
        let after = after.as_secs().max(1).to_string();
        let settings = [
            ("APP__ORDERS__EXPIRE_AFTER_S", after.as_str()),
            ("APP__ORDERS__SWEEP_INTERVAL_S", "1"),
        ];
        Self::start_configured(Workers::AllButBilling, Faults::default(), &settings).await
    }

    /// [`Pipeline::start_with`], with `extra` settings over the test ones.
    pub async fn start_configured(
        workers: Workers,
        faults: Faults,
        extra: &[(&str, &str)],
    ) -> Pipeline {
        let db_url = testkit::fresh_database().await.expect("fresh database");
        let endpoint = testkit::test_settings(&[]).sqs.endpoint_url;
        let sqs = testkit::sqs_client(&endpoint).await;
        let queues = testkit::fresh_queues(&sqs).await.expect("fresh queues");
        let sink = SmtpSink::start().await.expect("SMTP sink");
        let smtp_port = sink.port().to_string();
        let redis_prefix = format!("t{}:", Uuid::new_v4().simple());
        let stop = CancellationToken::new();
        let (stripe, partner_listener) = match workers {
            Workers::InvoiceAndEmail => (None, None),
            Workers::All | Workers::AllButBilling => (
                Some(FakeStripe::start().await.expect("fake Stripe")),
                Some(
                    tokio::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .expect("partner port"),
                ),
            ),
        };
        let partner = partner_listener
            .as_ref()
            .map(|l| format!("http://{}", l.local_addr().expect("bound")));
        let stripe_base = stripe
            .as_ref()
            .map(FakeStripe::api_base)
            .unwrap_or_default();
        let partner_url = partner.clone().unwrap_or_default();
        let mut overrides: Vec<(&str, &str)> = vec![
            ("APP__DATABASE__URL", &db_url),
            ("APP__DATABASE__MAX_CONNECTIONS", "20"),
            ("APP__DATABASE__ACQUIRE_TIMEOUT_MS", "30000"),
            ("APP__REDIS__KEY_PREFIX", &redis_prefix),
            ("APP__HTTP__ADDR", "127.0.0.1:0"),
            ("APP__HTTP__STATIC_DIR", "no-front-end-in-tests"),
            ("APP__SQS__QUEUE_PREFIX", &queues.prefix),
            ("APP__RELAY__POLL_INTERVAL_MS", "100"),
            ("APP__WORKER__WAIT_TIME_S", "1"),
            ("APP__WORKER__RETRY_BASE_S", "1"),
            ("APP__SMTP__PORT", &smtp_port),
            ("APP__SMTP__TEMPLATES_DIR", TEMPLATES),
            ("APP__STRIPE__API_BASE", &stripe_base),
            ("APP__SHIPPING__PARTNER_URL", &partner_url),
            ("APP__SHIPPING__ATTEMPT_TIMEOUT_MS", "500"),
            ("APP__SHIPPING__BACKOFF_MAX_MS", "500"),
        ];
        overrides.extend_from_slice(extra);
        let settings = testkit::test_settings(&overrides);
        let address = spawn_web(&settings).await;
        if let Some(listener) = partner_listener {
            spawn_partner(listener, faults, &address, &stop);
        }
        spawn_relay(&settings, &stop).await;
        spawn_invoice_worker(&settings, &stop).await;
        spawn_email_worker(&settings, &stop).await;
        let pool = testkit::pool(&db_url, 5).await.expect("test pool");
        if workers != Workers::InvoiceAndEmail {
            spawn_shipping_worker(&settings, &pool, &stop).await;
        }
        if workers == Workers::All {
            spawn_billing_worker(&settings, &pool, &stop).await;
        }
        Pipeline {
            address,
            pool,
            sqs,
            queues,
            sink,
            stripe,
            partner,
            settings,
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
        self.checkout_as(shopper, email, items, "pm_card_visa", "GB")
            .await
    }

    /// Checks out paying with `payment_method`, shipping to `country`.
    pub async fn checkout_as(
        &self,
        shopper: &Client,
        email: &str,
        items: &[(i64, u32)],
        payment_method: &str,
        country: &str,
    ) -> Uuid {
        let items: Vec<Value> = items
            .iter()
            .map(|(id, quantity)| json!({"product_id": id, "quantity": quantity}))
            .collect();
        let body = json!({
            "customer": {
                "name": "Ada Lovelace",
                "email": email,
                "address": {"line1": "12 Analytical Row", "city": "London", "postal_code": "N1 7AA", "country": country}
            },
            "items": items,
            "payment_method": payment_method,
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
        testkit::order_status(&self.pool, order_id).await
    }

    pub async fn count(&self, sql: &str) -> i64 {
        testkit::scalar(&self.pool, sql).await
    }

    /// Starts the billing worker (for [`Workers::AllButBilling`]).
    pub async fn start_billing(&self) {
        spawn_billing_worker(&self.settings, &self.pool, &self.stop).await;
    }

    /// Waits until `n` orders are shipped (`shipped`, or already `delivered`).
    pub async fn wait_shipped(&self, n: i64, timeout: Duration) {
        let sql = "SELECT count(*) FROM orders WHERE status IN ('shipped', 'delivered')";
        testkit::eventually(&format!("{n} orders to be shipped"), timeout, || async {
            self.count(sql).await >= n
        })
        .await
        .expect("shipped in time");
    }

    /// Waits until `n` orders are in `status`.
    pub async fn wait_status(&self, status: &str, n: i64, timeout: Duration) {
        let sql = format!("SELECT count(*) FROM orders WHERE status = '{status}'");
        testkit::eventually(&format!("{n} orders to be {status}"), timeout, || async {
            self.count(&sql).await >= n
        })
        .await
        .expect("status in time");
    }

    /// Shipments the partner simulator created for the order.
    pub async fn partner_shipments(&self, order_id: Uuid) -> i64 {
        let partner = self.partner.as_ref().expect("the partner simulator runs");
        let stats: Value = reqwest::get(format!("{partner}/v1/_sim/stats?reference={order_id}"))
            .await
            .expect("stats")
            .json()
            .await
            .expect("json");
        stats["shipments_created"].as_i64().expect("count")
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
        let consumers: &[&str] = if self.stripe.is_some() {
            &["invoice", "billing", "shipping", "email"]
        } else {
            &["invoice", "email"]
        };
        for consumer in consumers.iter().copied() {
            let url = self.queues.url(consumer);
            testkit::wait_drained(&self.sqs, url, Duration::from_secs(30))
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
    let handler_timeout = Duration::from_secs(settings.worker.handler_timeout_s);
    let handler = EmailHandler::new(templates, mailer, settings.shop.clone(), handler_timeout)
        .expect("a link secret");
    let poller = Poller::connect(settings, handler)
        .await
        .expect("email worker starts");
    tokio::spawn(poller.run(stop.clone()));
}

async fn spawn_billing_worker(settings: &Settings, pool: &PgPool, stop: &CancellationToken) {
    let gateway = billing_service::gateway::Gateway::new(&settings.stripe).expect("gateway");
    let handler = billing_service::BillingHandler::new(gateway, pool.clone());
    let poller = Poller::connect(settings, handler)
        .await
        .expect("billing worker starts");
    tokio::spawn(poller.run(stop.clone()));
}

async fn spawn_shipping_worker(settings: &Settings, pool: &PgPool, stop: &CancellationToken) {
    let partner =
        shipping_service::partner::PartnerClient::new(&settings.shipping).expect("partner");
    let poller = Poller::connect(
        settings,
        shipping_service::ShippingHandler::new(partner).with_pool(pool.clone()),
    )
    .await
    .expect("shipping worker starts");
    tokio::spawn(poller.run(stop.clone()));
}

/// The partner simulator on `listener`, reporting deliveries to the web-server at `web` (signed
/// with the default callback secret) [`DELIVER_AFTER`] after booking.
fn spawn_partner(
    listener: tokio::net::TcpListener,
    faults: Faults,
    web: &str,
    stop: &CancellationToken,
) {
    let url = format!("{web}/api/partner/events").parse().expect("URL");
    let secret = partner_sim::Secret::new("partner_whsec_local");
    let delivery = partner_sim::Delivery {
        callback: Some(partner_sim::Callback::new(url, secret).expect("callback")),
        deliver_after: DELIVER_AFTER,
    };
    let sim = partner_sim::Application::with_delivery(listener, faults, delivery)
        .expect("partner simulator");
    let stop = stop.clone();
    tokio::spawn(sim.run(async move { stop.cancelled().await }));
}

/// How long after booking the partner simulator delivers a parcel in these tests.
pub const DELIVER_AFTER: Duration = Duration::from_millis(1500);

/// The text of a PDF, page after page.
pub fn pdf_text(pdf: &[u8]) -> (usize, String) {
    let doc = lopdf::Document::load_mem(pdf).expect("a valid PDF");
    let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
    let text = doc.extract_text(&pages).expect("text");
    (pages.len(), text)
}
