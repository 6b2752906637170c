use std::time::Duration;

use aws_sdk_sqs::types::MessageAttributeValue;
use invoice_service::InvoiceHandler;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use worker::Poller;

use crate::helpers::harness;

#[tokio::test]
async fn poison_messages_are_parked_in_the_dlq_and_their_batch_mates_are_processed() {
    let h = harness().await;
    let good = h.place_order().await;
    let mut unknown_type = serde_json::to_value(h.place_order().await).expect("json");
    unknown_type["event_type"] = "order.teleported".into();
    let mut missing_order = h.place_order().await;
    missing_order.order_id = Uuid::new_v4();
    let bodies = [
        "{not json".to_owned(),
        unknown_type.to_string(),
        serde_json::to_string(&missing_order).expect("json"),
        serde_json::to_string(&good).expect("json"),
    ];
    h.send(&bodies).await;

    let settings = h.settings();
    let handler = InvoiceHandler::new(&settings.invoice).expect("handler");
    let poller = Poller::connect(&settings, handler).await.expect("poller");
    let stop = CancellationToken::new();
    let running = tokio::spawn(poller.run(stop.clone()));

    h.wait_status(good.order_id, "invoiced", Duration::from_secs(20))
        .await;
    let dlq = h.queues.dlq("invoice");
    let parked = testkit::receive_all(&h.sqs, dlq, 3, Duration::from_secs(20))
        .await
        .expect("dlq");
    stop.cancel();
    running.await.expect("the worker stops cleanly");

    let mut parked_bodies: Vec<String> = parked.iter().filter_map(|m| m.body.clone()).collect();
    parked_bodies.sort();
    let mut expected = bodies[..3].to_vec();
    expected.sort();
    assert_eq!(
        parked_bodies, expected,
        "exactly the three poison messages are parked, unchanged"
    );
    for message in &parked {
        let reason = message
            .message_attributes
            .as_ref()
            .and_then(|a| a.get("parked_reason"))
            .and_then(MessageAttributeValue::string_value)
            .unwrap_or_default();
        assert!(!reason.is_empty(), "a parked message says why");
    }
    assert_eq!(h.count("SELECT count(*) FROM invoices").await, 1);
    assert_eq!(
        testkit::queue_depth(&h.sqs, h.queues.url("invoice"))
            .await
            .expect("depth"),
        0
    );
}
