//! The outbox relay process: wiring only. See the library for how it works.
//!
//! Started by the AWS Lambda runtime (`AWS_LAMBDA_RUNTIME_API` set), it serves scheduled
//! invocations that each relay for a bounded time and sweep once for expired orders
//! ([`outbox_relay::lambda`]); otherwise it relays and sweeps ([`outbox_relay::expiry`]) until
//! SIGTERM / Ctrl-C, with its metrics port (`APP__METRICS__ADDR`, default 127.0.0.1:9101).

use std::time::Duration;

use anyhow::Context;
use outbox_relay::Relay;

// One runtime thread (docs/WORKERS.md, "Runtime threads").
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let _telemetry = telemetry::init("outbox-relay");
    let settings = secrets::load_settings_for(settings::Process::Relay)
        .await
        .unwrap_or_else(|error| telemetry::refuse_to_start("outbox-relay", &error));
    let relay = Relay::connect(&settings)
        .await
        .context("Failed to start the relay")?;
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        let run_for = Duration::from_secs(settings.relay.lambda_run_s);
        return outbox_relay::lambda::serve(relay, run_for)
            .await
            .map_err(|e| anyhow::anyhow!(e));
    }
    let shutdown = telemetry::shutdown_token();
    if let Some(addr) = settings.metrics.listen_addr("relay") {
        telemetry::metrics::spawn_server(&addr, shutdown.clone()).await;
    }
    relay.run(shutdown).await;
    Ok(())
}
