//! The email-service process: wiring only. See the library for what it does.

use std::path::Path;

use anyhow::Context;
use email_service::{EmailHandler, mailer::Mailer, templates::Templates};
use worker::Poller;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init("email-service");
    let settings = settings::Settings::load().context("Failed to load settings")?;
    let templates = Templates::load(Path::new(&settings.smtp.templates_dir))
        .context("Failed to load the e-mail templates")?;
    let mailer = Mailer::new(&settings.smtp).context("Invalid SMTP settings")?;
    let handler = EmailHandler::new(templates, mailer, settings.shop.clone());
    let poller = Poller::connect(&settings, handler)
        .await
        .context("Failed to start the e-mail worker")?;
    poller.run(telemetry::shutdown_token()).await;
    Ok(())
}
