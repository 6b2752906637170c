//! The in-process rate limits (`APP__LIMITS__…`): a burst past a limit is refused with `429
//! rate_limited` and `Retry-After` while other clients go on, sessions and clients are counted
//! apart, new sessions are limited before they reach Redis, `X-Forwarded-For` counts only behind
//! trusted proxies, and a flood from one client leaves another's checkouts working.
//!
//! Clients differ by source address: each test's shoppers connect from their own addresses of
//! 127.0.0.0/8 (the server listens on 127.0.0.1; Linux routes the whole block to loopback), so
//! tests running at once never share a client's budget. The limits are lowered per test through
//! the settings; every other test runs with the generous ones of `testkit::test_settings`.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use reqwest::{Response, cookie::Jar};
use serde_json::{Value, json};
use settings::LimitSettings;
use telemetry::metrics::sample;
use web_server::metrics::RATE_LIMITED_TOTAL;

use crate::helpers::{Shopper, TestApp, assert_error, order_body, spawn_app_with};

/// The shop's default limits with `change` applied: what these tests start from, instead of
/// the tests' generous limits.
fn limits(change: impl FnOnce(&mut LimitSettings)) -> impl FnOnce(&mut settings::Settings) {
    move |settings| {
        let mut limits = LimitSettings::default();
        change(&mut limits);
        settings.limits = limits;
    }
}

/// Asserts a `429 rate_limited` JSON answer with a whole-second `Retry-After` of at least 1;
/// returns that wait.
async fn assert_rate_limited(response: Response) -> Duration {
    let retry_after = response
        .headers()
        .get("retry-after")
        .expect("a Retry-After header")
        .to_str()
        .unwrap()
        .parse::<u64>()
        .expect("Retry-After in whole seconds");
    assert!(retry_after >= 1, "{retry_after}");
    assert_error(response, 429, "rate_limited").await;
    Duration::from_secs(retry_after)
}

async fn put_item(shopper: &Shopper, product: i64, quantity: i64) -> Response {
    shopper
        .client
        .put(shopper.url(&format!("/api/cart/items/{product}")))
        .json(&json!({ "quantity": quantity }))
        .send()
        .await
        .expect("PUT")
}

async fn scrape(app: &TestApp) -> String {
    reqwest::get(format!("{}/metrics", app.ops_address))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("body")
}

fn refused(metrics: &str, limit: &str, per: &str) -> f64 {
    sample(
        metrics,
        RATE_LIMITED_TOTAL,
        &[("limit", limit), ("per", per)],
    )
    .unwrap_or(0.0)
}

/// A Redis connection to the test run's server.
async fn redis() -> redis::aio::MultiplexedConnection {
    let settings = testkit::test_settings(&[]);
    let url = secrecy::ExposeSecret::expose_secret(&settings.redis.url).to_owned();
    redis::Client::open(url)
        .expect("Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("Redis")
}

async fn session_keys(app: &TestApp) -> usize {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}session:*", app.redis_prefix))
        .query_async(&mut redis().await)
        .await
        .expect("KEYS");
    keys.len()
}

#[tokio::test]
async fn a_burst_of_checkouts_past_the_limit_is_refused_while_another_client_checks_out_and_it_can_again_after_retry_after()
 {
    let app = spawn_app_with(
        &[],
        limits(|l| {
            l.checkout_per_client_burst = 3;
            l.checkout_per_client_per_minute = 60;
        }),
    )
    .await;
    let product = app.add_product(1450, 100).await;
    let bursting = app.shopper_from("127.0.1.2", Some(Arc::new(Jar::default())));
    let other = app.shopper_from("127.0.1.3", Some(Arc::new(Jar::default())));
    let before = scrape(&app).await;

    for _ in 0..3 {
        assert_eq!(
            bursting
                .checkout(&order_body(&[(product, 1)]))
                .await
                .status(),
            201
        );
    }
    let refused_answer = bursting.checkout(&order_body(&[(product, 1)])).await;
    let wait = assert_rate_limited(refused_answer).await;
    assert_eq!(
        other.checkout(&order_body(&[(product, 1)])).await.status(),
        201,
        "another client checks out meanwhile"
    );
    assert_eq!(
        app.count("orders").await,
        4,
        "the refused one wrote nothing"
    );
    let after = scrape(&app).await;
    assert!(
        refused(&after, "checkout", "client") - refused(&before, "checkout", "client") >= 1.0,
        "{after}"
    );

    // The limit lets one more through once the announced time has passed.
    tokio::time::sleep(wait).await;
    assert_eq!(
        bursting
            .checkout(&order_body(&[(product, 1)]))
            .await
            .status(),
        201
    );
}

