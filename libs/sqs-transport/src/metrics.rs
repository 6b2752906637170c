//! What this library counts: every SQS call it makes, recorded with the `metrics` macros, so a
//! process that installs a recorder (`telemetry::metrics`) serves the counts on `/metrics` and
//! one that does not pays nothing. The benchmark report reads them to say how many SQS requests
//! an order costs.
//!
//! Every call counts once in [`REQUESTS_TOTAL`] by operation and outcome; a call SQS answered
//! also counts in [`BILLED_REQUESTS_TOTAL`] as AWS bills it (one request per started 64 KiB of
//! message payload, at least one); a receive adds the messages it returned to
//! [`MESSAGES_RECEIVED_TOTAL`].

/// Counter `chargeflow_sqs_requests_total{api, outcome}`: SQS calls made, by operation (`api`:
/// `SendMessageBatch`, `SendMessage`, `ReceiveMessage`, `DeleteMessageBatch`,
/// `ChangeMessageVisibility`, `GetQueueAttributes`, `GetQueueUrl`) and `outcome`: `ok`, `empty`
/// (a `ReceiveMessage` that returned no message) or `error` (the call as a whole failed).
pub const REQUESTS_TOTAL: &str = "chargeflow_sqs_requests_total";
/// Counter `chargeflow_sqs_billed_requests_total{api}`: the calls SQS answered, as AWS bills them:
/// each started [`BILLING_CHUNK_BYTES`] of the call's message payload (bodies and attributes
/// sent, or bodies received) is one request, and a call without payload is one.
pub const BILLED_REQUESTS_TOTAL: &str = "chargeflow_sqs_billed_requests_total";
/// Counter `chargeflow_sqs_messages_received_total`: messages returned by `ReceiveMessage`.
pub const MESSAGES_RECEIVED_TOTAL: &str = "chargeflow_sqs_messages_received_total";

/// The payload size AWS bills as one SQS request (64 KiB).
pub const BILLING_CHUNK_BYTES: usize = 64 * 1024;

/// The `outcome` label of a call that succeeded.
const OK: &str = "ok";

/// Requests a call with `payload_bytes` of message payload is billed as.
pub fn billed_requests(payload_bytes: usize) -> u64 {
    payload_bytes.div_ceil(BILLING_CHUNK_BYTES).max(1) as u64
}

/// Counts one call of `api` that carried (or returned) `payload_bytes` of message payload.
pub(crate) fn record<T, E>(api: &'static str, result: &Result<T, E>, payload_bytes: usize) {
    match result {
        Ok(_) => count(api, OK, payload_bytes),
        Err(_) => count_failure(api),
    }
}

/// Counts one `ReceiveMessage` call that returned `messages` messages of `body_bytes` in all.
pub(crate) fn record_receive<E>(result: &Result<(usize, usize), E>) {
    const API: &str = "ReceiveMessage";
    match result {
        Ok((0, _)) => count(API, "empty", 0),
        Ok((messages, body_bytes)) => {
            count(API, OK, *body_bytes);
            ::metrics::counter!(MESSAGES_RECEIVED_TOTAL).increment(*messages as u64);
        }
        Err(_) => count_failure(API),
    }
}

fn count(api: &'static str, outcome: &'static str, payload_bytes: usize) {
    ::metrics::counter!(REQUESTS_TOTAL, "api" => api, "outcome" => outcome).increment(1);
    ::metrics::counter!(BILLED_REQUESTS_TOTAL, "api" => api)
        .increment(billed_requests(payload_bytes));
}

fn count_failure(api: &'static str) {
    ::metrics::counter!(REQUESTS_TOTAL, "api" => api, "outcome" => "error").increment(1);
}

/// Describes the series (their `# HELP` lines); harmless before a recorder is installed.
pub(crate) fn describe() {
    ::metrics::describe_counter!(REQUESTS_TOTAL, "SQS calls made, by operation and outcome.");
    ::metrics::describe_counter!(
        BILLED_REQUESTS_TOTAL,
        "SQS calls answered, as billed: one per started 64 KiB of message payload."
    );
    ::metrics::describe_counter!(
        MESSAGES_RECEIVED_TOTAL,
        "Messages returned by ReceiveMessage."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_started_64_kib_of_payload_is_billed_as_one_request_and_none_as_one() {
        assert_eq!(billed_requests(0), 1);
        assert_eq!(billed_requests(1), 1);
        assert_eq!(billed_requests(BILLING_CHUNK_BYTES), 1);
        assert_eq!(billed_requests(BILLING_CHUNK_BYTES + 1), 2);
        assert_eq!(billed_requests(256 * 1024), 4);
    }
}
