//! The invoice-service process: wiring only. See the library for what it does.

use anyhow::Context;
use invoice_service::InvoiceHandler;
use worker::Poller;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init("invoice-service");
    let settings = settings::Settings::load().context("Failed to load settings")?;
    let handler = InvoiceHandler::new(&settings.invoice).context("Invalid invoice settings")?;
    let poller = Poller::connect(&settings, handler)
        .await
        .context("Failed to start the invoice worker")?;
    poller.run(telemetry::shutdown_token()).await;
    Ok(())
}
