use serde_json::{Value, json};

use crate::helpers::{assert_error, shipment_body, spawn_sim};

#[tokio::test]
async fn a_created_shipment_can_be_fetched_by_its_id() {
    let sim = spawn_sim().await;

    let created = sim.create("key-1", &shipment_body("ord_1")).await;

    assert_eq!(created.status().as_u16(), 201);
    let shipment: Value = created.json().await.unwrap();
    let id = shipment["id"].as_str().unwrap();
    assert!(id.starts_with("shp_"), "{shipment}");
    assert_eq!(shipment["reference"], "ord_1");
    assert_eq!(shipment["carrier"], "ParcelNet");
    assert_eq!(shipment["status"], "created");
    let tracking = shipment["tracking_number"].as_str().unwrap();
    assert!(
        tracking.starts_with("PN") && tracking.len() >= 12,
        "{tracking}"
    );
    assert_eq!(
        shipment["tracking_url"],
        format!("https://track.example/{tracking}")
    );
    assert!(shipment["created_at"].is_string());
    let fetched = sim.get(&format!("/v1/shipments/{id}")).await;
    assert_eq!(fetched.status().as_u16(), 200);
    assert_eq!(fetched.json::<Value>().await.unwrap(), shipment);
}

#[tokio::test]
async fn an_unknown_shipment_id_is_not_found() {
    let sim = spawn_sim().await;

    let response = sim.get("/v1/shipments/shp_nothing").await;

    assert_error(response, 404, "shipment_not_found").await;
}

#[tokio::test]
async fn an_address_in_country_zz_is_undeliverable_and_nothing_is_created() {
    let sim = spawn_sim().await;
    let mut body = shipment_body("ord_zz");
    body["recipient"]["country"] = json!("ZZ");

    let response = sim.create("key-zz", &body).await;

    assert_error(response, 422, "undeliverable_address").await;
    assert_eq!(sim.stats(Some("ord_zz")).await, (0, 1));
}

#[tokio::test]
async fn a_postal_code_starting_with_000_is_undeliverable() {
    let sim = spawn_sim().await;
    let mut body = shipment_body("ord_000");
    body["recipient"]["postal_code"] = json!("00012");

    let response = sim.create("key-000", &body).await;

    assert_error(response, 422, "undeliverable_address").await;
}

#[tokio::test]
async fn a_request_without_an_idempotency_key_is_rejected() {
    let sim = spawn_sim().await;

    let response = sim
        .client
        .post(sim.url("/v1/shipments"))
        .json(&shipment_body("ord_nokey"))
        .send()
        .await
        .unwrap();

    assert_error(response, 400, "idempotency_key_missing").await;
    assert_eq!(sim.stats(None).await, (0, 1));
}

#[tokio::test]
async fn an_idempotency_key_that_is_too_long_or_not_visible_ascii_is_rejected() {
    let sim = spawn_sim().await;
    let body = shipment_body("ord_badkey");

    for key in [
        "a".repeat(256),
        "with space".to_owned(),
        "tab\there".to_owned(),
    ] {
        let response = sim.create(&key, &body).await;
        assert_error(response, 400, "idempotency_key_invalid").await;
    }
    assert_eq!(sim.create(&"a".repeat(255), &body).await.status(), 201);
}

#[tokio::test]
async fn a_blank_or_missing_field_is_rejected_with_its_name() {
    let sim = spawn_sim().await;
    let mut blank_city = shipment_body("ord_1");
    blank_city["recipient"]["city"] = json!("  ");
    let mut no_reference = shipment_body("ord_1");
    no_reference.as_object_mut().unwrap().remove("reference");

    let error = assert_error(sim.create("k1", &blank_city).await, 400, "missing_field").await;
    assert_eq!(error["field"], "recipient.city");
    let error = assert_error(sim.create("k2", &no_reference).await, 400, "missing_field").await;
    assert_eq!(error["field"], "reference");
}

#[tokio::test]
async fn a_bad_country_or_parcel_count_is_rejected() {
    let sim = spawn_sim().await;
    let mut country = shipment_body("ord_1");
    country["recipient"]["country"] = json!("GBR");
    let mut parcels = shipment_body("ord_1");
    parcels["parcels"] = json!(0);

    assert_error(sim.create("k1", &country).await, 400, "invalid_country").await;
    assert_error(sim.create("k2", &parcels).await, 400, "invalid_parcels").await;
    assert_eq!(sim.stats(None).await, (0, 2));
}

#[tokio::test]
async fn malformed_json_and_a_wrong_content_type_get_json_errors() {
    let sim = spawn_sim().await;
    let post = |content_type: &'static str, body: &'static str| {
        sim.client
            .post(sim.url("/v1/shipments"))
            .header("Idempotency-Key", "k")
            .header("Content-Type", content_type)
            .body(body)
            .send()
    };

    assert_error(
        post("application/json", "{").await.unwrap(),
        400,
        "invalid_json",
    )
    .await;
    let wrong_shape = post("application/json", "[1]").await.unwrap();
    assert_error(wrong_shape, 400, "invalid_body").await;
    let text = post("text/plain", "{}").await.unwrap();
    assert_error(text, 415, "unsupported_media_type").await;
}

#[tokio::test]
async fn unknown_paths_and_methods_get_json_errors() {
    let sim = spawn_sim().await;

    assert_error(sim.get("/v1/nothing-here").await, 404, "not_found").await;
    let delete = sim
        .client
        .delete(sim.url("/v1/shipments"))
        .send()
        .await
        .unwrap();
    assert_error(delete, 405, "method_not_allowed").await;
}

#[tokio::test]
async fn liveness_answers_ok() {
    let sim = spawn_sim().await;

    let response = sim.get("/healthz").await;

    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["status"], "ok");
}
