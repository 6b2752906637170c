//! The billing-service process: wiring only. See the library for what it does. Runs as the SQS
//! poller, or under AWS Lambda when started by the Lambda runtime.

use std::time::Duration;

use anyhow::Context;
use billing_service::{BillingHandler, gateway::Gateway};
use secrecy::ExposeSecret;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init("billing-service");
    let settings = settings::Settings::load().context("Failed to load settings")?;
    let gateway = Gateway::new(&settings.stripe).context("Invalid Stripe settings")?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(settings.database.max_connections)
        .acquire_timeout(Duration::from_millis(settings.database.acquire_timeout_ms))
        .connect(settings.database.url.expose_secret())
        .await
        .context("Failed to connect to PostgreSQL")?;
    worker::serve(
        &settings,
        BillingHandler::new(gateway, pool),
        telemetry::shutdown_token(),
    )
    .await
    .map_err(|e| anyhow::anyhow!(e))
    .context("The billing worker failed")?;
    Ok(())
}
