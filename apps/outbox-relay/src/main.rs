//! The outbox relay process: wiring only. See the library for how it works.

use anyhow::Context;
use outbox_relay::Relay;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init("outbox-relay");
    let settings = settings::Settings::load().context("Failed to load settings")?;
    let relay = Relay::connect(&settings)
        .await
        .context("Failed to start the relay")?;
    relay.run(telemetry::shutdown_token()).await;
    Ok(())
}
