use std::{collections::HashSet, time::Duration};

use crate::helpers::Pipeline;

#[tokio::test]
async fn emails_wait_while_the_smtp_server_is_down_and_are_sent_once_when_it_returns() {
    let mut app = Pipeline::start().await;
    let mug = app.add_product("E2E-MUG", "Enamel mug", 1450).await;
    app.sink.stop();
    for i in 0..3 {
        app.checkout(
            &app.shopper(),
            &format!("shopper{i}@example.com"),
            &[(mug, 1)],
        )
        .await;
    }
    app.wait_invoiced(3, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(app.count("SELECT count(*) FROM sent_emails").await, 0);

    app.sink.resume().await.expect("sink back");
    app.wait_mails(6, Duration::from_secs(60)).await;
    app.wait_queues_idle().await;

    let mails = app.sink.messages().expect("mails");
    let ids: HashSet<_> = mails.iter().map(|m| m.message_id.clone()).collect();
    assert_eq!((mails.len(), ids.len()), (6, 6), "each e-mail exactly once");
    assert_eq!(
        app.count("SELECT count(*) FROM sent_emails WHERE status = 'sent'")
            .await,
        6
    );
}

#[tokio::test]
async fn a_recipient_the_server_refuses_for_good_is_recorded_and_not_retried() {
    let app = Pipeline::start().await;
    let mug = app.add_product("E2E-MUG", "Enamel mug", 1450).await;
    app.checkout(&app.shopper(), "bounce@example.com", &[(mug, 1)])
        .await;
    app.wait_invoiced(1, Duration::from_secs(30)).await;
    testkit::eventually(
        "both e-mails to be recorded",
        Duration::from_secs(30),
        || async { app.count("SELECT count(*) FROM sent_emails").await == 2 },
    )
    .await
    .expect("recorded");
    app.wait_queues_idle().await;
    assert_eq!(
        app.count("SELECT count(*) FROM sent_emails WHERE status = 'rejected'")
            .await,
        2
    );
    // The sink quotes the recipient in its refusal, as real servers do; what is kept is not.
    let replies: Vec<String> = sqlx::query_scalar("SELECT smtp_response FROM sent_emails")
        .fetch_all(&app.pool)
        .await
        .expect("replies");
    for reply in replies {
        assert!(reply.contains("5.1.1") && !reply.contains('@'), "{reply}");
    }
    assert!(app.sink.messages().expect("mails").is_empty());
}

#[tokio::test]
async fn a_temporary_refusal_is_retried_and_the_email_sent_once() {
    let app = Pipeline::start().await;
    let mug = app.add_product("E2E-MUG", "Enamel mug", 1450).await;
    app.checkout(&app.shopper(), "greylist@example.com", &[(mug, 1)])
        .await;
    app.wait_mails(2, Duration::from_secs(30)).await;
    app.wait_queues_idle().await;
    assert_eq!(app.sink.messages().expect("mails").len(), 2);
    assert_eq!(
        app.count("SELECT count(*) FROM sent_emails WHERE status = 'sent'")
            .await,
        2
    );
}
