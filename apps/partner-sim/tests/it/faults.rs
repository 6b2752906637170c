use std::time::{Duration, Instant};

use partner_sim::Faults;
use serde_json::{Value, json};

use crate::helpers::{assert_error, shipment_body, spawn_sim, spawn_sim_with, spawn_stoppable_sim};

fn faults(f: impl FnOnce(&mut Faults)) -> Faults {
    let mut faults = Faults::default();
    f(&mut faults);
    faults
}

#[tokio::test]
async fn with_error_rate_one_every_post_is_503_and_nothing_is_created() {
    let sim = spawn_sim_with(faults(|f| f.error_rate = 1.0)).await;

    for n in 0..5 {
        let response = sim
            .create(&format!("key-{n}"), &shipment_body("ord_1"))
            .await;
        assert_error(response, 503, "service_unavailable").await;
    }

    assert_eq!(sim.stats(Some("ord_1")).await, (0, 5));
}

#[tokio::test]
async fn an_error_fault_comes_before_any_check_of_the_request() {
    let sim = spawn_sim_with(faults(|f| f.error_rate = 1.0)).await;

    let no_key = sim
        .client
        .post(sim.url("/v1/shipments"))
        .send()
        .await
        .unwrap();

    assert_error(no_key, 503, "service_unavailable").await;
}

#[tokio::test]
async fn with_rate_limit_rate_one_every_post_is_429_with_retry_after() {
    let sim = spawn_sim_with(faults(|f| {
        f.rate_limit_rate = 1.0;
        f.retry_after_s = 7;
    }))
    .await;

    let response = sim.create("key-1", &shipment_body("ord_1")).await;

    assert_eq!(response.headers()["retry-after"], "7");
    assert_error(response, 429, "rate_limited").await;
    assert_eq!(sim.stats(Some("ord_1")).await, (0, 1));
}

#[tokio::test]
async fn with_hang_rate_one_a_client_times_out_and_nothing_is_created() {
    let sim = spawn_sim_with(faults(|f| {
        f.hang_rate = 1.0;
        f.hang_ms = 300;
    }))
    .await;

    let sent = sim
        .client
        .post(sim.url("/v1/shipments"))
        .header("Idempotency-Key", "key-1")
        .timeout(Duration::from_millis(100))
        .json(&shipment_body("ord_1"))
        .send()
        .await;

    assert!(
        sent.as_ref().is_err_and(reqwest::Error::is_timeout),
        "{sent:?}"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(sim.stats(Some("ord_1")).await, (0, 1));
}

#[tokio::test]
async fn a_hanging_request_is_closed_after_hang_ms_without_an_answer() {
    let sim = spawn_sim_with(faults(|f| {
        f.hang_rate = 1.0;
        f.hang_ms = 200;
    }))
    .await;
    let started = Instant::now();

    let sent = sim.create_raw("key-1", &shipment_body("ord_1")).await;

    assert!(started.elapsed() >= Duration::from_millis(200));
    let error = sent.expect_err("no answer");
    assert!(!error.is_timeout() && error.status().is_none(), "{error:?}");
}

#[tokio::test]
async fn latency_delays_every_answer_by_at_least_latency_ms() {
    let sim = spawn_sim_with(faults(|f| f.latency_ms = 250)).await;

    let started = Instant::now();
    let created = sim.create("key-1", &shipment_body("ord_1")).await;
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert_eq!(created.status().as_u16(), 201);
    let id = created.json::<Value>().await.unwrap()["id"].clone();

    let started = Instant::now();
    let fetched = sim
        .get(&format!("/v1/shipments/{}", id.as_str().unwrap()))
        .await;
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert_eq!(fetched.status().as_u16(), 200);
}

#[tokio::test]
async fn a_client_that_gives_up_during_latency_gets_its_shipment_on_retry() {
    let sim = spawn_sim_with(faults(|f| f.latency_ms = 300)).await;
    let body = shipment_body("ord_1");
    let impatient = sim
        .client
        .post(sim.url("/v1/shipments"))
        .header("Idempotency-Key", "key-1")
        .timeout(Duration::from_millis(50))
        .json(&body);

    assert!(impatient.send().await.is_err_and(|e| e.is_timeout()));
    let retry = sim.create("key-1", &body).await;

    assert_eq!(retry.status().as_u16(), 200);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(sim.stats(Some("ord_1")).await, (1, 2));
}

#[tokio::test]
async fn faults_set_over_http_are_read_back_and_take_effect() {
    let sim = spawn_sim().await;

    let put = sim.put_faults(&json!({"error_rate": 1.0, "seed": 3})).await;
    assert_eq!(put.status().as_u16(), 200);
    let read: Value = sim.get("/v1/_sim/faults").await.json().await.unwrap();

    assert_eq!(read["error_rate"], 1.0);
    assert_eq!(read["seed"], 3);
    assert_eq!(
        read["hang_ms"], 30_000,
        "missing fields take their defaults"
    );
    let response = sim.create("key-1", &shipment_body("ord_1")).await;
    assert_eq!(response.status().as_u16(), 503);
    sim.put_faults(&json!({})).await;
    assert_eq!(
        sim.create("key-1", &shipment_body("ord_1")).await.status(),
        201
    );
}

#[tokio::test]
async fn invalid_faults_are_rejected_and_the_old_ones_stay() {
    let sim = spawn_sim_with(faults(|f| f.latency_ms = 5)).await;

    let error = assert_error(
        sim.put_faults(&json!({"error_rate": 1.5})).await,
        400,
        "invalid_faults",
    )
    .await;
    assert_eq!(error["field"], "error_rate");
    let sum = sim
        .put_faults(&json!({"error_rate": 0.6, "hang_rate": 0.6}))
        .await;
    assert_error(sum, 400, "invalid_faults").await;
    let typo = sim.put_faults(&json!({"eror_rate": 0.1})).await;
    assert_error(typo, 400, "invalid_body").await;

    let read: Value = sim.get("/v1/_sim/faults").await.json().await.unwrap();
    assert_eq!(read["latency_ms"], 5);
    assert_eq!(read["error_rate"], 0.0);
}

#[tokio::test]
async fn the_same_seed_gives_the_same_sequence_of_faults() {
    let mixed = json!({"error_rate": 0.3, "rate_limit_rate": 0.3, "seed": 42});
    let mut sequences = Vec::new();
    for _ in 0..2 {
        let sim = spawn_sim().await;
        sim.put_faults(&mixed).await;
        let mut statuses = Vec::new();
        for n in 0..30 {
            let response = sim
                .create(&format!("key-{n}"), &shipment_body("ord_1"))
                .await;
            statuses.push(response.status().as_u16());
        }
        sequences.push(statuses);
    }

    assert_eq!(sequences[0], sequences[1]);
    for status in [201, 429, 503] {
        assert!(sequences[0].contains(&status), "{:?}", sequences[0]);
    }
}

#[tokio::test]
async fn a_hanging_request_does_not_hold_up_shutdown() {
    let stoppable = spawn_stoppable_sim(faults(|f| f.hang_rate = 1.0)).await;
    let sim = stoppable.sim;
    let hanging =
        tokio::spawn(async move { sim.create_raw("key-1", &shipment_body("ord_1")).await });
    tokio::time::sleep(Duration::from_millis(200)).await;

    stoppable.stop.send(()).unwrap();
    let stopped = tokio::time::timeout(Duration::from_secs(5), stoppable.server).await;

    assert!(matches!(stopped, Ok(Ok(Ok(())))), "{stopped:?}");
    assert!(
        hanging.await.unwrap().is_err(),
        "a hanging request gets no answer"
    );
}
