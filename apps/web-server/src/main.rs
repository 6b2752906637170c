//! The web-server process: wiring only. See the library for the routes.

use anyhow::Context;
use web_server::Application;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = telemetry::init("web-server");
    let settings = secrets::load_settings_for(settings::Process::WebServer)
        .await
        .unwrap_or_else(|error| telemetry::refuse_to_start("web-server", &error));
    let app = Application::build(settings).await?;
    tracing::info!(addr = %app.local_addr()?, "web-server listening");
    app.run(telemetry::shutdown_signal())
        .await
        .context("Server failed")
}
