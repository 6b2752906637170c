//! The SMTP connection pool against a private SMTP sink (the real aiosmtpd script), and against a
//! loopback listener that accepts connections and never answers.

use std::time::{Duration, Instant};

use email_service::smtp::{SendError, SmtpPool};
use lettre::Message;
use testkit::smtp::SmtpSink;

fn pool_for(port: u16, timeout_ms: u64) -> SmtpPool {
    let port = port.to_string();
    let timeout = timeout_ms.to_string();
    let settings = testkit::test_settings(&[
        ("APP__SMTP__PORT", port.as_str()),
        ("APP__SMTP__TIMEOUT_MS", timeout.as_str()),
    ]);
    SmtpPool::new(&settings.smtp).expect("SMTP settings")
}

fn mail(n: usize) -> Message {
    Message::builder()
        .from("shop@chargeflow.test".parse().expect("from"))
        .to(format!("shopper{n}@chargeflow.test").parse().expect("to"))
        .message_id(Some(format!("<pool-test-{n}@chargeflow.test>")))
        .subject(format!("mail {n}"))
        .body(format!("body {n}"))
        .expect("message")
}

async fn send(pool: &SmtpPool, n: usize) -> Result<(), SendError> {
    let message = mail(n);
    pool.send(message.envelope(), &message.formatted())
        .await
        .map(|_| ())
}

#[tokio::test]
async fn mails_sent_one_after_another_all_arrive() {
    let sink = SmtpSink::start().await.expect("SMTP sink");
    let pool = pool_for(sink.port(), 10_000);
    for n in 0..5 {
        send(&pool, n).await.expect("sent");
    }
    let mut ids: Vec<String> = sink
        .messages()
        .expect("mailbox")
        .into_iter()
        .map(|m| m.message_id)
        .collect();
    ids.sort();
    let expected: Vec<String> = (0..5)
        .map(|n| format!("pool-test-{n}@chargeflow.test"))
        .collect();
    assert_eq!(ids, expected);
}

#[tokio::test]
async fn after_the_server_restarts_one_send_fails_for_now_and_the_next_goes_through() {
    let mut sink = SmtpSink::start().await.expect("SMTP sink");
    let pool = pool_for(sink.port(), 10_000);
    send(&pool, 0).await.expect("first mail");
    sink.stop();
    sink.resume().await.expect("sink back");

    // The pooled connection died with the old server: that send fails, as one to retry (the
    // queue brings the message back), and the broken connection is dropped.
    let error = send(&pool, 1)
        .await
        .expect_err("the old connection is gone");
    assert!(
        !error.is_permanent(),
        "a dead connection is not a refusal: {error}"
    );
    send(&pool, 2).await.expect("a fresh connection");
    let received = sink.messages().expect("mailbox");
    assert!(
        received
            .iter()
            .any(|m| m.message_id == "pool-test-2@chargeflow.test"),
        "{received:?}"
    );
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_as_a_failure_to_retry() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listener");
    let port = listener.local_addr().expect("address").port();
    // Accepts and holds connections without a greeting.
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let pool = pool_for(port, 300);

    let started = Instant::now();
    let error = send(&pool, 0).await.expect_err("no answer");
    assert!(matches!(error, SendError::TimedOut(_)), "{error}");
    assert!(!error.is_permanent());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    silent.abort();
}
