//! Live order streams at scale: one PostgreSQL listener per process however many streams are
//! open, every change delivered to every stream of its order, caps per session and per process
//! with a place given back when a stream closes, a resync after the listener's connection was
//! lost, and the end of every stream at shutdown or once its link has expired.

use std::time::{Duration, Instant};

use chrono::Utc;
use domain::{OrderStatus, links};
use sqlx::{Connection, PgConnection, PgPool, postgres::PgListener};
use tokio::sync::mpsc;
use uuid::Uuid;
use web_server::streams::{APPLICATION_NAME, Load, UNLISTEN_AFTER};

use crate::helpers::{EventStream, Shopper, TestApp, assert_error, spawn_app, spawn_app_with};

const KEY: &[u8] = testkit::LINK_SECRET.as_bytes();

/// A valid order link token for `order_id`, expiring in an hour.
fn token(order_id: Uuid) -> String {
    links::sign(KEY, order_id, Utc::now() + chrono::Duration::hours(1))
}

fn events_path(order_id: Uuid) -> String {
    format!("/api/orders/{order_id}/events")
}

fn linked_events_path(order_id: Uuid) -> String {
    format!("/api/orders/{order_id}/events?t={}", token(order_id))
}

/// `n` orders written as checkout would have (placed by no session of this test: streams open
/// them with a link).
async fn written_orders(app: &TestApp, n: usize) -> Vec<Uuid> {
    let mut orders = Vec::with_capacity(n);
    for _ in 0..n {
        let order_id = Uuid::now_v7();
        testkit::orders::write_order(&app.pool, order_id)
            .await
            .expect("order written");
        orders.push(order_id);
    }
    orders
}

/// `n` shoppers, each with its session cookie already set.
async fn sessions(app: &TestApp, n: usize) -> Vec<Shopper> {
    let mut shoppers = Vec::with_capacity(n);
    for _ in 0..n {
        let shopper = app.shopper();
        assert_eq!(shopper.get("/api/cart").await.status(), 200);
        shoppers.push(shopper);
    }
    shoppers
}

/// Moves a placed order to `invoiced` as the invoice worker does (lock, transition, commit);
/// returns the instant just before the commit, when its notification leaves.
async fn invoice(pool: &PgPool, order_id: Uuid) -> Instant {
    let mut tx = pool.begin().await.unwrap();
    let locked = ::orders::lock(&mut tx, order_id).await.unwrap().unwrap();
    let moved = ::orders::transition(&mut tx, order_id, locked.status, OrderStatus::Invoiced)
        .await
        .unwrap();
    assert_eq!(moved, ::orders::Transition::Applied);
    let committing = Instant::now();
    tx.commit().await.unwrap();
    committing
}

/// The listener's last statement (`LISTEN …`, `UNLISTEN …`, or empty before its first).
async fn listener_said(pool: &PgPool) -> String {
    sqlx::query_scalar(
        "SELECT query FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = $1",
    )
    .bind(APPLICATION_NAME)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// The database's connections that last ran a `LISTEN`, and those named as the order change
/// listener.
async fn listeners(db: impl sqlx::PgExecutor<'_>) -> (i64, i64) {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE query ILIKE 'LISTEN%'),
                count(*) FILTER (WHERE application_name = $1)
         FROM pg_stat_activity WHERE datname = current_database()",
    )
    .bind(APPLICATION_NAME)
    .fetch_one(db)
    .await
    .unwrap()
}

/// Waits until the server counts exactly `expected` open streams (it sees a client go when the
/// connection closes).
async fn settled(app: &TestApp, expected: Load) {
    let mut load = app.streams.load();
    let reached = tokio::time::timeout(Duration::from_secs(10), load.wait_for(|l| *l == expected))
        .await
        .map(|waited| waited.is_ok());
    assert_eq!(
        reached,
        Ok(true),
        "{expected:?} within 10 s, still {:?}",
        *load.borrow()
    );
}

