//! The whole pipeline in one process — web-server, relay and all four workers — against the
//! local services, a private fake Stripe and the partner simulator: checkouts at a steady rate,
//! and for each order the time from the checkout request to `shipment.created`.

use std::{
    collections::HashMap,
    time::{Duration, Instant, SystemTime},
};

use billing_service::{BillingHandler, gateway::Gateway};
use outbox_relay::Relay;
use shipping_service::{ShippingHandler, partner::PartnerClient};
use testkit::stripe::FakeStripe;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use web_server::Application;
use worker::Poller;

use crate::{
    stats::{self, Phase},
    workers::{email_handler, invoice_handler, place_at_rate, setup_with},
};

#[derive(clap::Args)]
pub struct Args {
    /// Checkouts per second.
    #[arg(long, default_value_t = 20)]
    rate: u32,
    /// Length of the run, in seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u32,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let stripe = FakeStripe::start()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let stop = CancellationToken::new();
    let partner = spawn_partner(&stop).await?;
    let base = stripe.api_base();
    let setup = setup_with(&[
        ("APP__STRIPE__API_BASE", base.as_str()),
        ("APP__SHIPPING__PARTNER_URL", partner.as_str()),
    ])
    .await?;
    sqlx::query("UPDATE products SET stock = 1000000 WHERE id = 8")
        .execute(&setup.pool)
        .await?;
    let address = spawn_all(&setup.settings, &setup.pool, &stop).await?;

    let started = Instant::now();
    let placed = place_at_rate(&address, args.rate, args.seconds).await?;
    let latencies = wait_shipped(&setup.pool, &placed).await?;
    let elapsed = started.elapsed();
    stop.cancel();

    let phase = Phase::new(
        format!("checkout → shipped at {}/s", args.rate),
        elapsed,
        latencies,
    );
    println!(
        "\n## Whole pipeline ({} orders, web-server + relay + 4 workers in one process)\n",
        placed.len()
    );
    println!("{}", stats::header());
    println!("{}", phase.row());
    println!(
        "\norders/s through the pipeline: {:.1} (offered {}/s); checkout → shipped p50 {:.0} ms (target < 1000), p99 {:.0} ms (target < 3000)",
        phase.per_second(),
        args.rate,
        phase.percentile_ms(50.0),
        phase.percentile_ms(99.0),
    );
    Ok(())
}

pub(crate) async fn spawn_partner(stop: &CancellationToken) -> anyhow::Result<String> {
    partner_sim::Application::spawn_on_loopback(partner_sim::Faults::default(), stop.clone())
        .await
        .map_err(|e| anyhow::anyhow!(e))
}

async fn spawn_all(
    settings: &settings::Settings,
    pool: &sqlx::PgPool,
    stop: &CancellationToken,
) -> anyhow::Result<String> {
    let app = Application::build(settings.clone()).await?;
    let address = format!("http://{}", app.local_addr()?);
    tokio::spawn(app.run(std::future::pending()));
    tokio::spawn(Relay::connect(settings).await?.run(stop.clone()));
    tokio::spawn(
        Poller::connect(settings, invoice_handler(settings)?)
            .await?
            .run(stop.clone()),
    );
    tokio::spawn(
        Poller::connect(settings, email_handler(settings)?)
            .await?
            .run(stop.clone()),
    );
    let billing = BillingHandler::new(Gateway::new(&settings.stripe)?, pool.clone());
    tokio::spawn(Poller::connect(settings, billing).await?.run(stop.clone()));
    let shipping =
        ShippingHandler::new(PartnerClient::new(&settings.shipping)?).with_pool(pool.clone());
    tokio::spawn(Poller::connect(settings, shipping).await?.run(stop.clone()));
    Ok(address)
}

/// Waits for every order's `shipment.created` and returns request-to-event times.
async fn wait_shipped(
    pool: &sqlx::PgPool,
    placed: &HashMap<Uuid, SystemTime>,
) -> anyhow::Result<Vec<Duration>> {
    let ids: Vec<Uuid> = placed.keys().copied().collect();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let shipped: Vec<(Uuid, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
            "SELECT order_id, occurred_at FROM order_timeline WHERE event_type = 'shipment.created' AND order_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(pool)
        .await?;
        if shipped.len() == ids.len() {
            return Ok(shipped
                .into_iter()
                .map(|(id, at)| {
                    SystemTime::from(at)
                        .duration_since(placed[&id])
                        .unwrap_or_default()
                })
                .collect());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} orders not shipped within 180 s",
            ids.len() - shipped.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
