//! The benchmark report in a reduced run (a few orders), so that it cannot rot: the real
//! binaries of the workspace as separate processes against the test services. Needs the other
//! binaries built next to this one, as `cargo test --workspace` (scripts/test.sh) does.

use std::process::Command;

#[test]
fn a_reduced_report_run_writes_the_tables_the_chart_and_names_a_bottleneck() {
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
        "| relay backlog drain vs plain `SendMessageBatch` loop (3 rounds each",
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
    where_the_cost_goes(&report);
    let svg = std::fs::read_to_string(out.join("latency.svg")).expect("latency.svg");
    assert!(
        svg.starts_with("<svg") && svg.matches("<circle").count() == 4,
        "{svg}"
    );
    std::fs::remove_dir_all(&out).ok();
}

/// The cost tables: a CPU row for every process (ours and the services'), SQS calls, statements
/// and transactions per order above zero, and a finite cost estimate. The figures themselves are
/// not checked against anything: they are measurements.
fn where_the_cost_goes(report: &str) {
    let services = [
        "LocalStack (SQS)",
        "PostgreSQL (postmaster + backends)",
        "fake Stripe",
        "SMTP sink",
        "partner simulator",
        "Redis",
    ];
    for process in testkit::processes::PIPELINE.iter().chain(&services) {
        let row = row(report, &format!("| `{process}` |"));
        assert!(!row.contains("not found"), "{row}");
        assert!(number(row, 2) >= 0.0, "{row}");
    }
    for (row_start, column) in [
        ("| all SQS calls |", 2),
        ("| all statements (", 2),
        ("| committed |", 2),
    ] {
        let value = number(row(report, row_start), column);
        assert!(
            value.is_finite() && value > 0.0,
            "{row_start} {value} in\n{report}"
        );
    }
    let total = row(report, "| **total** |");
    let usd: f64 = total
        .rsplit("**")
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    assert!(usd.is_finite() && usd > 0.0, "{total}");
    for heading in [
        "### CPU per process",
        "### SQS requests per order",
        "### SQL per order",
        "### AWS cost per million orders",
    ] {
        assert!(report.contains(heading), "{heading} missing from\n{report}");
    }
}

/// The first line of the report that starts with `start`.
fn row<'a>(report: &'a str, start: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("no row {start} in\n{report}"))
}

/// The number in cell `column` (1 = the first) of a table row; NaN when it is not one.
fn number(row: &str, column: usize) -> f64 {
    row.split('|')
        .nth(column)
        .and_then(|cell| cell.trim().parse().ok())
        .unwrap_or(f64::NAN)
}