/// An `order` event seen by one stream.
struct Seen {
    order_id: Uuid,
    status: String,
    at: Instant,
}

/// Reads the first two events of a stream (the order as opened, then its change) into `seen`,
/// then holds the stream open.
async fn follow(mut stream: EventStream, order_id: Uuid, seen: mpsc::UnboundedSender<Seen>) {
    for _ in 0..2 {
        let Some((_, order)) = stream.next().await else {
            return;
        };
        let status = order["status"].as_str().unwrap_or_default().to_owned();
        let at = Instant::now();
        let _ = seen.send(Seen {
            order_id,
            status,
            at,
        });
    }
    // Held open until the test ends.
    std::future::pending::<()>().await;
}

async fn next_seen(seen: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(Duration::from_secs(10), seen.recv())
        .await
        .expect("an event within 10 s")
        .expect("a stream is still read")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_open_streams_cost_one_database_listener_and_each_gets_every_change_within_200_ms()
 {
    const ORDERS: usize = 100;
    const STREAMS: usize = 200;
    const PER_SESSION: usize = 5;
    let app = spawn_app_with(&[("APP__STREAMS__PER_SESSION", "5")], |_| {}).await;
    let orders = written_orders(&app, ORDERS).await;
    let shoppers = sessions(&app, STREAMS / PER_SESSION).await;
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    // Stream i follows order i mod 100, from session i / 5: two streams per order, from two
    // sessions, each session at its cap.
    for i in 0..STREAMS {
        let order_id = orders[i % ORDERS];
        let response = shoppers[i / PER_SESSION]
            .get(&linked_events_path(order_id))
            .await;
        assert_eq!(response.status(), 200, "stream {i}");
        tokio::spawn(follow(
            EventStream::new(response),
            order_id,
            seen_tx.clone(),
        ));
    }
    for _ in 0..STREAMS {
        assert_eq!(next_seen(&mut seen).await.status, "placed");
    }
    settled(
        &app,
        Load {
            streams: STREAMS,
            orders: ORDERS,
        },
    )
    .await;

    assert_eq!(listeners(&app.pool).await, (1, 1), "one listener");
    let mut latencies = Vec::with_capacity(STREAMS);
    for &order_id in &orders {
        let committed = invoice(&app.pool, order_id).await;
        for _ in 0..STREAMS / ORDERS {
            let change = next_seen(&mut seen).await;
            assert_eq!(
                (change.order_id, change.status.as_str()),
                (order_id, "invoiced")
            );
            latencies.push(change.at - committed);
        }
    }

    latencies.sort();
    let (p50, max) = (
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1],
    );
    eprintln!(
        "{STREAMS} streams on {ORDERS} orders: commit to event p50 {:.1} ms, max {:.1} ms",
        p50.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
    assert!(
        max < Duration::from_millis(200),
        "every stream within 200 ms of the commit: max {max:?}"
    );
    assert_eq!(listeners(&app.pool).await, (1, 1), "still one listener");
}

#[tokio::test]
async fn a_session_over_its_stream_cap_gets_429_and_a_closed_stream_gives_its_place_back() {
    let app = spawn_app_with(&[("APP__STREAMS__PER_SESSION", "3")], |_| {}).await;
    let product = app.add_product(1450, 10).await;
    let shopper = app.shopper();
    let own: Uuid = shopper
        .place_order_for(product, "ada@example.com")
        .await
        .parse()
        .unwrap();
    let linked = written_orders(&app, 1).await[0];
    let mut open = Vec::new();
    for _ in 0..3 {
        let stream = shopper.get(&events_path(own)).await;
        assert_eq!(stream.status(), 200);
        open.push(stream);
    }

    // A stream opened with an order link counts for the session that opens it.
    let refused = shopper.get(&linked_events_path(linked)).await;
    assert_eq!(refused.headers()["retry-after"], "5");
    let error = assert_error(refused, 429, "too_many_streams").await;
    assert!(error["message"].as_str().unwrap().contains('3'), "{error}");
    let elsewhere = app.shopper().get(&linked_events_path(linked)).await;
    assert_eq!(
        elsewhere.status(),
        200,
        "another session has places of its own"
    );

    drop(open.pop());
    settled(
        &app,
        Load {
            streams: 3,
            orders: 2,
        },
    )
    .await;
    let again = shopper.get(&linked_events_path(linked)).await;
    assert_eq!(again.status(), 200);
}

#[tokio::test]
async fn closed_streams_give_all_their_places_back_and_leave_no_order_behind() {
    let app = spawn_app_with(&[("APP__STREAMS__PER_SESSION", "4")], |_| {}).await;
    let orders = written_orders(&app, 2).await;
    let shopper = app.shopper();
    let first = open_four(&shopper, &orders).await;
    assert_error(
        shopper.get(&linked_events_path(orders[0])).await,
        429,
        "too_many_streams",
    )
    .await;

    drop(first);
    settled(&app, Load::default()).await;
    let second = open_four(&shopper, &orders).await;

    assert_eq!(second.len(), 4);
}

/// Four streams, on `orders[0]` and `orders[1]` in turn, each answered `200`.
async fn open_four(shopper: &Shopper, orders: &[Uuid]) -> Vec<reqwest::Response> {
    let mut open = Vec::new();
    for i in 0..4 {
        let stream = shopper.get(&linked_events_path(orders[i % 2])).await;
        assert_eq!(stream.status(), 200, "stream {i}");
        open.push(stream);
    }
    open
}

#[tokio::test]
async fn a_process_over_its_stream_cap_answers_429_streams_full_to_every_session() {
    let app = spawn_app_with(
        &[
            ("APP__STREAMS__PER_SESSION", "2"),
            ("APP__STREAMS__PER_PROCESS", "3"),
        ],
        |_| {},
    )
    .await;
    let order_id = written_orders(&app, 1).await[0];
    let shoppers = sessions(&app, 3).await;
    let mut open = Vec::new();
    for shopper in [&shoppers[0], &shoppers[0], &shoppers[1]] {
        let stream = shopper.get(&linked_events_path(order_id)).await;
        assert_eq!(stream.status(), 200);
        open.push(stream);
    }

    let refused = shoppers[2].get(&linked_events_path(order_id)).await;

    assert_eq!(refused.headers()["retry-after"], "15");
    assert_error(refused, 429, "streams_full").await;
    let order = shoppers[2]
        .get(&format!("/api/orders/{order_id}?t={}", token(order_id)))
        .await;
    assert_eq!(order.status(), 200, "the order itself still reads");
}

#[tokio::test]
async fn the_listener_listens_only_while_streams_are_open_and_a_reopened_stream_still_gets_changes()
{
    let app = spawn_app().await;
    let order_id = written_orders(&app, 1).await[0];
    // Connected, but not listening: the database's notifications wake nobody here.
    assert_eq!(
        listeners(&app.pool).await,
        (0, 1),
        "connected, not listening"
    );

    let mut stream = EventStream::new(app.shopper().get(&linked_events_path(order_id)).await);
    let (_, first) = stream.next_within_10_s().await.expect("the order");
    assert_eq!(first["status"], "placed");
    testkit::eventually("LISTEN", Duration::from_secs(10), || async {
        listener_said(&app.pool).await.starts_with("LISTEN")
    })
    .await
    .expect("listening while a stream is open");
    invoice(&app.pool, order_id).await;
    let (_, changed) = stream.next_within_10_s().await.expect("the change");
    assert_eq!(changed["status"], "invoiced");

    drop(stream);
    settled(&app, Load::default()).await;
    let closed = Instant::now();
    testkit::eventually("UNLISTEN", UNLISTEN_AFTER * 2, || async {
        listener_said(&app.pool).await.starts_with("UNLISTEN")
    })
    .await
    .expect("no longer listening once the last stream closed");
    assert!(closed.elapsed() >= UNLISTEN_AFTER, "not before the grace");

    // Opened again: listening again, and a change made now reaches the stream.
    let mut stream = EventStream::new(app.shopper().get(&linked_events_path(order_id)).await);
    let (_, again) = stream.next_within_10_s().await.expect("the order again");
    assert_eq!(again["status"], "invoiced");
    sqlx::query("UPDATE orders SET status = 'paid' WHERE id = $1")
        .bind(order_id)
        .execute(&app.pool)
        .await
        .unwrap();
    let (_, paid) = stream.next_within_10_s().await.expect("the next change");
    assert_eq!(paid["status"], "paid");
    assert_eq!(listeners(&app.pool).await, (1, 1), "listening again");
}

#[tokio::test]
async fn a_change_made_while_the_listener_is_disconnected_reaches_the_stream_after_it_reconnects() {
    let app = spawn_app().await;
    let order_id = written_orders(&app, 1).await[0];
    let mut stream = EventStream::new(app.shopper().get(&linked_events_path(order_id)).await);
    let (_, first) = stream.next_within_10_s().await.expect("the order");
    assert_eq!(first["status"], "placed");
    let mut conn = app.pool.acquire().await.unwrap();
    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    // A database's connections are switched off from another one: the server's own.
    let server = std::env::var("APP__DATABASE__URL").expect("run through scripts/test.sh");
    let mut admin = PgConnection::connect(&server).await.unwrap();
    let allow = |yes: bool| {
        sqlx::AssertSqlSafe(format!("ALTER DATABASE {database} ALLOW_CONNECTIONS {yes}"))
    };

    // No new connection to the database (the listener cannot come back), then the listener's
    // connection is ended, and the order changes while nobody listens.
    sqlx::query(allow(false)).execute(&mut admin).await.unwrap();
    let ended: bool = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = $1",
    )
    .bind(APPLICATION_NAME)
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert!(ended, "the listener's connection is gone");
    sqlx::query("UPDATE orders SET status = 'invoiced' WHERE id = $1")
        .bind(order_id)
        .execute(&mut *conn)
        .await
        .unwrap();
    let (listening, _) = listeners(&mut *conn).await;
    assert_eq!(listening, 0, "the change was made while nobody listened");
    sqlx::query(allow(true)).execute(&mut admin).await.unwrap();

    let (_, changed) = stream.next_within_10_s().await.expect("the change");
    assert_eq!(changed["status"], "invoiced");
    assert_eq!(listeners(&app.pool).await, (1, 1), "listening again");
}

