use std::time::Duration;

use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName};
use uuid::Uuid;

use crate::helpers::{harness, insert_order, order_placed};

#[tokio::test]
async fn a_parked_message_is_listed_with_its_reason_and_after_the_fix_a_redrive_invoices_the_order_once()
 {
    let h = harness().await;
    let worker = h.start_invoice_worker().await;
    let order_id = Uuid::now_v7();
    // Poison that can be fixed: an order.placed event for an order that is not in the database
    // (the invoice worker parks it at once: "order … does not exist").
    let event = order_placed(order_id);
    h.publish("invoice", &event).await;
    h.wait_depth(h.queues.dlq("invoice"), 1).await;

    let listed = h.admin(&["dlq", "list", "invoice"]).await;
    let text = listed.ok();
    assert!(
        text.contains("invoice-dlq.fifo: 1 parked message"),
        "{text}"
    );
    assert!(text.contains(&format!("order    {order_id}")), "{text}");
    assert!(
        text.contains(&format!("order.placed {}", event.event_id)),
        "{text}"
    );
    assert!(
        text.contains(&format!("order {order_id} does not exist")),
        "{text}"
    );
    let json = h.admin(&["--json", "dlq", "list", "invoice"]).await.json();
    let parked = &json["messages"][0];
    assert_eq!(parked["group_id"], order_id.to_string());
    assert_eq!(parked["event_id"], event.event_id.to_string());
    assert!(
        parked["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("does not exist")
    );

    let dry_run = h.admin(&["dlq", "redrive", "invoice"]).await;
    assert!(
        dry_run
            .ok()
            .starts_with("dry run: would move 1 message from "),
        "{}",
        dry_run.stdout
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        h.depth(h.queues.dlq("invoice")).await,
        1,
        "a dry run moves nothing"
    );
    assert_eq!(
        h.count(
            "SELECT count(*) FROM inbox WHERE event_id = $1",
            event.event_id
        )
        .await,
        0
    );
    let listed_again = h.admin(&["--json", "dlq", "list", "invoice"]).await.json();
    assert_eq!(
        listed_again["messages"][0]["message_id"], parked["message_id"],
        "still parked"
    );

    insert_order(&h.pool, order_id).await; // the fix
    let redriven = h.admin(&["dlq", "redrive", "invoice", "--yes"]).await;
    assert!(
        redriven.ok().starts_with("moved 1 message from "),
        "{}",
        redriven.stdout
    );

    testkit::eventually(
        "the order to be invoiced",
        Duration::from_secs(20),
        || async { testkit::order_status(&h.pool, order_id).await == "invoiced" },
    )
    .await
    .expect("invoiced in time");
    h.wait_depth(h.queues.url("invoice"), 0).await;
    // Give a duplicate delivery, if there were one, the time to show.
    tokio::time::sleep(Duration::from_secs(2)).await;
    worker.stop().await;
    assert_eq!(
        h.count(
            "SELECT count(*) FROM invoices WHERE order_id = $1",
            order_id
        )
        .await,
        1
    );
    assert_eq!(
        h.count(
            "SELECT count(*) FROM outbox WHERE aggregate_id = $1 AND event_type = 'invoice.generated'",
            order_id
        )
        .await,
        1
    );
    assert_eq!(
        h.count(
            "SELECT count(*) FROM inbox WHERE event_id = $1",
            event.event_id
        )
        .await,
        1
    );
    assert_eq!(h.depth(h.queues.dlq("invoice")).await, 0);
    let empty = h.admin(&["dlq", "list", "invoice"]).await;
    assert!(empty.ok().contains("0 parked messages"), "{}", empty.stdout);
}

#[tokio::test]
async fn one_message_is_redriven_by_id_with_its_body_group_and_a_new_deduplication_id() {
    let h = harness().await;
    let body = r#"{"event_id":"e-1","event_type":"order.placed","order_id":"g-1"}"#;
    h.park("billing", "g-1", body, Some("the handler failed: boom"))
        .await;
    h.park("billing", "g-2", "{not json", None).await;
    let listed = h.admin(&["--json", "dlq", "list", "billing"]).await.json();
    let messages = listed["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 2);
    let by_group = |g: &str| {
        messages
            .iter()
            .find(|m| m["group_id"] == g)
            .expect("listed")
            .clone()
    };
    assert_eq!(by_group("g-1")["reason"], "the handler failed: boom");
    assert_eq!(
        by_group("g-2")["reason"],
        "exceeded maxReceiveCount",
        "moved by SQS's redrive policy: no reason attribute"
    );
    let wanted = by_group("g-1")["message_id"]
        .as_str()
        .expect("id")
        .to_owned();

    let moved = h
        .admin(&[
            "dlq",
            "redrive",
            "billing",
            "--message-id",
            &wanted,
            "--yes",
        ])
        .await;
    assert!(moved.ok().contains(&wanted), "{}", moved.stdout);

    let back = testkit::receive_all(&h.sqs, h.queues.url("billing"), 1, Duration::from_secs(10))
        .await
        .expect("receive");
    assert_eq!(back.len(), 1, "exactly the one message is back");
    assert_eq!(back[0].body.as_deref(), Some(body));
    let system = back[0].attributes.clone().unwrap_or_default();
    let attribute = |name| system.get(&name).cloned();
    assert_eq!(
        attribute(MessageSystemAttributeName::MessageGroupId).as_deref(),
        Some("g-1")
    );
    assert_eq!(
        attribute(MessageSystemAttributeName::MessageDeduplicationId),
        Some(format!("redrive-{wanted}"))
    );
    let attributes = back[0].message_attributes.clone().unwrap_or_default();
    assert_eq!(
        attributes
            .get("event_type")
            .and_then(MessageAttributeValue::string_value),
        Some("order.placed")
    );
    assert!(
        !attributes.contains_key("parked_reason"),
        "the parking note stays behind"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        h.depth(h.queues.dlq("billing")).await,
        1,
        "the other one stays parked"
    );

    let missing = h
        .admin(&[
            "dlq",
            "redrive",
            "billing",
            "--message-id",
            &wanted,
            "--yes",
        ])
        .await;
    assert!(
        missing
            .error()
            .contains(&format!("message {wanted} is not in ")),
        "{}",
        missing.stderr
    );
}
