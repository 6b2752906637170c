//! The partner-sim process: wiring only. See the library for the simulated API.

use anyhow::Context;
use clap::Parser;
use partner_sim::{Application, Config};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let _telemetry = telemetry::init("partner-sim");
    let addr = config.listen_addr().context("Invalid configuration")?;
    let delivery = config.delivery().context("Invalid configuration")?;
    let callback_url = delivery.callback.as_ref().map(|c| c.url().to_string());
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("Failed to bind {addr}"))?;
    let app = Application::with_delivery(listener, config.faults, delivery)
        .context("Invalid fault settings")?;
    tracing::info!(
        addr = %app.local_addr()?,
        callback_url = callback_url.as_deref().unwrap_or("none"),
        deliver_after_ms = config.deliver_after_ms,
        "partner-sim listening"
    );
    app.run(telemetry::shutdown_signal())
        .await
        .context("Server failed")
}
