//! The partner-sim process: wiring only. See the library for the simulated API.

use anyhow::Context;
use clap::Parser;
use partner_sim::{Application, Config};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    telemetry::init("partner-sim");
    let addr = config.listen_addr().context("Invalid configuration")?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("Failed to bind {addr}"))?;
    let app = Application::new(listener, config.faults).context("Invalid fault settings")?;
    tracing::info!(addr = %app.local_addr()?, "partner-sim listening");
    app.run(telemetry::shutdown_signal())
        .await
        .context("Server failed")
}
