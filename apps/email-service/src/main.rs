//! The email-service process: wiring only. See the library for what it does. Runs as the SQS
//! poller, or under AWS Lambda when started by the Lambda runtime.

use std::path::Path;

use anyhow::Context;
use email_service::{EmailHandler, mailer::Mailer, templates::Templates};

// One runtime thread (docs/WORKERS.md, "Runtime threads").
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let _telemetry = telemetry::init("email-service");
    let mut settings = secrets::load_settings_for(settings::Process::Email)
        .await
        .unwrap_or_else(|error| telemetry::refuse_to_start("email-service", &error));
    // An e-mail holds no pool connection while the SMTP server talks: this worker's in-flight is
    // its own setting (`APP__SMTP__IN_FLIGHT`), not the pool-bound one of the other workers.
    settings.worker.in_flight = settings.smtp.in_flight;
    let templates = Templates::load(Path::new(&settings.smtp.templates_dir))
        .context("Failed to load the e-mail templates")?;
    let mailer = Mailer::new(&settings.smtp).context("Invalid SMTP settings")?;
    let handler_timeout = std::time::Duration::from_secs(settings.worker.handler_timeout_s);
    let handler = EmailHandler::new(templates, mailer, settings.shop.clone(), handler_timeout)
        .context("The e-mail links cannot be signed")?;
    // Its statements look rows up by key; the claims' one would be planned at every call.
    let pool = settings
        .database
        .connect_with_generic_plans()
        .await
        .context("Failed to connect to PostgreSQL")?;
    worker::serve(&settings, pool, handler, telemetry::shutdown_token())
        .await
        .map_err(|e| anyhow::anyhow!(e))
        .context("The e-mail worker failed")?;
    Ok(())
}
