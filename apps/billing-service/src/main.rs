//! The billing-service process: wiring only. See the library for what it does. Runs as the SQS
//! poller, or under AWS Lambda when started by the Lambda runtime.

use std::time::Duration;

use anyhow::Context;
use billing_service::{BillingHandler, gateway::Gateway};

// One runtime thread (docs/WORKERS.md, "Runtime threads").
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let _telemetry = telemetry::init("billing-service");
    let settings = secrets::load_settings_for(settings::Process::Billing)
        .await
        .unwrap_or_else(|error| telemetry::refuse_to_start("billing-service", &error));
    let gateway = Gateway::new(&settings.stripe).context("Invalid Stripe settings")?;
    // One pool: the runtime gives it to the handler, which takes one connection of it at a time.
    let pool = settings
        .database
        .connect()
        .await
        .context("Failed to connect to PostgreSQL")?;
    worker::serve(
        &settings,
        pool.clone(),
        BillingHandler::new(gateway, pool)
            .with_claim_lease(Duration::from_secs(settings.worker.handler_timeout_s)),
        telemetry::shutdown_token(),
    )
    .await
    .map_err(|e| anyhow::anyhow!(e))
    .context("The billing worker failed")?;
    Ok(())
}
