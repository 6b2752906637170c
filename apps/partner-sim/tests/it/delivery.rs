use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use partner_sim::Faults;
use serde_json::{Value, json};

use crate::{
    helpers::{
        assert_error, delivery, shipment_body, spawn_sim, spawn_sim_delivering,
        spawn_stoppable_sim_delivering,
    },
    receiver::{Receiver, SECRET},
};

const PATIENCE: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_booked_shipment_is_delivered_after_the_delay_with_a_signed_callback() {
    let receiver = Receiver::start(0).await;
    let sim = spawn_sim_delivering(
        Faults::default(),
        delivery(Some(&receiver.url), SECRET, 200),
    )
    .await;
    let booked = Instant::now();

    let id = sim.book("key-1", "ord_1").await;

    assert_eq!(sim.shipment(&id).await["status"], "created");
    let received = receiver.wait_for(1, PATIENCE).await;
    assert!(received[0].at - booked >= Duration::from_millis(200));
    let event = received[0].json();
    let event_id = event["id"].as_str().unwrap();
    let hex = event_id.strip_prefix("evt_").expect("evt_ prefix");
    assert!(
        hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "{event_id}"
    );
    assert_eq!(event["type"], "shipment.delivered");
    rfc3339(&event["created_at"]);
    let shipment = sim.shipment(&id).await;
    assert_eq!(
        event["shipment"], shipment,
        "the shipment as GET answers it"
    );
    assert_eq!(shipment["status"], "delivered");
    rfc3339(&shipment["delivered_at"]);
    assert_eq!(received[0].headers["content-type"], "application/json");
    let signed_at = received[0].verified_timestamp(SECRET);
    assert!(
        (Utc::now().timestamp() - signed_at).abs() <= 5,
        "{signed_at}"
    );
    let totals = sim.stats_json(None).await;
    assert_eq!(
        (
            totals["callbacks_sent"].as_u64(),
            totals["callbacks_failed"].as_u64()
        ),
        (Some(1), Some(0))
    );
}

#[tokio::test]
async fn a_receiver_answering_500_twice_gets_the_same_event_a_third_time_and_then_no_more() {
    let receiver = Receiver::start(2).await;
    let sim = spawn_sim_delivering(
        Faults::default(),
        delivery(Some(&receiver.url), SECRET, 100),
    )
    .await;

    sim.book("key-1", "ord_1").await;

    let received = receiver.wait_for(3, PATIENCE).await;
    let ids: Vec<String> = received.iter().map(|r| r.event_id()).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert!(
        received.iter().all(|r| r.body == received[0].body),
        "the same body every time"
    );
    for r in &received {
        r.verified_timestamp(SECRET);
    }
    assert!(
        received[1].at - received[0].at >= Duration::from_millis(500),
        "first backoff"
    );
    assert!(
        received[2].at - received[1].at >= Duration::from_millis(1_000),
        "doubled"
    );
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(receiver.received().len(), 3, "no attempt after a 2xx");
    let totals = sim.stats_json(None).await;
    assert_eq!(totals["callbacks_sent"], 1);
    assert_eq!(totals["callbacks_failed"], 2);
}

#[tokio::test]
async fn a_replayed_booking_does_not_schedule_a_second_delivery() {
    let receiver = Receiver::start(0).await;
    let sim = spawn_sim_delivering(
        Faults::default(),
        delivery(Some(&receiver.url), SECRET, 150),
    )
    .await;
    let body = shipment_body("ord_1");

    assert_eq!(sim.create("key-1", &body).await.status().as_u16(), 201);
    let replay = sim.create("key-1", &body).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");

    receiver.wait_for(1, PATIENCE).await;
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(receiver.received().len(), 1);
    assert_eq!(sim.stats_json(None).await["callbacks_sent"], 1);
}

