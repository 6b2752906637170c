use std::time::Duration;

use uuid::Uuid;

use crate::helpers::{admin, harness};

const HOUR: Duration = Duration::from_secs(3600);

/// The text block of the order in an `orders stuck` report.
fn block(text: &str, order_id: Uuid) -> &str {
    let id = order_id.to_string();
    text.split_inclusive("\n\n")
        .find(|block| block.contains(&id))
        .unwrap_or_else(|| panic!("order {id} is listed: {text}"))
}

/// The JSON entry of the order in an `orders stuck --json` report.
fn entry(json: &serde_json::Value, order_id: Uuid) -> &serde_json::Value {
    json["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .find(|o| o["order_id"] == order_id.to_string())
        .unwrap_or_else(|| panic!("order {order_id} is listed: {json}"))
}

#[tokio::test]
async fn orders_stuck_lists_an_old_order_with_its_message_parked_in_the_invoice_dlq_and_not_fresh_or_settled_ones()
 {
    let h = harness().await;
    let worker = h.start_invoice_worker().await;
    let shelf = h.stock().await;
    let poisoned = h.order("placed", HOUR).await;
    h.add_overflowing_line(poisoned).await;
    let placed = h.record_placed(poisoned).await;
    h.publish("invoice", &placed).await;
    h.wait_depth(h.queues.dlq("invoice"), 1).await;
    worker.stop().await;
    let paid = h.order("paid", 2 * HOUR).await;
    let fresh = h.order("placed", Duration::ZERO).await;
    let shipped = h.order("shipped", 2 * HOUR).await;

    let listed = h.admin(&["orders", "stuck", "--older-than", "15m"]).await;

    let text = listed.ok();
    assert!(
        text.starts_with(
            "2 stuck orders: not settled and placed more than 15m ago, oldest first\n\n"
        ),
        "{text}"
    );
    assert!(
        text.find(&paid.to_string()) < text.find(&poisoned.to_string()),
        "oldest first: {text}"
    );
    let poisoned_block = block(text, poisoned);
    for line in [
        "status   placed\n",
        "age      1 h 0 min\n",
        "waiting  its invoice (invoice worker)\n",
        "next     order.placed: published, not yet processed by invoice\n",
    ] {
        assert!(
            poisoned_block.contains(line),
            "{line:?} in {poisoned_block}"
        );
    }
    let parked = format!(
        "parked   {}invoice-dlq.fifo: the handler failed: ",
        h.queues.prefix
    );
    assert!(poisoned_block.contains(&parked), "{poisoned_block}");
    assert!(
        poisoned_block.contains("the invoice amounts overflow (order.placed, message "),
        "{poisoned_block}"
    );
    let paid_block = block(text, paid);
    assert!(
        paid_block.contains("waiting  its shipment (shipping worker and partner)\n"),
        "{paid_block}"
    );
    assert!(
        !paid_block.contains("parked"),
        "nothing parked: {paid_block}"
    );
    assert!(!text.contains(&fresh.to_string()), "too fresh: {text}");
    assert!(!text.contains(&shipped.to_string()), "settled: {text}");
    assert!(!text.contains("could not be read"), "{text}");

    let json = h.admin(&["--json", "orders", "stuck"]).await.json();
    assert_eq!(json["older_than_s"], 900, "15m by default");
    assert_eq!(json["limit"], 100);
    assert_eq!(json["limit_reached"], false);
    assert_eq!(json["orders"].as_array().map(Vec::len), Some(2));
    let stuck = entry(&json, poisoned);
    assert_eq!(stuck["status"], "placed");
    assert_eq!(stuck["cancel_reason"], serde_json::Value::Null);
    assert!(stuck["age_s"].as_f64().is_some_and(|age| age >= 3600.0));
    assert_eq!(stuck["waiting_for"], "its invoice (invoice worker)");
    assert_eq!(stuck["next_step"]["event_type"], "order.placed");
    assert_eq!(stuck["next_step"]["consumer"], "invoice");
    assert_eq!(stuck["next_step"]["event_id"], placed.event_id.to_string());
    assert_eq!(
        stuck["next_step"]["description"],
        "order.placed: published, not yet processed by invoice"
    );
    let message = &stuck["parked"][0];
    assert_eq!(stuck["parked"].as_array().map(Vec::len), Some(1));
    assert_eq!(message["queue"], "invoice");
    assert_eq!(
        message["dead_letter_queue"],
        format!("{}invoice-dlq.fifo", h.queues.prefix)
    );
    assert_eq!(message["event_id"], placed.event_id.to_string());
    assert_eq!(message["order_id"], poisoned.to_string());
    assert!(
        message["reason"]
            .as_str()
            .is_some_and(|r| r.contains("the invoice amounts overflow")),
        "{message}"
    );
    assert_eq!(entry(&json, paid)["parked"], serde_json::json!([]));
    let queues = json["dead_letter_queues"].as_array().expect("queues");
    assert_eq!(queues.len(), 4);
    assert!(queues.iter().all(|q| q["error"].is_null()), "{json}");
    assert_eq!(h.depth(h.queues.dlq("invoice")).await, 1, "still parked");

    // The operator cancels the poisoned order: it is settled, and no longer stuck.
    let cancelled = h
        .admin(&["order", "cancel", &poisoned.to_string(), "--yes"])
        .await;
    assert!(
        cancelled
            .ok()
            .starts_with(&format!("cancelled order {poisoned} (was placed)")),
        "{}",
        cancelled.stdout
    );
    assert_eq!(
        h.stock().await,
        shelf - 6,
        "its three units are back; the three other orders keep their two each"
    );
    let after = h.admin(&["orders", "stuck"]).await;
    assert!(
        after.ok().starts_with("1 stuck order: "),
        "{}",
        after.stdout
    );
    assert!(!after.stdout.contains(&poisoned.to_string()));
    let none = h.admin(&["orders", "stuck", "--older-than", "3h"]).await;
    assert_eq!(
        none.ok(),
        "no stuck orders: every order placed more than 3h ago is settled\n"
    );
}

#[tokio::test]
async fn orders_stuck_still_lists_the_orders_when_the_dead_letter_queues_cannot_be_read() {
    let h = harness().await;
    let order_id = h.order("invoiced", HOUR).await;
    let mut env = h.env();
    env.push((
        "APP__SQS__ENDPOINT_URL",
        format!("http://127.0.0.1:{}", testkit::free_port()),
    ));

    let listed = admin(&env, &["orders", "stuck"]).await;

    let text = listed.ok();
    assert!(text.starts_with("1 stuck order: "), "{text}");
    assert!(
        text.contains(
            "the dead-letter queues could not be read, parked messages are not shown: \
             SQS is unreachable or refused the call: "
        ),
        "{text}"
    );
    assert!(
        block(text, order_id)
            .contains("waiting  its payment (billing worker, or Stripe's webhook)"),
        "{text}"
    );
    let json = admin(&env, &["orders", "stuck", "--json"]).await.json();
    assert_eq!(json["orders"][0]["order_id"], order_id.to_string());
    let queues = json["dead_letter_queues"].as_array().expect("queues");
    assert_eq!(queues.len(), 4);
    assert!(
        queues.iter().all(|q| q["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("SQS is unreachable"))),
        "{json}"
    );
}

#[tokio::test]
async fn an_age_limit_without_a_unit_is_a_usage_error() {
    let run = admin(&[], &["orders", "stuck", "--older-than", "15"]).await;

    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("expected a whole number and a unit: 90s, 15m, 2h or 1d"),
        "{}",
        run.stderr
    );
}
