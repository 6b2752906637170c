use std::time::Duration;

use domain::Consumer;
use serde_json::{Value, json};
use testkit::LocalStack;
use tokio_util::sync::CancellationToken;

use crate::helpers::{Harness, harness_on};

#[tokio::test]
async fn checkout_succeeds_while_sqs_is_down_and_the_relay_catches_up_when_it_is_back() {
    let mut localstack = LocalStack::start().await.expect("private LocalStack");
    let h = harness_on(&localstack.endpoint()).await;
    let shutdown = CancellationToken::new();
    let relay = tokio::spawn(h.relay().await.run(shutdown.clone()));
    let (shop, ops) = spawn_web_server(&h).await;
    let client = reqwest::Client::new();

    localstack.stop();
    let mut order_ids = Vec::new();
    for _ in 0..5 {
        let response = client
            .post(format!("{shop}/api/orders"))
            .json(&order())
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status().as_u16(),
            201,
            "checkout works without SQS"
        );
        let body: Value = response.json().await.unwrap();
        order_ids.push(body["order_id"].as_str().unwrap().to_owned());
    }
    let ready = client.get(format!("{ops}/readyz")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 503, "readiness reports SQS down");
    testkit::eventually(
        "the relay to record failed attempts",
        Duration::from_secs(30),
        || async {
            let failing: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE attempts > 0")
                .fetch_one(&h.pool)
                .await
                .unwrap();
            failing > 0
        },
    )
    .await
    .unwrap();
    assert_eq!(h.published().await, 0);

    localstack.resume().await.expect("LocalStack back");
    testkit::create_queues(&h.sqs, &h.queues.prefix)
        .await
        .expect("queues again");
    h.wait_all_published(5, Duration::from_secs(60)).await;

    order_ids.sort();
    for consumer in [Consumer::Invoice, Consumer::Email] {
        let mut got: Vec<String> = h
            .receive(consumer, 5)
            .await
            .iter()
            .map(|r| r.envelope.order_id.to_string())
            .collect();
        got.sort();
        assert_eq!(got, order_ids, "{consumer}");
    }
    shutdown.cancel();
    relay.await.unwrap();
}

/// A web-server over the harness's database and SQS endpoint; returns the base URLs of its shop
/// and of its operations listener.
async fn spawn_web_server(h: &Harness) -> (String, String) {
    let redis_prefix = format!("t{}:", uuid::Uuid::new_v4().simple());
    let settings = testkit::test_settings(&[
        ("APP__DATABASE__URL", &h.db_url),
        ("APP__SQS__ENDPOINT_URL", &h.endpoint),
        ("APP__SQS__QUEUE_PREFIX", &h.queues.prefix),
        ("APP__REDIS__KEY_PREFIX", &redis_prefix),
        ("APP__HTTP__ADDR", "127.0.0.1:0"),
        ("APP__METRICS__ADDR", "127.0.0.1:0"),
    ]);
    let app = web_server::Application::build(settings)
        .await
        .expect("web-server builds");
    let url = format!("http://{}", app.local_addr().expect("bound"));
    let ops = format!("http://{}", app.ops_addr().unwrap().expect("ops listener"));
    tokio::spawn(app.run(std::future::pending()));
    (url, ops)
}

fn order() -> Value {
    json!({
        "customer": {"name": "Grace Hopper", "email": "grace@example.com",
                     "address": {"line1": "1 Harbour St", "city": "Arlington", "postal_code": "22201", "country": "US"}},
        "items": [{"product_id": 1, "quantity": 1}],
        "payment_method": "pm_card_visa"
    })
}
