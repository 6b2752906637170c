//! Links that work on any device, through the whole pipeline: every e-mail's order link opens
//! its order and invoice from a fresh client, and "find my orders" mails a one-time sign-in link
//! only to an address that has orders.

use std::time::Duration;

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use chrono::{DateTime, Utc};
use domain::{EventEnvelope, EventType, SignInRequested};
use reqwest::Client;
use serde_json::{Value, json};
use testkit::smtp::ReceivedMail;
use uuid::Uuid;

use crate::helpers::Pipeline;

const WAIT: Duration = Duration::from_secs(30);

/// The first `http…` address in `text` that contains `marker`.
fn link_in(text: &str, marker: &str) -> String {
    text.split_whitespace()
        .find(|word| word.starts_with("http") && word.contains(marker))
        .unwrap_or_else(|| panic!("no {marker} link in:\n{text}"))
        .to_owned()
}

/// The `name` parameter of a link's query.
fn param(link: &str, name: &str) -> String {
    let query = link.split_once('?').expect("a query").1;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in {link}"))
        .to_owned()
}

fn sign_in_mails(app: &Pipeline) -> Vec<ReceivedMail> {
    let mails = app.sink.messages().expect("mails");
    mails
        .into_iter()
        .filter(|m| m.subject.starts_with("Your sign-in link"))
        .collect()
}

async fn ask_link(app: &Pipeline, client: &Client, email: &str) {
    let response = client
        .post(format!("{}/api/sign-in/requests", app.address))
        .json(&json!({ "email": email }))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 202);
}

async fn use_link(app: &Pipeline, client: &Client, token: &str) -> reqwest::Response {
    client
        .post(format!("{}/api/sign-in", app.address))
        .json(&json!({ "token": token }))
        .send()
        .await
        .expect("sign-in")
}

/// Waits until every sign-in request has an outcome from the e-mail worker.
async fn wait_outcomes(app: &Pipeline, n: i64) {
    let sql = "SELECT count(*) FROM sign_in_requests WHERE mail_outcome IS NOT NULL";
    testkit::eventually("the e-mail worker to answer the requests", WAIT, || async {
        app.count(sql).await >= n
    })
    .await
    .expect("outcomes in time");
}

async fn outcome_for(app: &Pipeline, email: &str) -> String {
    sqlx::query_scalar("SELECT mail_outcome FROM sign_in_requests WHERE email = $1")
        .bind(email)
        .fetch_one(&app.pool)
        .await
        .expect("outcome")
}

#[tokio::test]
async fn every_emails_order_link_opens_the_order_and_its_invoice_on_another_device_for_90_days() {
    let app = Pipeline::start().await;
    let mug = app.add_product("E2E-MUG", "Enamel mug", 1450).await;
    let order_id = app
        .checkout(&app.shopper(), "ada@example.com", &[(mug, 2)])
        .await;
    app.wait_mails(2, WAIT).await;
    let placed: EventEnvelope = serde_json::from_value(
        sqlx::query_scalar::<_, Value>(
            "SELECT envelope FROM outbox WHERE event_type = 'order.placed' AND aggregate_id = $1",
        )
        .bind(order_id)
        .fetch_one(&app.pool)
        .await
        .expect("order.placed"),
    )
    .expect("envelope");
    let other_device = app.shopper();

    for mail in app.sink.messages().expect("mails") {
        let link = link_in(&mail.text, &format!("/orders/{order_id}?t="));
        assert!(
            mail.html.contains(&format!("/orders/{order_id}?t&#x3D;")),
            "{}",
            mail.subject
        );
        let token = param(&link, "t");
        let page = other_device
            .get(format!("{}/api/orders/{order_id}?t={token}", app.address))
            .send()
            .await
            .expect("order");
        assert_eq!(page.status(), 200, "{}", mail.subject);
        let pdf = other_device
            .get(format!(
                "{}/api/orders/{order_id}/invoice.pdf?t={token}",
                app.address
            ))
            .send()
            .await
            .expect("invoice");
        assert_eq!(pdf.status(), 200, "{}", mail.subject);
        assert!(pdf.bytes().await.expect("pdf").starts_with(b"%PDF-"));
    }
    let confirmation = app
        .sink
        .messages()
        .expect("mails")
        .into_iter()
        .find(|m| m.subject.starts_with("Thanks for your order"))
        .expect("the confirmation");
    let token = param(&link_in(&confirmation.text, "/orders/"), "t");
    let expires: i64 = token.split('.').next().unwrap().parse().unwrap();
    let ninety_days = chrono::Duration::days(90);
    assert_eq!(
        expires,
        (placed.occurred_at + ninety_days).timestamp(),
        "the link's life is counted from the event, so a re-send carries the same link"
    );
    let stranger = app.shopper();
    let without = stranger
        .get(format!("{}/api/orders/{order_id}", app.address))
        .send()
        .await
        .expect("order");
    assert_eq!(without.status(), 404);
}

