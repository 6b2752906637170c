//! What the runtime measures, recorded in one place for the poller and the Lambda adapter.
//!
//! Every message [`process`](crate::process) decides on counts once in [`MESSAGES_TOTAL`] by
//! its outcome, and every decoded one adds its time to [`HANDLER_DURATION`]. The poller keeps
//! [`DLQ_DEPTH`] of its dead-letter queue current. Under Lambda the same series are recorded,
//! but nothing serves them (yet): they go nowhere.

use std::time::Duration;

use domain::Consumer;

use crate::Disposition;

/// Counter `chargeflow_messages_total{consumer, outcome}`: messages decided on, by outcome
/// (`done`, `duplicate`, `retried`, `parked`).
pub const MESSAGES_TOTAL: &str = "chargeflow_messages_total";
/// Histogram `chargeflow_handler_duration_seconds{consumer}`: time from the start of the
/// transaction to the decision (inbox check, handler, commit), for every decoded message.
pub const HANDLER_DURATION: &str = "chargeflow_handler_duration_seconds";
/// Gauge `chargeflow_dlq_depth{queue}`: messages waiting in a dead-letter queue (SQS's
/// `ApproximateNumberOfMessages`), labelled with the dead-letter queue's name.
pub const DLQ_DEPTH: &str = "chargeflow_dlq_depth";

/// The `outcome` label of a disposition.
pub fn outcome(disposition: &Disposition) -> &'static str {
    match disposition {
        Disposition::Done => "done",
        Disposition::Duplicate => "duplicate",
        Disposition::Retry { .. } => "retried",
        Disposition::Park { .. } => "parked",
    }
}

/// Describes the series (their `# HELP` lines); harmless before a recorder is installed.
pub(crate) fn describe() {
    ::metrics::describe_counter!(MESSAGES_TOTAL, "Messages a worker decided on, by outcome.");
    ::metrics::describe_histogram!(
        HANDLER_DURATION,
        ::metrics::Unit::Seconds,
        "Time to handle one decoded message: inbox, handler, commit."
    );
    ::metrics::describe_gauge!(DLQ_DEPTH, "Messages waiting in a dead-letter queue.");
}

/// Counts one decision and, when the message was decoded, its handling time.
pub(crate) fn record(consumer: Consumer, disposition: &Disposition, elapsed: Option<Duration>) {
    let consumer = consumer.name();
    ::metrics::counter!(MESSAGES_TOTAL, "consumer" => consumer, "outcome" => outcome(disposition))
        .increment(1);
    if let Some(elapsed) = elapsed {
        ::metrics::histogram!(HANDLER_DURATION, "consumer" => consumer).record(elapsed);
    }
}

/// Sets the depth of the dead-letter queue at `dlq_url` (labelled with its name).
pub(crate) fn set_dlq_depth(dlq_url: &str, depth: u64) {
    let queue = dlq_url.rsplit('/').next().unwrap_or(dlq_url).to_owned();
    ::metrics::gauge!(DLQ_DEPTH, "queue" => queue).set(depth as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_disposition_has_its_outcome_label() {
        let reason = String::new;
        assert_eq!(outcome(&Disposition::Done), "done");
        assert_eq!(outcome(&Disposition::Duplicate), "duplicate");
        let retry = Disposition::Retry {
            reason: reason(),
            after: None,
        };
        assert_eq!(outcome(&retry), "retried");
        assert_eq!(outcome(&Disposition::Park { reason: reason() }), "parked");
    }
}
