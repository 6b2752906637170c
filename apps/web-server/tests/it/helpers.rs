//! `spawn_app()`: a web-server on a free port over a fresh database and a fresh Redis key space.

use std::{
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use reqwest::{Client, Response, cookie::Jar};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use web_server::{Application, streams::Streams};

/// A running web-server and what a test needs to look behind it.
pub struct TestApp {
    pub address: String,
    /// The operations listener (`/metrics`, `/readyz`).
    pub ops_address: String,
    pub pool: PgPool,
    /// The app's database (for a pool of a test's own).
    pub db_url: String,
    /// The prefix of this app's Redis keys.
    pub redis_prefix: String,
    /// Cancel it to shut the server down (as Ctrl-C would).
    pub shutdown: CancellationToken,
    /// The server's open live order streams.
    pub streams: Streams,
}

/// One shopper: an HTTP client with its own cookie jar (its own session).
pub struct Shopper {
    pub client: Client,
    pub address: String,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[], |_| {}).await
}

/// [`spawn_app`] with `overrides` (`APP__…` pairs) on the test settings and then `adjust` (for
/// instance rate limits lower than the tests' generous ones).
pub async fn spawn_app_with(
    overrides: &[(&str, &str)],
    adjust: impl FnOnce(&mut settings::Settings),
) -> TestApp {
    let db_url = testkit::fresh_database().await.expect("fresh database");
    let redis_prefix = format!("t{}:", uuid::Uuid::new_v4().simple());
    let mut pairs = vec![
        ("APP__DATABASE__URL", db_url.as_str()),
        ("APP__DATABASE__MAX_CONNECTIONS", "30"),
        ("APP__REDIS__KEY_PREFIX", redis_prefix.as_str()),
        ("APP__HTTP__ADDR", "127.0.0.1:0"),
        ("APP__HTTP__STATIC_DIR", "no-front-end-in-tests"),
        ("APP__METRICS__ADDR", "127.0.0.1:0"),
        ("APP__METRICS__ORDERS_REFRESH_S", "0"),
    ];
    pairs.extend_from_slice(overrides);
    let mut settings = testkit::test_settings(&pairs);
    adjust(&mut settings);
    let app = Application::build(settings)
        .await
        .expect("application builds");
    let address = format!("http://{}", app.local_addr().expect("bound"));
    let ops = app
        .ops_addr()
        .expect("bound")
        .expect("an operations listener");
    let ops_address = format!("http://{ops}");
    let streams = app.streams();
    let shutdown = CancellationToken::new();
    tokio::spawn(app.run(shutdown.clone().cancelled_owned()));
    let pool = testkit::pool(&db_url, 5).await.expect("test pool");
    TestApp {
        address,
        ops_address,
        pool,
        db_url,
        redis_prefix,
        shutdown,
        streams,
    }
}

impl TestApp {
    pub fn shopper(&self) -> Shopper {
        let client = Client::builder()
            .cookie_store(true)
            .build()
            .expect("client");
        Shopper {
            client,
            address: self.address.clone(),
        }
    }

    /// A shopper connecting from `source`, an address of 127.0.0.0/8 (Linux routes all of it to
    /// loopback), so that the server sees it as a client of its own; with `jar`, it shares
    /// that cookie jar (and so its session) with other shoppers, else it sends no cookies.
    pub fn shopper_from(&self, source: &str, jar: Option<Arc<Jar>>) -> Shopper {
        let source: IpAddr = source.parse().expect("an IP address");
        let builder = Client::builder().local_address(source);
        let builder = match jar {
            Some(jar) => builder.cookie_provider(jar),
            None => builder,
        };
        Shopper {
            client: builder.build().expect("client"),
            address: self.address.clone(),
        }
    }

