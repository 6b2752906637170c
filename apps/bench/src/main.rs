//! Benchmarks against the local services (never run as tests): checkout versus a plain SQL
//! transaction writing the same rows, and the outbox relay versus a plain `SendMessageBatch`
//! loop, and the workers versus a plain receive-and-delete loop, each pair measured in the same
//! run so that the ratio means something on a noisy machine.
//!
//! Reads the usual `APP__…` variables (`scripts/bench.sh` starts private services and sets them).

mod checkout;
mod cold_start;
mod cost;
mod cpu;
mod pipeline;
mod relay;
mod report;
mod scrape;
mod soak;
mod sqlstats;
mod sqs;
mod stats;
mod stripe;
mod window;
mod workers;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    about = "ChargeFlow benchmarks: print figures, compare with a baseline from the same run"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// POST /api/orders versus a plain SQL transaction inserting the same rows.
    Checkout(checkout::Args),
    /// Outbox relay publish rate and commit-to-SQS lag versus a plain SendMessageBatch loop.
    Relay(relay::Args),
    /// Invoices/s and e-mails/s of one worker versus a plain receive-and-delete loop, and the
    /// time from checkout to the invoice e-mail.
    Workers(workers::Args),
    /// The whole pipeline: orders/s and the time from checkout to `shipped`.
    Pipeline(pipeline::Args),
    /// Cold start of the packaged Lambda functions (`scripts/lambda.sh build` first).
    ColdStart(cold_start::Args),
    /// The whole pipeline as separate processes under load: writes report.md and latency.svg.
    Report(report::Args),
    /// The whole pipeline as separate processes under load while each process is killed and
    /// restarted, the queues, Stripe and PostgreSQL paused or restarted, the partner faulty:
    /// every effect counted at its source; exits non-zero when an invariant breaks.
    Soak(soak::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Checkout(args) => checkout::run(args).await,
        Command::Relay(args) => relay::run(args).await,
        Command::Workers(args) => workers::run(args).await,
        Command::Pipeline(args) => pipeline::run(args).await,
        Command::ColdStart(args) => cold_start::run(args).await,
        Command::Report(args) => report::run(args).await,
        Command::Soak(args) => soak::run(args).await,
    }
}