#[tokio::test]
async fn open_streams_end_when_the_server_shuts_down_and_give_their_places_back() {
    let app = spawn_app().await;
    let order_id = written_orders(&app, 1).await[0];
    let mut stream = EventStream::new(app.shopper().get(&linked_events_path(order_id)).await);
    assert!(stream.next_within_10_s().await.is_some());

    app.shutdown.cancel();

    assert!(stream.next_within_10_s().await.is_none(), "the stream ends");
    settled(&app, Load::default()).await;
}

#[tokio::test]
async fn a_stream_opened_with_a_link_ends_at_the_first_change_after_the_link_expired() {
    let app = spawn_app().await;
    let order_id = written_orders(&app, 1).await[0];
    let expires = Utc::now() + chrono::Duration::seconds(2);
    let t = links::sign(KEY, order_id, expires);
    let mut stream = EventStream::new(
        app.shopper()
            .get(&format!("/api/orders/{order_id}/events?t={t}"))
            .await,
    );
    assert!(stream.next_within_10_s().await.is_some());

    // Waiting for a clock, not for an event: the link is valid until `expires`.
    let left = (expires - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(left + Duration::from_millis(100)).await;
    invoice(&app.pool, order_id).await;

    assert!(
        stream.next_within_10_s().await.is_none(),
        "no update once the link expired: the stream ends"
    );
}

#[tokio::test]
async fn every_part_of_the_order_page_wakes_its_stream_when_it_changes() {
    let app = spawn_app().await;
    let order_id = written_orders(&app, 1).await[0];
    let mut stream = EventStream::new(app.shopper().get(&linked_events_path(order_id)).await);
    assert!(stream.next_within_10_s().await.is_some());
    // Each change as its worker writes it, and what the page then shows (a JSON pointer).
    let changes = [
        (
            "INSERT INTO invoices (order_id, year, seq, number, issued_on, currency, subtotal_minor,
                                   shipping_minor, tax_rate_bp, tax_minor, total_minor, pdf)
             VALUES ($1, 2026, 7, 'INV-2026-000007', current_date, 'EUR', 2900, 490, 1900, 644,
                     4034, '\\x255044462d312e34'::bytea)",
            "/invoice/number",
            "INV-2026-000007",
        ),
        (
            "INSERT INTO payments (order_id, amount_minor, currency) VALUES ($1, 4034, 'EUR')",
            "/payment/status",
            "pending",
        ),
        (
            "UPDATE payments SET status = 'succeeded', payment_intent_id = 'pi_1' WHERE order_id = $1",
            "/payment/status",
            "succeeded",
        ),
        (
            "INSERT INTO shipments (order_id, partner_shipment_id, carrier, tracking_number)
             VALUES ($1, 'shp_1', 'ParcelNet', 'PN000000000042')",
            "/tracking_number",
            "PN000000000042",
        ),
        (
            "UPDATE shipments SET delivered_at = '2026-12-04T10:00:00Z' WHERE order_id = $1",
            "/shipment/delivered_at",
            "2026-12-04T10:00:00Z",
        ),
        (
            "INSERT INTO order_timeline (event_id, order_id, event_type, occurred_at)
             VALUES (gen_random_uuid(), $1, 'email.sent', now())",
            "/timeline/0/event_type",
            "email.sent",
        ),
    ];

    for (sql, shown, expected) in changes {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(order_id)
            .execute(&app.pool)
            .await
            .unwrap();
        // A page read for an earlier wake-up (the listener's start, a folded notification) may
        // come first: the change must show within the 10 s, with no polling to find it.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut last = None;
        while last
            .as_ref()
            .and_then(|p: &serde_json::Value| p.pointer(shown))
            != Some(&serde_json::json!(expected))
        {
            let next = tokio::time::timeout_at(deadline, stream.next()).await;
            let Ok(Some((_, page))) = next else {
                panic!("after {sql}: no page showing {shown} = {expected}; last page: {last:?}");
            };
            last = Some(page);
        }
    }
}

#[tokio::test]
async fn a_payment_intent_id_recorded_alone_notifies_nobody() {
    let app = spawn_app().await;
    let orders = written_orders(&app, 2).await;
    sqlx::query("INSERT INTO payments (order_id, amount_minor, currency) VALUES ($1, 4034, 'EUR')")
        .bind(orders[0])
        .execute(&app.pool)
        .await
        .unwrap();
    let mut listener = PgListener::connect_with(&app.pool).await.unwrap();
    listener
        .listen(::orders::read::CHANGES_CHANNEL)
        .await
        .unwrap();

    // Billing records the PaymentIntent id before confirming it: the page does not show it.
    sqlx::query(
        "UPDATE payments SET payment_intent_id = 'pi_1', updated_at = now() WHERE order_id = $1",
    )
    .bind(orders[0])
    .execute(&app.pool)
    .await
    .unwrap();
    invoice(&app.pool, orders[1]).await;

    // Notifications arrive in commit order: the first one is the second order's.
    let first = tokio::time::timeout(Duration::from_secs(10), listener.recv())
        .await
        .expect("a notification within 10 s")
        .unwrap();
    assert_eq!(first.payload(), orders[1].to_string());
}
