use std::time::Duration;

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use uuid::Uuid;

use crate::helpers::Pipeline;

/// Sends the stored envelope of each event of the order again to `queue`, with fresh
/// deduplication ids: what SQS's at-least-once delivery or a replayed relay would do.
async fn deliver_again(app: &Pipeline, order_id: Uuid, queue: &str, event_types: &[&str]) {
    let envelopes: Vec<(String, String)> = sqlx::query_as(
        "SELECT event_type, envelope::text FROM outbox WHERE aggregate_id = $1 ORDER BY id",
    )
    .bind(order_id)
    .fetch_all(&app.pool)
    .await
    .expect("outbox rows");
    let entries: Vec<_> = envelopes
        .into_iter()
        .filter(|(t, _)| event_types.contains(&t.as_str()))
        .enumerate()
        .map(|(i, (_, body))| {
            SendMessageBatchRequestEntry::builder()
                .id(format!("again{i}"))
                .message_body(body)
                .message_group_id(order_id.to_string())
                .message_deduplication_id(Uuid::new_v4().to_string())
                .build()
                .expect("entry")
        })
        .collect();
    assert_eq!(entries.len(), event_types.len());
    app.sqs
        .send_message_batch()
        .queue_url(app.queues.url(queue))
        .set_entries(Some(entries))
        .send()
        .await
        .expect("send again");
}

#[tokio::test]
async fn the_same_event_delivered_twice_produces_one_invoice_one_number_and_one_email() {
    let app = Pipeline::start().await;
    let mug = app.add_product("E2E-MUG", "Enamel mug", 1450).await;
    let order_id = app
        .checkout(&app.shopper(), "ada@example.com", &[(mug, 1)])
        .await;
    app.wait_invoiced(1, Duration::from_secs(30)).await;
    app.wait_mails(2, Duration::from_secs(30)).await;

    deliver_again(&app, order_id, "invoice", &["order.placed"]).await;
    deliver_again(
        &app,
        order_id,
        "email",
        &["order.placed", "invoice.generated"],
    )
    .await;
    app.wait_queues_idle().await;

    assert_eq!(app.count("SELECT count(*) FROM invoices").await, 1);
    assert_eq!(
        app.count("SELECT last_seq FROM invoice_counters").await,
        1,
        "no invoice number was used up"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM outbox WHERE event_type = 'invoice.generated'")
            .await,
        1
    );
    assert_eq!(app.count("SELECT count(*) FROM sent_emails").await, 2);
    assert_eq!(
        app.sink.messages().expect("mails").len(),
        2,
        "no e-mail was sent twice"
    );
}
