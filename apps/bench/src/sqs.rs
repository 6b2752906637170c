//! SQS requests per order, by operation and by process, as our side counted them
//! (`chargeflow_sqs_requests_total` of `sqs-transport`, read from each process's `/metrics`).

use sqs_transport::metrics::{BILLED_REQUESTS_TOTAL, MESSAGES_RECEIVED_TOTAL, REQUESTS_TOTAL};

use crate::scrape::{Scrape, moved};

/// The rows of the table: label, operation, outcome.
const ROWS: [(&str, &str, &str); 8] = [
    ("SendMessageBatch", "SendMessageBatch", "ok"),
    ("SendMessage (parking in a DLQ)", "SendMessage", "ok"),
    ("ReceiveMessage with messages", "ReceiveMessage", "ok"),
    ("ReceiveMessage, empty", "ReceiveMessage", "empty"),
    ("DeleteMessageBatch", "DeleteMessageBatch", "ok"),
    ("ChangeMessageVisibility", "ChangeMessageVisibility", "ok"),
    ("GetQueueAttributes", "GetQueueAttributes", "ok"),
    ("GetQueueUrl", "GetQueueUrl", "ok"),
];

/// Every operation the transport calls (for the failed-calls row).
const APIS: [&str; 7] = [
    "SendMessageBatch",
    "SendMessage",
    "ReceiveMessage",
    "DeleteMessageBatch",
    "ChangeMessageVisibility",
    "GetQueueAttributes",
    "GetQueueUrl",
];

/// What the processes asked of SQS in the window.
pub struct SqsUse {
    /// Processes that made at least one SQS call.
    processes: Vec<String>,
    /// Per row of [`ROWS`] and a last row of failed calls: calls per process.
    calls: Vec<Vec<f64>>,
    /// Calls as billed (64 KiB chunks), all processes.
    pub billed: f64,
    /// Messages returned by receives, all processes.
    pub received: f64,
}

impl SqsUse {
    /// The counters' movement in each of `processes` between the scrapes.
    pub fn measure(processes: &[String], before: &[Scrape], after: &[Scrape]) -> Self {
        let calls_of = |p: &str, api: &str, outcome: &str| {
            let labels = [("api", api), ("outcome", outcome)];
            moved(before, after, p, REQUESTS_TOTAL, &labels)
        };
        let mut calls: Vec<Vec<f64>> = ROWS
            .iter()
            .map(|(_, api, outcome)| {
                processes
                    .iter()
                    .map(|p| calls_of(p, api, outcome))
                    .collect()
            })
            .collect();
        let failed = |p: &str| APIS.iter().map(|api| calls_of(p, api, "error")).sum();
        calls.push(processes.iter().map(|p| failed(p)).collect());
        let sum = |name: &str| {
            let each = processes.iter().map(|p| moved(before, after, p, name, &[]));
            each.sum::<f64>()
        };
        let active = (0..processes.len()).filter(|i| calls.iter().any(|row| row[*i] > 0.0));
        let active: Vec<usize> = active.collect();
        SqsUse {
            processes: active.iter().map(|i| processes[*i].clone()).collect(),
            calls: calls
                .into_iter()
                .map(|row| active.iter().map(|i| row[*i]).collect())
                .collect(),
            billed: sum(BILLED_REQUESTS_TOTAL),
            received: sum(MESSAGES_RECEIVED_TOTAL),
        }
    }

    /// Every call, all processes, all outcomes.
    pub fn total(&self) -> f64 {
        self.calls.iter().flatten().sum()
    }

    /// The table: calls per order by operation, all processes and each one.
    pub fn markdown(&self, orders: usize) -> String {
        let n = orders.max(1) as f64;
        let mut out = format!(
            "| SQS call | per order | {} |\n| --- | ---: |{}\n",
            self.processes.join(" | "),
            " ---: |".repeat(self.processes.len())
        );
        let labels = ROWS
            .iter()
            .map(|(label, _, _)| *label)
            .chain(["failed calls (any operation)"]);
        for (label, row) in labels.zip(&self.calls) {
            out.push_str(&line(label, row, n));
        }
        let totals: Vec<f64> = (0..self.processes.len())
            .map(|i| self.calls.iter().map(|row| row[i]).sum())
            .collect();
        out.push_str(&line("all SQS calls", &totals, n));
        out.push_str(&format!(
            "\n{:.2} SQS requests per order as AWS bills them (one per started 64 KiB of message \
             payload); {:.2} messages received per order.\n",
            self.billed / n,
            self.received / n
        ));
        out
    }
}

fn line(label: &str, per_process: &[f64], orders: f64) -> String {
    let total: f64 = per_process.iter().sum();
    let cells: String = per_process
        .iter()
        .map(|c| format!(" {:.3} |", c / orders))
        .collect();
    format!("| {label} | {:.3} |{cells}\n", total / orders)
}