    /// The process id of the app's one PostgreSQL backend (an app started with
    /// `APP__DATABASE__MAX_CONNECTIONS=1`), with a pool of one connection to watch or signal it
    /// from: the test's own pool is closed first, so the one other client backend is the app's.
    pub async fn app_backend(&self) -> (PgPool, i32) {
        self.pool.close().await;
        let observer = testkit::pool(&self.db_url, 1).await.unwrap();
        let backend = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity
             WHERE datname = current_database() AND backend_type = 'client backend'
               AND pid <> pg_backend_pid()",
        )
        .fetch_one(&observer)
        .await
        .unwrap();
        (observer, backend)
    }

    /// Adds a product with the given stock; returns its id.
    pub async fn add_product(&self, price_minor: i64, stock: i32) -> i64 {
        static N: AtomicUsize = AtomicUsize::new(0);
        let sku = format!("TEST-{}", N.fetch_add(1, Ordering::Relaxed));
        sqlx::query_scalar(
            "INSERT INTO products (sku, name, description, price_minor, currency, stock, image_url)
             VALUES ($1, $1, 'test product', $2, 'EUR', $3, '/images/test.svg') RETURNING id",
        )
        .bind(sku)
        .bind(price_minor)
        .bind(stock)
        .fetch_one(&self.pool)
        .await
        .expect("insert product")
    }

    pub async fn stock(&self, product_id: i64) -> i32 {
        sqlx::query_scalar("SELECT stock FROM products WHERE id = $1")
            .bind(product_id)
            .fetch_one(&self.pool)
            .await
            .expect("stock")
    }

    pub async fn count(&self, table: &str) -> i64 {
        let sql = match table {
            "orders" => "SELECT count(*) FROM orders",
            "order_items" => "SELECT count(*) FROM order_items",
            "outbox" => "SELECT count(*) FROM outbox",
            "customers" => "SELECT count(*) FROM customers",
            "order_timeline" => "SELECT count(*) FROM order_timeline",
            "idempotency_keys" => "SELECT count(*) FROM idempotency_keys",
            "sign_in_requests" => "SELECT count(*) FROM sign_in_requests",
            "session_grants" => "SELECT count(*) FROM session_grants",
            other => panic!("no count for {other}"),
        };
        sqlx::query_scalar(sql)
            .fetch_one(&self.pool)
            .await
            .expect("count")
    }

    /// Asserts that no order, line, customer, outbox row, timeline entry or key was written.
    pub async fn assert_nothing_written(&self) {
        for table in [
            "orders",
            "order_items",
            "outbox",
            "customers",
            "order_timeline",
            "idempotency_keys",
        ] {
            assert_eq!(self.count(table).await, 0, "{table} must stay empty");
        }
    }
}

impl Shopper {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn checkout(&self, body: &Value) -> Response {
        self.client
            .post(self.url("/api/orders"))
            .json(body)
            .send()
            .await
            .expect("POST")
    }

    pub async fn post(&self, path: &str) -> Response {
        self.client.post(self.url(path)).send().await.expect("POST")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("POST")
    }

    /// Places an order of one unit of `product` for `email`; returns the order id.
    pub async fn place_order_for(&self, product: i64, email: &str) -> String {
        let mut body = order_body(&[(product, 1)]);
        body["customer"]["email"] = json!(email);
        let response = self.checkout(&body).await;
        assert_eq!(response.status(), 201);
        let placed: Value = response.json().await.expect("JSON");
        placed["order_id"].as_str().expect("order id").to_owned()
    }

    pub async fn checkout_with_key(&self, body: &Value, key: &str) -> Response {
        self.client
            .post(self.url("/api/orders"))
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await
            .expect("POST")
    }
}

/// A valid checkout body for the given `(product id, quantity)` lines.
pub fn order_body(lines: &[(i64, i64)]) -> Value {
    json!({
        "customer": {
            "name": "Ada Lovelace",
            "email": "ada@example.com",
            "address": {"line1": "12 Analytical Row", "city": "London", "postal_code": "N1 9GU", "country": "GB"}
        },
        "items": lines.iter().map(|(id, q)| json!({"product_id": id, "quantity": q})).collect::<Vec<_>>(),
        "payment_method": "pm_card_visa"
    })
}

/// An open Server-Sent Events answer, read one event at a time.
pub struct EventStream {
    response: Response,
    buffer: String,
}

impl EventStream {
    pub fn new(response: Response) -> Self {
        EventStream {
            response,
            buffer: String::new(),
        }
    }

    /// The next event (`event:` and `data:` lines up to a blank line, keep-alive comments
    /// skipped) as its name and JSON data; `None` once the server has ended the stream. Waits as
    /// long as it takes: callers bound it with a timeout.
    pub async fn next(&mut self) -> Option<(String, Value)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    block
                        .lines()
                        .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
                };
                if let (Some(event), Some(data)) = (field("event:"), field("data:")) {
                    return Some((event, serde_json::from_str(&data).expect("JSON data")));
                }
                continue;
            }
            let chunk = self.response.chunk().await.expect("stream")?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// [`EventStream::next`], failing the test after 10 s.
    pub async fn next_within_10_s(&mut self) -> Option<(String, Value)> {
        tokio::time::timeout(std::time::Duration::from_secs(10), self.next())
            .await
            .expect("an event (or the end) within 10 s")
    }
}

/// Asserts the status and the error code of a JSON error answer; returns the error object.
pub async fn assert_error(response: Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status for {code}");
    let body: Value = response.json().await.expect("error body is JSON");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body["error"].clone()
}
