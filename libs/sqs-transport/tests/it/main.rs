//! The transport's counters against LocalStack, read back from the process's recorder: every
//! call counted once by operation and outcome, and billed by 64 KiB of payload.
//!
//! One test only: the recorder is the test binary's, shared by every test in it.

use sqs_transport::{
    OutgoingMessage, QueueDirectory, consume,
    metrics::{BILLED_REQUESTS_TOTAL, MESSAGES_RECEIVED_TOTAL, REQUESTS_TOTAL},
};
use telemetry::metrics::sample;

fn message(n: usize, body: String) -> OutgoingMessage {
    OutgoingMessage {
        entry_id: format!("m{n}"),
        body,
        group_id: format!("order-{n}"),
        dedup_id: uuid::Uuid::new_v4().to_string(),
        attributes: vec![("event_type", "order.placed".to_owned())],
    }
}

/// How far `name{labels}` moved from `before` to `after` (a missing series reads 0).
fn moved(before: &str, after: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(after, name, labels).unwrap_or(0.0) - sample(before, name, labels).unwrap_or(0.0)
}

#[tokio::test]
async fn every_sqs_call_is_counted_by_operation_and_outcome_and_billed_by_64_kib() {
    let handle = telemetry::metrics::install();
    let endpoint = testkit::test_settings(&[]).sqs.endpoint_url;
    let sqs = testkit::sqs_client(&endpoint).await;
    let queues = testkit::fresh_queues(&sqs).await.expect("queues");
    let url = queues.url("invoice");
    let name = url.rsplit('/').next().expect("queue name");
    let before = handle.render();

    QueueDirectory::new(sqs.clone())
        .url(name)
        .await
        .expect("url");
    // Three small messages in one call, then one of 100 KiB alone: billed as 1 and 2 requests.
    let small: Vec<_> = (0..3).map(|n| message(n, "{}".to_owned())).collect();
    sqs_transport::send_batch(&sqs, url, &small)
        .await
        .expect("send");
    let large = message(9, "x".repeat(100 * 1024));
    consume::send_one(&sqs, url, &large)
        .await
        .expect("send one");
    let mut handles = Vec::new();
    while handles.len() < 4 {
        let received = consume::receive(&sqs, url, 10, 1, 30)
            .await
            .expect("receive");
        handles.extend(received.into_iter().map(|m| m.receipt_handle));
    }
    consume::change_visibility(&sqs, url, &handles[0], 30)
        .await
        .expect("visibility");
    consume::delete_batch(&sqs, url, &handles)
        .await
        .expect("delete");
    consume::receive(&sqs, url, 10, 0, 30)
        .await
        .expect("receive nothing");
    consume::approximate_depth(&sqs, url).await.expect("depth");
    let missing = format!("{endpoint}/000000000000/no-such-queue.fifo");
    consume::approximate_depth(&sqs, &missing)
        .await
        .expect_err("no such queue");

    let after = handle.render();
    let calls = |api, outcome| {
        moved(
            &before,
            &after,
            REQUESTS_TOTAL,
            &[("api", api), ("outcome", outcome)],
        )
    };
    let billed = |api| moved(&before, &after, BILLED_REQUESTS_TOTAL, &[("api", api)]);
    assert_eq!(calls("GetQueueUrl", "ok"), 1.0, "{after}");
    assert_eq!(calls("SendMessageBatch", "ok"), 1.0, "{after}");
    assert_eq!(billed("SendMessageBatch"), 1.0, "{after}");
    assert_eq!(calls("SendMessage", "ok"), 1.0, "{after}");
    assert_eq!(billed("SendMessage"), 2.0, "{after}");
    assert!(calls("ReceiveMessage", "ok") >= 1.0, "{after}");
    assert!(billed("ReceiveMessage") >= calls("ReceiveMessage", "ok") + 1.0);
    assert!(calls("ReceiveMessage", "empty") >= 1.0, "{after}");
    let received = moved(&before, &after, MESSAGES_RECEIVED_TOTAL, &[]);
    assert_eq!(received, 4.0, "{after}");
    assert_eq!(calls("ChangeMessageVisibility", "ok"), 1.0, "{after}");
    assert_eq!(calls("DeleteMessageBatch", "ok"), 1.0, "{after}");
    assert_eq!(calls("GetQueueAttributes", "ok"), 1.0, "{after}");
    assert_eq!(calls("GetQueueAttributes", "error"), 1.0, "{after}");
    assert_eq!(
        billed("GetQueueAttributes"),
        1.0,
        "a failed call is not billed: {after}"
    );
}