#[tokio::test]
async fn delivering_on_demand_twice_sends_the_same_event_id_twice() {
    let receiver = Receiver::start(0).await;
    let sim = spawn_sim_delivering(
        Faults::default(),
        delivery(Some(&receiver.url), SECRET, 60_000),
    )
    .await;
    let id = sim.book("key-1", "ord_1").await;

    let first = sim.deliver(&id).await;
    assert_eq!(first.status().as_u16(), 200);
    let first: Value = first.json().await.unwrap();
    receiver.wait_for(1, PATIENCE).await;
    let second: Value = sim.deliver(&id).await.json().await.unwrap();

    assert_eq!(first["status"], "delivered");
    assert_eq!(second, first, "delivering again changes nothing");
    let received = receiver.wait_for(2, PATIENCE).await;
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].event_id(), received[1].event_id());
    assert_eq!(received[0].json()["shipment"], first);
}

#[tokio::test]
async fn delivering_an_unknown_or_cancelled_shipment_on_demand_is_refused() {
    let sim = spawn_sim().await;
    let id = sim.book("key-1", "ord_1").await;
    assert_eq!(sim.cancel(&id).await.status().as_u16(), 200);

    assert_error(sim.deliver("shp_nothing").await, 404, "shipment_not_found").await;
    assert_error(sim.deliver(&id).await, 409, "shipment_cancelled").await;
    assert_eq!(sim.shipment(&id).await["status"], "cancelled");
}

#[tokio::test]
async fn without_a_callback_url_a_shipment_is_still_delivered_after_the_delay() {
    let sim = spawn_sim_delivering(Faults::default(), delivery(None, "", 100)).await;
    let id = sim.book("key-1", "ord_1").await;

    tokio::time::sleep(Duration::from_millis(300)).await;

    assert_eq!(sim.shipment(&id).await["status"], "delivered");
    assert_eq!(sim.stats_json(None).await["callbacks_sent"], 0);
}

#[tokio::test]
async fn the_delivery_delay_can_be_read_and_changed_at_run_time() {
    let sim = spawn_sim().await;
    let read: Value = sim.get("/v1/_sim/delivery").await.json().await.unwrap();
    assert_eq!(read, json!({"deliver_after_ms": 10_000}));

    let put = sim
        .client
        .put(sim.url("/v1/_sim/delivery"))
        .json(&json!({"deliver_after_ms": 100}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 200);
    let id = sim.book("key-1", "ord_1").await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    assert_eq!(sim.shipment(&id).await["status"], "delivered");
    let read: Value = sim.get("/v1/_sim/delivery").await.json().await.unwrap();
    assert_eq!(read["deliver_after_ms"], 100);
    let typo = sim
        .client
        .put(sim.url("/v1/_sim/delivery"))
        .json(&json!({"deliver_after": 5}))
        .send()
        .await
        .unwrap();
    assert_error(typo, 400, "invalid_body").await;
}

#[tokio::test]
async fn pending_callback_retries_are_dropped_at_shutdown() {
    let receiver = Receiver::start(usize::MAX).await;
    let stoppable = spawn_stoppable_sim_delivering(
        Faults::default(),
        delivery(Some(&receiver.url), SECRET, 60_000),
    )
    .await;
    let id = stoppable.sim.book("key-1", "ord_1").await;
    assert_eq!(stoppable.sim.deliver(&id).await.status().as_u16(), 200);
    receiver.wait_for(1, PATIENCE).await;

    stoppable.stop.send(()).unwrap();
    let stopped = tokio::time::timeout(Duration::from_secs(1), stoppable.server).await;

    assert!(matches!(stopped, Ok(Ok(Ok(())))), "{stopped:?}");
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(receiver.received().len(), 1, "no retry after shutdown");
}

fn rfc3339(value: &Value) -> DateTime<Utc> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("a timestamp, not {value}"));
    DateTime::parse_from_rfc3339(text)
        .expect("RFC 3339")
        .to_utc()
}
