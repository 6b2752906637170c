//! The shipping-service process: wiring only. See the library for what it does.

use anyhow::Context;
use shipping_service::{ShippingHandler, partner::PartnerClient};
use worker::Poller;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init("shipping-service");
    let settings = settings::Settings::load().context("Failed to load settings")?;
    let partner = PartnerClient::new(&settings.shipping).context("Invalid shipping settings")?;
    let poller = Poller::connect(&settings, ShippingHandler::new(partner))
        .await
        .context("Failed to start the shipping worker")?;
    poller.run(telemetry::shutdown_token()).await;
    Ok(())
}
