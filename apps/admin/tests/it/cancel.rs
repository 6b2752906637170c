use std::time::Duration;

use uuid::Uuid;

use crate::helpers::harness;

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn order_cancel_is_a_dry_run_without_yes_then_cancels_once_with_the_stock_back_and_order_cancelled_in_the_outbox()
 {
    let h = harness().await;
    let shelf = h.stock().await;
    let order_id = h.order("invoiced", HOUR).await;
    let id = order_id.to_string();
    assert_eq!(h.stock().await, shelf - 2);

    let dry_run = h.admin(&["order", "cancel", &id]).await;

    assert_eq!(
        dry_run.ok(),
        format!(
            "dry run: would cancel order {id} (invoiced, not paid): it ends cancelled, its stock \
             is released and order.cancelled is emitted (add --yes to cancel)\n"
        )
    );
    assert_eq!(h.order_state(order_id).await, ("invoiced".to_owned(), None));
    assert_eq!(h.stock().await, shelf - 2, "a dry run changes nothing");
    assert_eq!(h.cancellations(order_id).await, 0);

    let cancelled = h.admin(&["order", "cancel", &id, "--yes"]).await;

    let text = cancelled.ok();
    assert!(
        text.starts_with(&format!(
            "cancelled order {id} (was invoiced): its stock is released and order.cancelled is \
             in the outbox (correlation id admin-"
        )),
        "{text}"
    );
    assert_eq!(
        h.order_state(order_id).await,
        ("cancelled".to_owned(), Some("operator".to_owned()))
    );
    assert_eq!(h.stock().await, shelf, "the units are back");
    assert_eq!(h.cancellations(order_id).await, 1);
    let (correlation_id, envelope): (String, serde_json::Value) = sqlx::query_as(
        "SELECT envelope->>'correlation_id', envelope FROM outbox
         WHERE aggregate_id = $1 AND event_type = 'order.cancelled'",
    )
    .bind(order_id)
    .fetch_one(&h.pool)
    .await
    .expect("the order.cancelled row");
    assert!(text.contains(&correlation_id), "{text}");
    assert!(
        correlation_id
            .strip_prefix("admin-")
            .is_some_and(|uuid| uuid.parse::<Uuid>().is_ok()),
        "{correlation_id}"
    );
    assert_eq!(envelope["payload"]["reason"], "operator");
    assert_eq!(envelope["payload"]["paid"], false);

    let again = h.admin(&["order", "cancel", &id, "--yes"]).await;

    assert_eq!(
        again.ok(),
        format!(
            "order {id} was already cancelled (reason operator, status cancelled): nothing changed\n"
        )
    );
    assert_eq!(h.cancellations(order_id).await, 1, "one effect");
    assert_eq!(h.stock().await, shelf, "the units are released once");
    let json = h
        .admin(&["--json", "order", "cancel", &id, "--yes"])
        .await
        .json();
    assert_eq!(
        json,
        serde_json::json!({
            "order_id": id, "dry_run": false, "status": "cancelled",
            "outcome": "already_cancelled", "reason": "operator", "correlation_id": null
        })
    );

    let shown = h.admin(&["order", "show", &id]).await;
    let text = shown.ok();
    assert!(text.contains("status     cancelled\n"), "{text}");
    assert!(
        text.contains("waiting    nothing: it has ended\n"),
        "{text}"
    );
    assert!(
        text.contains("cancelled  operator, 20"),
        "reason and time: {text}"
    );
    assert!(
        text.contains("\npending\n  order.cancelled: waiting in the outbox to be published\n"),
        "{text}"
    );
}

#[tokio::test]
async fn a_shipped_order_cannot_be_cancelled_and_a_paid_one_is_left_for_billing_to_refund() {
    let h = harness().await;
    let shipped = h.order("shipped", HOUR).await;
    let paid = h.order("paid", HOUR).await;
    let shelf = h.stock().await;

    let shipped_id = shipped.to_string();
    for args in [
        vec!["order", "cancel", &shipped_id],
        vec!["order", "cancel", &shipped_id, "--yes"],
    ] {
        let refused = h.admin(&args).await;
        assert_eq!(
            refused.error(),
            format!("error: order {shipped} cannot be cancelled: it is shipped")
        );
    }
    assert_eq!(h.order_state(shipped).await, ("shipped".to_owned(), None));
    assert_eq!(h.cancellations(shipped).await, 0);

    let id = paid.to_string();
    let dry_run = h.admin(&["--json", "order", "cancel", &id]).await.json();
    assert_eq!(
        dry_run,
        serde_json::json!({
            "order_id": id, "dry_run": true, "status": "paid",
            "outcome": "refund_requested", "reason": "operator", "correlation_id": null
        })
    );
    let text = h.admin(&["order", "cancel", &id]).await;
    assert!(
        text.ok().starts_with(&format!(
            "dry run: would cancel order {id} (paid): billing refunds"
        )),
        "{}",
        text.stdout
    );
    assert_eq!(h.cancellations(paid).await, 0, "a dry run changes nothing");

    let json = h
        .admin(&["order", "cancel", &id, "--yes", "--json"])
        .await
        .json();

    assert_eq!(json["dry_run"], false);
    assert_eq!(json["status"], "paid");
    assert_eq!(json["outcome"], "refund_requested");
    assert!(
        json["correlation_id"]
            .as_str()
            .is_some_and(|c| c.starts_with("admin-")),
        "{json}"
    );
    assert_eq!(
        h.order_state(paid).await,
        ("paid".to_owned(), Some("operator".to_owned())),
        "paid until billing has refunded it"
    );
    assert_eq!(h.cancellations(paid).await, 1);
    assert_eq!(
        h.stock().await,
        shelf,
        "released with the refund, not before"
    );

    let unknown = Uuid::now_v7();
    let missing = h
        .admin(&["order", "cancel", &unknown.to_string(), "--yes"])
        .await;
    assert_eq!(
        missing.error(),
        format!("error: order {unknown} does not exist")
    );
}