#[tokio::test]
async fn sessions_behind_one_address_share_its_limit_and_a_session_keeps_its_own_on_any_address() {
    // One more every minute: nothing refills while the test runs.
    let app = spawn_app_with(
        &[],
        limits(|l| {
            l.cart_write_per_client_burst = 4;
            l.cart_write_per_client_per_minute = 1;
            l.cart_write_per_session_burst = 2;
            l.cart_write_per_session_per_minute = 1;
        }),
    )
    .await;
    let product = app.add_product(990, 100).await;

    // Three shoppers behind one address: two sessions spend the address's four cart writes…
    let office = || app.shopper_from("127.0.2.2", Some(Arc::new(Jar::default())));
    let (first, second, third) = (office(), office(), office());
    for shopper in [&first, &second] {
        for quantity in 1..=2 {
            assert_eq!(put_item(shopper, product, quantity).await.status(), 200);
        }
    }
    // …so the third, whose own session has written nothing, is refused (reading is not limited).
    assert_eq!(third.get("/api/cart").await.status(), 200);
    assert_rate_limited(put_item(&third, product, 1).await).await;

    // One session from two addresses: its own limit holds on both.
    let jar = Arc::new(Jar::default());
    let at_home = app.shopper_from("127.0.2.3", Some(jar.clone()));
    let on_the_road = app.shopper_from("127.0.2.4", Some(jar));
    assert_eq!(at_home.get("/api/cart").await.status(), 200);
    for quantity in 1..=2 {
        assert_eq!(put_item(&at_home, product, quantity).await.status(), 200);
    }
    assert_rate_limited(put_item(&at_home, product, 3).await).await;
    assert_rate_limited(put_item(&on_the_road, product, 3).await).await;
    let someone_else = app.shopper_from("127.0.2.4", Some(Arc::new(Jar::default())));
    assert_eq!(put_item(&someone_else, product, 1).await.status(), 200);
}

#[tokio::test]
async fn requests_without_cookies_past_the_new_session_limit_are_refused_and_make_no_session() {
    let app = spawn_app_with(
        &[],
        limits(|l| {
            l.new_session_per_client_burst = 3;
            l.new_session_per_client_per_minute = 1;
        }),
    )
    .await;
    let cookieless = app.shopper_from("127.0.3.2", None);

    for _ in 0..3 {
        let answer = cookieless.get("/api/cart").await;
        assert_eq!(answer.status(), 200);
        assert!(answer.headers().contains_key("set-cookie"));
    }
    for _ in 0..5 {
        let answer = cookieless.get("/api/cart").await;
        assert!(!answer.headers().contains_key("set-cookie"));
        assert_rate_limited(answer).await;
    }
    assert_eq!(session_keys(&app).await, 3);

    // A shopper who kept the cookie is not a new session.
    let jar = Arc::new(Jar::default());
    let elsewhere = app.shopper_from("127.0.3.3", Some(jar.clone()));
    assert_eq!(elsewhere.get("/api/cart").await.status(), 200);
    let same_session_same_office = app.shopper_from("127.0.3.2", Some(jar));
    assert_eq!(
        same_session_same_office.get("/api/cart").await.status(),
        200
    );
    assert_eq!(session_keys(&app).await, 4);
}

