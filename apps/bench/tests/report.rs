//! The benchmark report in a reduced run (a few orders), so that it cannot rot: the real
//! binaries of the workspace as separate processes against the test services. Needs the other
//! binaries built next to this one, as `cargo test --workspace` (scripts/test.sh) does.

use std::process::Command;

#[test]
fn a_reduced_report_run_writes_the_table_the_chart_and_names_a_bottleneck() {
    let out = std::env::temp_dir().join(format!("bench-report-{}", uuid::Uuid::new_v4().simple()));
    let output = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args([
            "report",
            "--orders",
            "4",
            "--rate",
            "4",
            "--relay-events",
            "40",
            "--stripe-payments",
            "10",
            "--out",
        ])
        .arg(&out)
        .env("RUST_LOG", "error")
        .output()
        .expect("run the benchmark");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let report = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    for line in [
        "| checkout (`POST /api/orders`) |",
        "| checkout → shipped |",
        "| commit-to-SQS lag",
        "| relay backlog drain vs plain `SendMessageBatch` loop |",
        "| worker `invoice` | 4 messages",
        "| worker `shipping` | 4 messages",
        "still queued when the last order shipped",
        "| fake Stripe alone (10 payments",
        "billing's rate above is **",
        "**Bottleneck: ",
    ] {
        assert!(report.contains(line), "{line} missing from\n{report}");
    }
    for process in testkit::processes::PIPELINE {
        let row = report
            .lines()
            .find(|l| l.starts_with(&format!("| {process} |")))
            .unwrap_or_else(|| panic!("no RSS row for {process}"));
        assert!(!row.contains("| 0.0 MiB |"), "{row}");
    }
    let svg = std::fs::read_to_string(out.join("latency.svg")).expect("latency.svg");
    assert!(
        svg.starts_with("<svg") && svg.matches("<circle").count() == 4,
        "{svg}"
    );
    std::fs::remove_dir_all(&out).ok();
}
