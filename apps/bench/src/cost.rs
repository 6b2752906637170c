//! What a million orders would cost on AWS at the counts measured here: SQS FIFO requests (as
//! billed, per 64 KiB chunk) and the four worker functions' Lambda requests and GB-seconds at the
//! handler durations measured here, with each function's memory size and batch size read from
//! `deploy/template.yaml` (compiled in; `serde_norway`, as the e2e template test reads it; a test
//! checks every function is found).
//!
//! Prices are us-east-1 list prices, without the free tiers.

use serde_norway::Value;

use crate::scrape::{Scrape, moved};

/// USD per million SQS FIFO requests (first 100 billion a month, us-east-1; each 64 KiB chunk of
/// a request's payload is billed as one request). Source: <https://aws.amazon.com/sqs/pricing/>,
/// as published March–June 2026, read 2026-12-04.
pub const SQS_FIFO_USD_PER_MILLION_REQUESTS: f64 = 0.50;
/// USD per GB-second of Lambda on x86_64 (first 6 billion GB-s a month, us-east-1). Source:
/// <https://aws.amazon.com/lambda/pricing/>, read 2026-12-04.
pub const LAMBDA_USD_PER_GB_SECOND: f64 = 0.000_016_666_7;
/// USD per million Lambda requests (invocations). Source: <https://aws.amazon.com/lambda/pricing/>,
/// read 2026-12-04.
pub const LAMBDA_USD_PER_MILLION_REQUESTS: f64 = 0.20;

/// The AWS template the functions are sized in.
const TEMPLATE: &str = include_str!("../../../deploy/template.yaml");

/// Each worker process, its consumer (the `consumer` label of its metrics) and its function.
const WORKERS: [(&str, &str, &str); 4] = [
    ("invoice-service", "invoice", "InvoiceFunction"),
    ("billing-service", "billing", "BillingFunction"),
    ("shipping-service", "shipping", "ShippingFunction"),
    ("email-service", "email", "EmailFunction"),
];

/// A function's sizing in the template.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sizing {
    pub memory_mb: f64,
    pub batch_size: f64,
}

/// One worker's measured use: records handled and handler seconds in the window.
struct WorkerUse {
    process: &'static str,
    sizing: Option<Sizing>,
    records: f64,
    handler_s: f64,
}

/// The inputs of the estimate.
pub struct Cost {
    sqs_billed: f64,
    workers: Vec<WorkerUse>,
}

impl Cost {
    /// Each worker's records (`chargeflow_messages_total`, every outcome) and handler time
    /// (`chargeflow_handler_duration_seconds_sum`) in the window, and SQS's billed requests.
    pub fn measure(before: &[Scrape], after: &[Scrape], sqs_billed: f64) -> Self {
        let workers = WORKERS
            .iter()
            .map(|(process, _, function)| WorkerUse {
                process,
                sizing: sizing(TEMPLATE, function),
                records: moved(before, after, process, worker::metrics::MESSAGES_TOTAL, &[]),
                handler_s: moved(
                    before,
                    after,
                    process,
                    &format!("{}_sum", worker::metrics::HANDLER_DURATION),
                    &[],
                ),
            })
            .collect();
        Cost {
            sqs_billed,
            workers,
        }
    }

    /// The cost table per million orders, and the assumptions behind it.
    pub fn markdown(&self, orders: usize) -> String {
        let n = orders.max(1) as f64;
        let mut out = String::from(
            "| item | per order | per million orders | USD per million orders |\n| --- | ---: | ---: | ---: |\n",
        );
        let sqs = self.sqs_billed / n;
        let mut total = sqs * SQS_FIFO_USD_PER_MILLION_REQUESTS;
        out.push_str(&format!(
            "| SQS FIFO requests (billed) | {sqs:.2} | {:.2} M | {total:.2} |\n",
            sqs
        ));
        for w in &self.workers {
            let (rows, usd) = w.rows(n);
            out.push_str(&rows);
            total += usd;
        }
        out.push_str(&format!("| **total** | | | **{total:.2}** |\n"));
        out.push_str(&relay_line());
        out.push_str(ASSUMPTIONS);
        out
    }
}

impl WorkerUse {
    /// Its request and compute rows, and their USD per million orders.
    fn rows(&self, orders: f64) -> (String, f64) {
        let Some(sizing) = self.sizing else {
            return (
                format!("| `{}`: not in the template | | | |\n", self.process),
                0.0,
            );
        };
        let records = self.records / orders;
        let invocations = records / sizing.batch_size;
        let mean_ms = 1000.0 * self.handler_s / self.records.max(1.0);
        let gb_s = self.handler_s / orders * sizing.memory_mb / 1024.0;
        let requests_usd = invocations * LAMBDA_USD_PER_MILLION_REQUESTS;
        let compute_usd = gb_s * 1e6 * LAMBDA_USD_PER_GB_SECOND;
        let rows = format!(
            "| Lambda `{p}` requests ({records:.2} records / order, batches of {b}) | {invocations:.3} | {invocations:.3} M | {requests_usd:.2} |\n\
             | Lambda `{p}` compute ({mean_ms:.1} ms per record × {m} MB) | {gb_s:.5} GB-s | {:.0} GB-s | {compute_usd:.2} |\n",
            gb_s * 1e6,
            p = self.process,
            b = sizing.batch_size,
            m = sizing.memory_mb,
        );
        (rows, requests_usd + compute_usd)
    }
}

