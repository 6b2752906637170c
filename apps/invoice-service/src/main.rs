//! The invoice-service process: wiring only. See the library for what it does. Runs as the SQS
//! poller, or under AWS Lambda when started by the Lambda runtime.

use anyhow::Context;
use invoice_service::InvoiceHandler;

// One runtime thread (docs/WORKERS.md, "Runtime threads").
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let _telemetry = telemetry::init("invoice-service");
    let settings = secrets::load_settings_for(settings::Process::Invoice)
        .await
        .unwrap_or_else(|error| telemetry::refuse_to_start("invoice-service", &error));
    let handler = InvoiceHandler::new(&settings.invoice).context("Invalid invoice settings")?;
    let pool = settings
        .database
        .connect()
        .await
        .context("Failed to connect to PostgreSQL")?;
    worker::serve(&settings, pool, handler, telemetry::shutdown_token())
        .await
        .map_err(|e| anyhow::anyhow!(e))
        .context("The invoice worker failed")?;
    Ok(())
}
