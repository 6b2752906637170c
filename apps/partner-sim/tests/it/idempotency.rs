use serde_json::Value;

use crate::helpers::{TestSim, assert_error, shipment_body, spawn_sim};

#[tokio::test]
async fn the_same_key_and_body_return_the_same_shipment_and_create_it_once() {
    let sim = spawn_sim().await;
    let body = shipment_body("ord_1");

    let first = sim.create("key-1", &body).await;
    assert_eq!(first.status().as_u16(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let again = sim.create("key-1", &body).await;

    assert_eq!(again.status().as_u16(), 200);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    assert_eq!(sim.stats(Some("ord_1")).await, (1, 2));
}

#[tokio::test]
async fn the_same_key_with_another_body_is_a_conflict() {
    let sim = spawn_sim().await;
    sim.create("key-1", &shipment_body("ord_1")).await;

    let other = sim.create("key-1", &shipment_body("ord_2")).await;

    assert_error(other, 409, "idempotency_key_reused").await;
    assert_eq!(sim.stats(None).await, (1, 2));
}

#[tokio::test]
async fn a_replay_is_recognised_whatever_the_order_of_the_json_fields() {
    let sim = spawn_sim().await;
    let body = shipment_body("ord_1");
    sim.create("key-1", &body).await;
    let reordered = r#"{"parcels": 1, "recipient": {"country": "GB", "city": "London",
        "postal_code": "N1 9GU", "line1": "12 Analytical Row", "name": "Ada Lovelace"},
        "reference": "ord_1"}"#;

    let again = sim
        .client
        .post(sim.url("/v1/shipments"))
        .header("Idempotency-Key", "key-1")
        .header("Content-Type", "application/json")
        .body(reordered)
        .send()
        .await
        .unwrap();

    assert_eq!(again.status().as_u16(), 200);
}

#[tokio::test]
async fn other_keys_for_the_same_reference_create_other_shipments() {
    let sim = spawn_sim().await;
    let body = shipment_body("ord_1");

    let first: Value = sim.create("key-1", &body).await.json().await.unwrap();
    let second: Value = sim.create("key-2", &body).await.json().await.unwrap();

    assert_ne!(first["id"], second["id"]);
    assert_ne!(first["tracking_number"], second["tracking_number"]);
    assert_eq!(sim.stats(Some("ord_1")).await, (2, 2));
    assert_eq!(sim.stats(Some("ord_unknown")).await, (0, 0));
}

#[tokio::test]
async fn concurrent_requests_with_one_key_create_one_shipment() {
    let sim = spawn_sim().await;
    let body = shipment_body("ord_1");

    let answers = send_concurrently(&sim, &body, 20).await;

    let ids: std::collections::HashSet<_> = answers.iter().map(|a| a["id"].clone()).collect();
    assert_eq!(ids.len(), 1, "{answers:?}");
    assert_eq!(sim.stats(Some("ord_1")).await, (1, 20));
}

/// Sends `n` identical requests under one key at once; returns the answers' bodies.
async fn send_concurrently(sim: &TestSim, body: &Value, n: usize) -> Vec<Value> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let request = sim
            .client
            .post(sim.url("/v1/shipments"))
            .header("Idempotency-Key", "same-key")
            .json(body);
        tasks.spawn(async move { request.send().await.unwrap().json::<Value>().await.unwrap() });
    }
    let mut answers = Vec::new();
    while let Some(answer) = tasks.join_next().await {
        answers.push(answer.unwrap());
    }
    answers
        .iter()
        .for_each(|a| assert!(a.get("error").is_none(), "{a}"));
    answers
}
