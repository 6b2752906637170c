//! The command line: arguments (clap) and the dispatch from a command to its report.

use std::time::Duration;

use clap::{Parser, Subcommand};
use settings::Settings;
use uuid::Uuid;

use crate::{
    AdminError, cancel, connect_database, connect_sqs, db,
    dlq::{self, RedrivePlan},
    order, outbox,
    render::output,
    retention, stuck,
};

/// The operator's command for ChargeFlow: the outbox, the workers' dead-letter queues, orders.
///
/// Reads the same settings as every ChargeFlow process (`APP__DATABASE__URL`,
/// `APP__SQS__ENDPOINT_URL`, `APP__SQS__QUEUE_PREFIX`, …; `APP_SECRETS_ARN` in AWS). Commands
/// that change something only say what they would do unless given `--yes`.
#[derive(Debug, Parser)]
#[command(name = "chargeflow-admin", version)]
pub struct Cli {
    /// Print the report as JSON (for scripts) instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The command groups.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The transactional outbox: backlog and rows that failed to publish.
    #[command(subcommand)]
    Outbox(OutboxCommand),
    /// The workers' dead-letter queues: parked messages.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// One order: show it, cancel it.
    #[command(subcommand)]
    Order(OrderCommand),
    /// Orders as a whole: the stuck ones.
    #[command(subcommand)]
    Orders(OrdersCommand),
    /// The database schema: versioned migrations.
    #[command(subcommand)]
    Db(DbCommand),
}

/// `db …`
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Which migrations the database has and which are pending.
    Status,
    /// Apply the pending migrations, each in its own transaction (dry run without --yes).
    Migrate {
        /// Really apply them; without it, only list what is pending.
        #[arg(long)]
        yes: bool,
    },
    /// The bounded tables (inbox, idempotency keys, webhook ids): rows, how long they are kept,
    /// how many the relay's next purge deletes.
    Retention,
}

/// `outbox …`
#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Unpublished rows, the age of the oldest, and the rows whose publishing failed.
    Status {
        /// Show at most this many failing rows.
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// Make failed rows due now, so the relay tries them again at once (dry run without --yes).
    Retry {
        /// Only this outbox row (its id, as `outbox status` shows it).
        #[arg(long)]
        id: Option<i64>,
        /// Really do it; without it, only say what would be done.
        #[arg(long)]
        yes: bool,
    },
}

/// `dlq …`
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Show the messages parked in a worker's dead-letter queue, with why (they stay parked).
    List {
        /// The worker: invoice, billing, shipping or email.
        queue: String,
        /// Show at most this many messages.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Move parked messages back to the worker's queue (dry run without --yes).
    Redrive {
        /// The worker: invoice, billing, shipping or email.
        queue: String,
        /// Only this message (its id as `dlq list` shows it).
        #[arg(long)]
        message_id: Option<String>,
        /// Move at most this many messages.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        /// Really move them; without it, only say what would be moved.
        #[arg(long)]
        yes: bool,
    },
}

/// `order …`
#[derive(Debug, Subcommand)]
pub enum OrderCommand {
    /// State, what it waits for, timeline, payment, shipment, e-mails and invoice of one order.
    Show {
        /// The order id.
        id: Uuid,
    },
    /// Cancel an order as the operator: unpaid → cancelled, paid → refunded; shipped orders
    /// cannot be (dry run without --yes).
    Cancel {
        /// The order id.
        id: Uuid,
        /// Really cancel it; without it, only say what would happen.
        #[arg(long)]
        yes: bool,
    },
}

/// `orders …`
#[derive(Debug, Subcommand)]
pub enum OrdersCommand {
    /// Orders not settled long after they were placed: what each waits for, and its messages
    /// parked in the dead-letter queues.
    Stuck {
        /// List orders placed longer ago than this: 90s, 15m, 2h, 1d.
        #[arg(long, default_value = "15m", value_parser = stuck::parse_age)]
        older_than: Duration,
        /// List at most this many orders, oldest first.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..))]
        limit: i64,
    },
}

/// Runs the command and returns what to print.
///
/// # Errors
/// [`AdminError`], one variant per way a command fails (unknown order or queue, PostgreSQL or
/// SQS unreachable, …).
pub async fn run(cli: Cli, settings: &Settings) -> Result<String, AdminError> {
    let json = cli.json;
    match cli.command {
        Command::Outbox(command) => run_outbox(command, settings, json).await,
        Command::Dlq(command) => run_dlq(command, settings, json).await,
        Command::Db(command) => {
            let pool = connect_database(&settings.database).await?;
            let report = match command {
                DbCommand::Status => db::status(&pool).await?,
                DbCommand::Migrate { yes } => db::migrate(&pool, !yes).await?,
                DbCommand::Retention => {
                    let report = retention::status(&pool, &settings.relay).await?;
                    return output(json, &report, retention::render);
                }
            };
            output(json, &report, db::render)
        }
        Command::Order(command) => run_order(command, settings, json).await,
        Command::Orders(OrdersCommand::Stuck { older_than, limit }) => {
            let pool = connect_database(&settings.database).await?;
            let client = connect_sqs(&settings.sqs).await;
            let sqs = (&client, &settings.sqs);
            let report = stuck::stuck(&pool, sqs, older_than, limit).await?;
            output(json, &report, stuck::render)
        }
    }
}

async fn run_order(
    command: OrderCommand,
    settings: &Settings,
    json: bool,
) -> Result<String, AdminError> {
    let pool = connect_database(&settings.database).await?;
    match command {
        OrderCommand::Show { id } => output(json, &order::show(&pool, id).await?, order::render),
        OrderCommand::Cancel { id, yes } => output(
            json,
            &cancel::cancel(&pool, id, !yes).await?,
            cancel::render,
        ),
    }
}

async fn run_outbox(
    command: OutboxCommand,
    settings: &Settings,
    json: bool,
) -> Result<String, AdminError> {
    let pool = connect_database(&settings.database).await?;
    match command {
        OutboxCommand::Status { limit } => {
            let status = outbox::status(&pool, limit).await?;
            output(json, &status, outbox::render_status)
        }
        OutboxCommand::Retry { id, yes } => {
            let report = outbox::retry(&pool, id, !yes).await?;
            output(json, &report, outbox::render_retry)
        }
    }
}

async fn run_dlq(
    command: DlqCommand,
    settings: &Settings,
    json: bool,
) -> Result<String, AdminError> {
    let queue = match &command {
        DlqCommand::List { queue, .. } | DlqCommand::Redrive { queue, .. } => queue,
    };
    // Refuse a bad name before any network call.
    dlq::consumer(queue)?;
    let client = connect_sqs(&settings.sqs).await;
    let pair = dlq::resolve(&client, &settings.sqs, queue).await?;
    match command {
        DlqCommand::List { limit, .. } => {
            let listing = dlq::list(&client, pair, limit).await?;
            output(json, &listing, dlq::render_list)
        }
        DlqCommand::Redrive {
            message_id,
            limit,
            yes,
            ..
        } => {
            let plan = RedrivePlan {
                message_id,
                limit,
                dry_run: !yes,
            };
            let report = dlq::redrive(&client, pair, &plan).await?;
            output(json, &report, dlq::render_redrive)
        }
    }
}