#[tokio::test]
async fn find_my_orders_mails_a_one_time_link_only_to_an_address_with_orders() {
    let app = Pipeline::start().await;
    let mug = app.add_product("E2E-MUG", "Enamel mug", 1450).await;
    let order_id = app
        .checkout(&app.shopper(), "ada@example.com", &[(mug, 1)])
        .await;
    app.wait_mails(2, WAIT).await;
    let phone = app.shopper();

    ask_link(&app, &phone, "Ada@example.com").await;
    ask_link(&app, &phone, "nobody@example.com").await;
    wait_outcomes(&app, 2).await;
    app.wait_queues_idle().await;

    assert_eq!(outcome_for(&app, "Ada@example.com").await, "sent");
    assert_eq!(outcome_for(&app, "nobody@example.com").await, "no_orders");
    let mails = sign_in_mails(&app);
    assert_eq!(mails.len(), 1, "one sign-in mail, none to nobody@");
    assert_eq!(mails[0].to, "Ada@example.com");
    assert_eq!(
        app.count("SELECT count(*) FROM sent_emails WHERE kind = 'sign_in' AND order_id IS NULL")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT count(*) FROM order_timeline WHERE event_type LIKE 'email.%'")
            .await,
        2,
        "the sign-in mail is on no order's timeline"
    );
    let link = link_in(&mails[0].text, "/sign-in?token=");
    let token = param(&link, "token");

    let first = use_link(&app, &phone, &token).await;
    assert_eq!(first.status(), 200);
    let orders: Value = first.json().await.expect("orders");
    assert_eq!(orders["orders"][0]["order_id"], order_id.to_string());
    let page = phone
        .get(format!("{}/api/orders/{order_id}", app.address))
        .send()
        .await
        .expect("order");
    assert_eq!(page.status(), 200);
    let again = use_link(&app, &app.shopper(), &token).await;
    assert_eq!(again.status(), 410);
}

#[tokio::test]
async fn a_sign_in_request_delivered_twice_sends_one_email() {
    let app = Pipeline::start().await;
    let mug = app.add_product("E2E-MUG", "Enamel mug", 1450).await;
    app.checkout(&app.shopper(), "ada@example.com", &[(mug, 1)])
        .await;
    app.wait_mails(2, WAIT).await;
    ask_link(&app, &app.shopper(), "ada@example.com").await;
    app.wait_mails(3, WAIT).await;
    let (request_id, envelope): (Uuid, String) = sqlx::query_as(
        "SELECT aggregate_id, envelope::text FROM outbox
         WHERE event_type = 'customer.sign_in_requested'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("the event");

    let entry = SendMessageBatchRequestEntry::builder()
        .id("again")
        .message_body(envelope)
        .message_group_id(request_id.to_string())
        .message_deduplication_id(Uuid::new_v4().to_string())
        .build()
        .expect("entry");
    app.sqs
        .send_message_batch()
        .queue_url(app.queues.url("email"))
        .entries(entry)
        .send()
        .await
        .expect("send again");
    app.wait_queues_idle().await;

    assert_eq!(sign_in_mails(&app).len(), 1);
    assert_eq!(
        app.count("SELECT count(*) FROM sent_emails WHERE kind = 'sign_in'")
            .await,
        1
    );
}

/// Writes a sign-in request for `email` as the web-server would, but already `used` or expired.
async fn stale_request(app: &Pipeline, email: &str, used: bool) {
    let request_id = Uuid::new_v4();
    let expires_at: DateTime<Utc> = if used {
        Utc::now() + chrono::Duration::minutes(10)
    } else {
        Utc::now() - chrono::Duration::minutes(1)
    };
    let event = EventEnvelope::new(
        EventType::SignInRequested,
        request_id,
        "stale-test",
        "",
        &SignInRequested { expires_at },
    )
    .expect("envelope");
    let mut tx = app.pool.begin().await.expect("tx");
    sqlx::query(
        "INSERT INTO sign_in_requests (id, email, created_at, expires_at, used_at)
         VALUES ($1, $2, now() - interval '20 minutes', $3, CASE WHEN $4 THEN now() END)",
    )
    .bind(request_id)
    .bind(email)
    .bind(expires_at)
    .bind(used)
    .execute(&mut *tx)
    .await
    .expect("request");
    outbox::enqueue(&mut tx, &event).await.expect("event");
    tx.commit().await.expect("commit");
}

#[tokio::test]
async fn a_request_used_or_expired_before_the_worker_came_gets_no_email() {
    let app = Pipeline::start().await;
    let mug = app.add_product("E2E-MUG", "Enamel mug", 1450).await;
    app.checkout(&app.shopper(), "ada@example.com", &[(mug, 1)])
        .await;
    app.wait_mails(2, WAIT).await;

    stale_request(&app, "ada@example.com", true).await;
    stale_request(&app, "ada@example.com", false).await;
    wait_outcomes(&app, 2).await;

    assert_eq!(
        app.count("SELECT count(*) FROM sign_in_requests WHERE mail_outcome = 'stale'")
            .await,
        2
    );
    assert!(sign_in_mails(&app).is_empty());
}
