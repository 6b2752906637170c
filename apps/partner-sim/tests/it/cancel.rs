use std::time::Duration;

use partner_sim::Faults;
use serde_json::{Value, json};

use crate::{
    helpers::{assert_error, delivery, spawn_sim, spawn_sim_delivering, spawn_sim_with},
    receiver::{Receiver, SECRET},
};

#[tokio::test]
async fn a_cancelled_shipment_is_never_delivered_and_cancelling_again_answers_the_same() {
    let receiver = Receiver::start(0).await;
    let sim = spawn_sim_delivering(
        Faults::default(),
        delivery(Some(&receiver.url), SECRET, 150),
    )
    .await;
    let id = sim.book("key-1", "ord_1").await;

    let cancelled = sim.cancel(&id).await;
    assert_eq!(cancelled.status().as_u16(), 200);
    let cancelled: Value = cancelled.json().await.unwrap();
    let again = sim.cancel(&id).await;
    assert_eq!(again.status().as_u16(), 200);

    assert_eq!(cancelled["status"], "cancelled");
    assert!(cancelled["cancelled_at"].is_string(), "{cancelled}");
    assert_eq!(again.json::<Value>().await.unwrap(), cancelled);
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(
        receiver.received().is_empty(),
        "no callback for a cancelled shipment"
    );
    let shipment = sim.shipment(&id).await;
    assert_eq!(shipment, cancelled);
    assert!(shipment.get("delivered_at").is_none());
    let by_reference = sim.stats_json(Some("ord_1")).await;
    assert_eq!(by_reference["shipments_cancelled"], 1);
    assert!(
        by_reference.get("callbacks_sent").is_none(),
        "{by_reference}"
    );
    assert_eq!(sim.stats_json(None).await["shipments_cancelled"], 1);
}

#[tokio::test]
async fn cancelling_a_delivered_shipment_is_a_conflict() {
    let sim = spawn_sim().await;
    let id = sim.book("key-1", "ord_1").await;
    assert_eq!(sim.deliver(&id).await.status().as_u16(), 200);

    let refused = sim.cancel(&id).await;

    assert_error(refused, 409, "shipment_already_delivered").await;
    assert_eq!(sim.shipment(&id).await["status"], "delivered");
    assert_eq!(sim.stats_json(None).await["shipments_cancelled"], 0);
}

#[tokio::test]
async fn cancelling_an_unknown_shipment_is_not_found() {
    let sim = spawn_sim().await;

    assert_error(sim.cancel("shp_nothing").await, 404, "shipment_not_found").await;
}

#[tokio::test]
async fn cancelling_gets_the_same_faults_as_booking() {
    let sim = spawn_sim_with(Faults::default()).await;
    let id = sim.book("key-1", "ord_1").await;
    sim.put_faults(&json!({"rate_limit_rate": 1.0, "retry_after_s": 4}))
        .await;

    let limited = sim.cancel(&id).await;
    assert_eq!(limited.headers()["retry-after"], "4");
    assert_error(limited, 429, "rate_limited").await;
    sim.put_faults(&json!({"error_rate": 1.0})).await;
    assert_error(sim.cancel(&id).await, 503, "service_unavailable").await;

    assert_eq!(
        sim.shipment(&id).await["status"],
        "created",
        "a faulted cancel does nothing"
    );
    sim.put_faults(&json!({})).await;
    assert_eq!(sim.cancel(&id).await.status().as_u16(), 200);
}