#[tokio::test]
async fn cancellations_and_sign_in_requests_have_limits_of_their_own() {
    let app = spawn_app_with(
        &[],
        limits(|l| {
            l.cancel_per_session_burst = 1;
            l.cancel_per_session_per_minute = 1;
            l.sign_in_per_client_burst = 1;
            l.sign_in_per_client_per_minute = 1;
        }),
    )
    .await;
    let product = app.add_product(990, 10).await;
    let shopper = app.shopper_from("127.0.4.2", Some(Arc::new(Jar::default())));
    let first = shopper.place_order_for(product, "ada@example.com").await;
    let second = shopper.place_order_for(product, "ada@example.com").await;

    let cancel = |id: String| {
        let shopper = &shopper;
        async move { shopper.post(&format!("/api/orders/{id}/cancel")).await }
    };
    assert_eq!(cancel(first).await.status(), 200);
    assert_rate_limited(cancel(second.clone()).await).await;
    let order: Value = shopper
        .get(&format!("/api/orders/{second}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(order["status"], "placed", "{order}");

    let ada = json!({ "email": "ada@example.com" });
    let ask = || shopper.post_json("/api/sign-in/requests", &ada);
    assert_eq!(ask().await.status(), 202);
    assert_rate_limited(ask().await).await;
    assert_eq!(app.count("sign_in_requests").await, 1);
}

/// Three `GET /api/products` from 127.0.0.1 with `X-Forwarded-For: <forwarded>`.
async fn browse_as(app: &TestApp, forwarded: &str) -> Vec<u16> {
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let answer = client
            .get(format!("{}/api/products", app.address))
            .header("x-forwarded-for", forwarded)
            .send()
            .await
            .expect("GET");
        statuses.push(answer.status().as_u16());
    }
    statuses
}

#[tokio::test]
async fn x_forwarded_for_tells_clients_apart_behind_a_trusted_proxy_only() {
    let low_api_limit = || {
        limits(|l| {
            l.api_per_client_burst = 2;
            l.api_per_client_per_minute = 1;
        })
    };
    let behind_proxy =
        spawn_app_with(&[("APP__HTTP__TRUSTED_PROXIES", "1")], low_api_limit()).await;
    assert_eq!(
        browse_as(&behind_proxy, "203.0.113.1").await,
        [200, 200, 429]
    );
    assert_eq!(
        browse_as(&behind_proxy, "203.0.113.2").await,
        [200, 200, 429],
        "another client, as the proxy says"
    );

    let exposed = spawn_app_with(&[("APP__HTTP__TRUSTED_PROXIES", "0")], low_api_limit()).await;
    assert_eq!(browse_as(&exposed, "203.0.113.1").await, [200, 200, 429]);
    assert_eq!(
        browse_as(&exposed, "203.0.113.2").await,
        [429, 429, 429],
        "a forged header does not make another client"
    );
}

/// How many requests the flood sends at least, and how many it keeps in flight.
const FLOOD: usize = 10_000;
const IN_FLIGHT: usize = 64;

/// What the flood's requests were answered.
#[derive(Default)]
struct FloodTally {
    answered: AtomicUsize,
    created: AtomicUsize,
    refused: AtomicUsize,
    other: AtomicUsize,
}

/// Checkouts from one client, [`IN_FLIGHT`] at once, until at least [`FLOOD`] were sent and
/// `until` is set; reports progress on `progress` (answers so far). The flooding client runs on
/// a thread and runtime of its own, as a client on another machine would: it competes with the
/// server for the CPU, not for the server's task queue.
fn flood(
    flooder: Shopper,
    body: Value,
    until: Arc<AtomicBool>,
    tally: Arc<FloodTally>,
    progress: tokio::sync::watch::Sender<usize>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("the flood's runtime")
            .block_on(flood_from(flooder, body, until, tally, progress))
    })
}

