use crate::helpers::admin;

#[tokio::test]
async fn help_lists_every_command_and_the_dry_run_switch() {
    let top = admin(&[], &["--help"]).await;
    let text = top.ok();
    for word in ["outbox", "dlq", "order", "orders", "--json"] {
        assert!(text.contains(word), "{word} in {text}");
    }
    let dlq = admin(&[], &["dlq", "--help"]).await;
    assert!(
        dlq.ok().contains("list") && dlq.stdout.contains("redrive"),
        "{}",
        dlq.stdout
    );
    let redrive = admin(&[], &["dlq", "redrive", "--help"]).await;
    for word in [
        "--yes",
        "--message-id",
        "invoice, billing, shipping or email",
    ] {
        assert!(redrive.ok().contains(word), "{word} in {}", redrive.stdout);
    }
    let retry = admin(&[], &["outbox", "retry", "--help"]).await;
    assert!(retry.ok().contains("--yes"), "{}", retry.stdout);
    let order = admin(&[], &["order", "--help"]).await;
    assert!(
        order.ok().contains("show") && order.stdout.contains("cancel"),
        "{}",
        order.stdout
    );
    let cancel = admin(&[], &["order", "cancel", "--help"]).await;
    assert!(cancel.ok().contains("--yes"), "{}", cancel.stdout);
    let stuck = admin(&[], &["orders", "stuck", "--help"]).await;
    for word in ["--older-than", "--limit", "90s, 15m, 2h, 1d"] {
        assert!(stuck.ok().contains(word), "{word} in {}", stuck.stdout);
    }
}

#[tokio::test]
async fn an_unknown_queue_is_a_one_line_error() {
    let run = admin(&[], &["dlq", "list", "payments"]).await;

    assert_eq!(
        run.error(),
        "error: unknown queue `payments`: expected one of invoice, billing, shipping, email"
    );
}

#[tokio::test]
async fn an_unreachable_database_is_a_one_line_error() {
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/nothing",
        testkit::free_port()
    );
    let env = [
        ("APP__DATABASE__URL", url),
        ("APP__DATABASE__ACQUIRE_TIMEOUT_MS", "1000".to_owned()),
    ];

    let run = admin(&env, &["outbox", "status"]).await;

    assert!(
        run.error()
            .starts_with("error: cannot connect to PostgreSQL at 127.0.0.1:"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("postgres@"),
        "no credentials: {}",
        run.stderr
    );
}

#[tokio::test]
async fn an_unreachable_sqs_is_a_one_line_error() {
    let env = [(
        "APP__SQS__ENDPOINT_URL",
        format!("http://127.0.0.1:{}", testkit::free_port()),
    )];

    let run = admin(&env, &["dlq", "list", "invoice"]).await;

    assert!(
        run.error()
            .starts_with("error: SQS is unreachable or refused the call: "),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("DispatchFailure("),
        "no debug dump: {}",
        run.stderr
    );
}

#[tokio::test]
async fn a_queue_missing_in_sqs_is_a_one_line_error() {
    let env = [("APP__SQS__QUEUE_PREFIX", "no-such-prefix-".to_owned())];

    let run = admin(&env, &["dlq", "redrive", "email", "--yes"]).await;

    assert!(run.error().contains("GetQueueUrl"), "{}", run.stderr);
}