/// The relay's function runs on a schedule, whatever the orders: its monthly cost, apart.
fn relay_line() -> String {
    let Some(sizing) = sizing(TEMPLATE, "RelayFunction") else {
        return String::new();
    };
    let run_s = variable(TEMPLATE, "RelayFunction", "APP__RELAY__LAMBDA_RUN_S").unwrap_or(60.0);
    let runs = 30.0 * 24.0 * 60.0;
    let gb_s = runs * run_s * sizing.memory_mb / 1024.0;
    let usd = gb_s * LAMBDA_USD_PER_GB_SECOND + runs / 1e6 * LAMBDA_USD_PER_MILLION_REQUESTS;
    format!(
        "\nNot per order: the relay's function runs every minute for {run_s:.0} s at {} MB, \
         {gb_s:.0} GB-s and {runs:.0} requests in a 30-day month: **{usd:.2} USD a month** \
         whatever the orders (its SQS sends are in the SQS line).\n",
        sizing.memory_mb
    )
}

const ASSUMPTIONS: &str = "\nAssumptions: us-east-1 list prices without free tiers (SQS FIFO \
0.50 USD per million requests; Lambda x86 0.0000166667 USD per GB-s and 0.20 USD per million \
requests). The SQS line is every call our processes made here, counted on our side and billed \
by 64 KiB chunk — with long-running pollers at this report's 1 s receive wait, so empty receives \
included; under Lambda the event source mapping's polls replace the workers' receives and \
deletes and are billed alike, but AWS decides their number. Lambda requests assume full batches \
(the template's BatchSize; one record per invocation would multiply them by it). Lambda compute \
is each record's handler time measured here (`chargeflow_handler_duration_seconds`: inbox, \
handler, commit, on this loaded 2-core machine) at the function's MemorySize, billed per ms; \
start-up (cold starts) and the batch's own overhead are left out. The web-server is not a \
Lambda function and not in this estimate; nor are PostgreSQL, data transfer and CloudWatch.\n";

/// `MemorySize` (the function's, else the template's `Globals`) and the SQS event's `BatchSize`
/// (1 without one) of a function; `None` when the template has no such function.
pub fn sizing(template: &str, function: &str) -> Option<Sizing> {
    let root: Value = serde_norway::from_str(template).ok()?;
    let properties = root.get("Resources")?.get(function)?.get("Properties")?;
    let memory = properties
        .get("MemorySize")
        .or_else(|| root.get("Globals")?.get("Function")?.get("MemorySize"))?;
    let batch = properties
        .get("Events")
        .and_then(|events| events.get("Queue")?.get("Properties")?.get("BatchSize"));
    Some(Sizing {
        memory_mb: number(memory)?,
        batch_size: batch.and_then(number).unwrap_or(1.0),
    })
}

/// An environment variable's number in a function's `Environment.Variables`.
fn variable(template: &str, function: &str, name: &str) -> Option<f64> {
    let root: Value = serde_norway::from_str(template).ok()?;
    let properties = root.get("Resources")?.get(function)?.get("Properties")?;
    number(properties.get("Environment")?.get("Variables")?.get(name)?)
}

/// A number, or a string holding one (environment values are strings).
fn number(value: &Value) -> Option<f64> {
    value.as_f64().or_else(|| value.as_str()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_worker_function_and_the_relay_are_sized_in_the_template() {
        for (_, _, function) in WORKERS {
            let sizing = sizing(TEMPLATE, function).unwrap_or_else(|| panic!("{function}"));
            assert!(sizing.memory_mb >= 128.0, "{function}: {sizing:?}");
            assert!(sizing.batch_size >= 1.0, "{function}: {sizing:?}");
        }
        assert_eq!(
            sizing(TEMPLATE, "InvoiceFunction").map(|s| s.batch_size),
            Some(5.0)
        );
        assert!(sizing(TEMPLATE, "RelayFunction").is_some());
        assert_eq!(
            variable(TEMPLATE, "RelayFunction", "APP__RELAY__LAMBDA_RUN_S"),
            Some(50.0)
        );
    }

    #[test]
    fn a_function_s_own_memory_size_wins_over_the_globals() {
        let template = "Globals:\n  Function:\n    MemorySize: 256\n\nResources:\n  A:\n    Properties:\n      MemorySize: 1024 # big\n      Events:\n        Queue:\n          Properties:\n            BatchSize: 3\n  B:\n    Properties:\n      Timeout: !Ref Seconds\n";
        assert_eq!(
            sizing(template, "A"),
            Some(Sizing {
                memory_mb: 1024.0,
                batch_size: 3.0
            })
        );
        assert_eq!(
            sizing(template, "B"),
            Some(Sizing {
                memory_mb: 256.0,
                batch_size: 1.0
            })
        );
        assert_eq!(sizing(template, "C"), None);
    }
}