async fn flood_from(
    flooder: Shopper,
    body: Value,
    until: Arc<AtomicBool>,
    tally: Arc<FloodTally>,
    progress: tokio::sync::watch::Sender<usize>,
) {
    let (flooder, body, sent) = (Arc::new(flooder), Arc::new(body), AtomicUsize::new(0));
    let send_one = async || {
        while sent.fetch_add(1, Ordering::Relaxed) < FLOOD || !until.load(Ordering::Relaxed) {
            let status = flooder.checkout(&body).await.status().as_u16();
            let counter = match status {
                201 => &tally.created,
                429 => &tally.refused,
                _ => &tally.other,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            progress.send_replace(tally.answered.fetch_add(1, Ordering::Relaxed) + 1);
        }
    };
    futures::future::join_all((0..IN_FLIGHT).map(|_| send_one())).await;
}

/// `n` checkouts, one after the other, each by a new shopper behind `source` (an office behind
/// one address); their latencies, all of them answered `201`.
async fn checkouts_from(app: &TestApp, source: &str, product: i64, n: usize) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(n);
    for _ in 0..n {
        let shopper = app.shopper_from(source, Some(Arc::new(Jar::default())));
        let started = Instant::now();
        let answer = shopper.checkout(&order_body(&[(product, 1)])).await;
        latencies.push(started.elapsed());
        assert_eq!(answer.status(), 201, "{:?}", answer.text().await);
    }
    latencies
}

fn median(mut latencies: Vec<Duration>) -> Duration {
    latencies.sort();
    latencies[latencies.len() / 2]
}

// The server on two worker threads, as its own runtime would be on this machine; the flood on a
// thread of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_ten_thousand_checkouts_from_one_client_leaves_another_clients_checkouts_working()
 {
    // The shop's default limits, unchanged.
    let app = spawn_app_with(&[], limits(|_| {})).await;
    // Each client its own product: the other client's checkouts are not to wait for the row lock
    // of the flood's few accepted ones.
    let product = app.add_product(990, 1_000).await;
    let flooded = app.add_product(990, 1_000).await;
    let defaults = LimitSettings::default();
    let other_orders = 10;

    let calm = checkouts_from(&app, "127.0.5.3", product, other_orders).await;

    let flooder = app.shopper_from("127.0.5.2", Some(Arc::new(Jar::default())));
    let done = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(FloodTally::default());
    let (progress, mut answered) = tokio::sync::watch::channel(0);
    let started = Instant::now();
    let flooding = flood(
        flooder,
        order_body(&[(flooded, 1)]),
        done.clone(),
        tally.clone(),
        progress,
    );
    answered
        .wait_for(|n| *n >= 500)
        .await
        .expect("the flood is under way");
    let during = checkouts_from(&app, "127.0.5.3", product, other_orders).await;
    let answered_meanwhile = *answered.borrow();
    done.store(true, Ordering::Relaxed);
    tokio::task::spawn_blocking(move || flooding.join())
        .await
        .expect("joined")
        .expect("the flood ran");
    let elapsed = started.elapsed();

    let created = tally.created.load(Ordering::Relaxed);
    let refused = tally.refused.load(Ordering::Relaxed);
    let answered_total = tally.answered.load(Ordering::Relaxed);
    assert_eq!(tally.other.load(Ordering::Relaxed), 0, "only 201 or 429");
    assert!(answered_total >= FLOOD);
    // GCRA: the burst, then one more per interval of the time the flood lasted.
    let allowed = defaults.checkout_per_client_burst as u64
        + elapsed.as_secs() * u64::from(defaults.checkout_per_client_per_minute) / 60
        + 1;
    assert!(created as u64 <= allowed, "{created} > {allowed}");
    assert_eq!(created + refused, answered_total);
    let slowest = during.iter().max().copied().unwrap_or_default();
    let (calm, during) = (median(calm), median(during));
    println!(
        "flood: {answered_total} checkouts from one client in {:.1} s ({:.0}/s): {created} \
         created, {refused} refused (429); the other client's {other_orders} checkouts during it \
         all created (the flood had {answered_meanwhile} answers when they were done); their \
         median latency {:.1} ms before the flood, {:.1} ms during it (slowest {:.1} ms): \
         ratio {:.2}",
        elapsed.as_secs_f64(),
        answered_total as f64 / elapsed.as_secs_f64(),
        calm.as_secs_f64() * 1000.0,
        during.as_secs_f64() * 1000.0,
        slowest.as_secs_f64() * 1000.0,
        during.as_secs_f64() / calm.as_secs_f64(),
    );
}
