//! The shipping-service process: wiring only. See the library for what it does. Runs as the SQS
//! poller, or under AWS Lambda when started by the Lambda runtime.

use anyhow::Context;
use shipping_service::{ShippingHandler, partner::PartnerClient};

// One runtime thread (docs/WORKERS.md, "Runtime threads").
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let _telemetry = telemetry::init("shipping-service");
    let settings = secrets::load_settings_for(settings::Process::Shipping)
        .await
        .unwrap_or_else(|error| telemetry::refuse_to_start("shipping-service", &error));
    let partner = PartnerClient::new(&settings.shipping).context("Invalid shipping settings")?;
    let pool = settings
        .database
        .connect()
        .await
        .context("Failed to connect to PostgreSQL")?;
    worker::serve(
        &settings,
        pool.clone(),
        ShippingHandler::new(partner).with_pool(pool),
        telemetry::shutdown_token(),
    )
    .await
    .map_err(|e| anyhow::anyhow!(e))
    .context("The shipping worker failed")?;
    Ok(())
}
