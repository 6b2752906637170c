//! `db retention`: each bounded table's rows against how long they are kept.

use crate::helpers::harness;

#[tokio::test]
async fn db_retention_counts_each_bounded_tables_rows_and_those_due_for_purge() {
    let h = harness().await;
    sqlx::query(
        "INSERT INTO inbox (consumer, event_id, processed_at) VALUES
             ('invoice', gen_random_uuid(), now() - interval '16 days'),
             ('invoice', gen_random_uuid(), now())",
    )
    .execute(&h.pool)
    .await
    .expect("inbox rows");

    let text = h.admin(&["db", "retention"]).await.ok().to_owned();
    let json = h.admin(&["--json", "db", "retention"]).await.json();

    let inbox = text
        .lines()
        .find(|l| l.trim_start().starts_with("inbox"))
        .unwrap_or_else(|| panic!("an inbox line: {text}"));
    let cells = inbox.split_whitespace().collect::<Vec<_>>().join(" ");
    // table, kept, rows, due for purge, oldest
    assert_eq!(cells, "inbox 15 d 0 h 2 1 16 d 0 h", "{text}");
    let tables = json["tables"].as_array().expect("tables");
    let names: Vec<&str> = tables
        .iter()
        .map(|t| t["table"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "inbox",
            "idempotency_keys",
            "stripe_events",
            "partner_events",
            "sign_in_requests",
            "session_grants"
        ]
    );
    assert_eq!(tables[0]["due"], 1);
    assert_eq!(tables[1]["retention_s"], 86_400);
    assert_eq!(tables[2]["rows"], 0);
}
