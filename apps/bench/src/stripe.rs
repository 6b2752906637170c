//! The fake Stripe's own pace: the two calls billing makes per order (create an unconfirmed
//! PaymentIntent, confirm it), through billing's own gateway, with as many payments in flight as
//! one billing process handles messages — no queue, no database. Billing's rate in the pipeline
//! divided by this one says how much of billing's time is the Stripe stand-in.

use std::time::Instant;

use billing_service::gateway::{Charge, Confirmed, Gateway};
use futures::{StreamExt, stream};
use secrecy::SecretString;
use settings::StripeSettings;
use uuid::Uuid;

use crate::stats::Phase;

/// Makes `count` payments (create + confirm) against `api_base` with `in_flight` at a time.
pub async fn payments_alone(
    api_base: &str,
    secret_key: &str,
    count: usize,
    in_flight: usize,
) -> anyhow::Result<Phase> {
    let gateway = Gateway::new(&StripeSettings {
        api_base: api_base.to_owned(),
        secret_key: SecretString::from(secret_key.to_owned()),
        ..StripeSettings::default()
    })?;
    let started = Instant::now();
    let latencies: Vec<_> = stream::iter(0..count)
        .map(|_| pay(&gateway))
        .buffer_unordered(in_flight.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    Ok(Phase::new(
        format!("{in_flight} in flight"),
        started.elapsed(),
        latencies,
    ))
}

async fn pay(gateway: &Gateway) -> anyhow::Result<std::time::Duration> {
    let started = Instant::now();
    let order_id = Uuid::now_v7().to_string();
    let charge = Charge {
        order_id: &order_id,
        amount_minor: 2900,
        currency: "EUR",
        payment_method: "pm_card_visa",
    };
    let intent = gateway
        .create(&charge, &format!("bench-create-{order_id}"))
        .await?;
    match gateway
        .confirm(&intent.id, &format!("bench-confirm-{order_id}"))
        .await?
    {
        Confirmed::Succeeded => Ok(started.elapsed()),
        other => anyhow::bail!("the fake Stripe did not take the test card: {other:?}"),
    }
}
