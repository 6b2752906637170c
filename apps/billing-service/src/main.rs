//! The billing-service process: wiring only. See the library for what it does.

use std::time::Duration;

use anyhow::Context;
use billing_service::{BillingHandler, gateway::Gateway};
use secrecy::ExposeSecret;
use worker::Poller;

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
    let poller = Poller::connect(&settings, BillingHandler::new(gateway, pool))
        .await
        .context("Failed to start the billing worker")?;
    poller.run(telemetry::shutdown_token()).await;
    Ok(())
}
