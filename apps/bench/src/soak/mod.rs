//! `bench soak`: the whole pipeline as separate processes (web-server, relay and the four
//! workers, the real binaries) under a steady load of checkouts while a schedule of faults runs,
//! one at a time; then every effect is counted **at its source** and checked against what each
//! order should have caused.
//!
//! # The load
//! `--orders` shoppers, started at `--rate` per second (by default spread over the schedule).
//! Each opens a session (`GET /api/cart`), then checks out a basket of one to three products
//! with an `Idempotency-Key`. Most pay with `pm_card_visa` and ship to an address the partner
//! accepts; every 20th pays with `pm_card_chargeDeclined` (ends `payment_failed`), every 25th
//! ships to a postal code the partner refuses (ends `refunded`). A checkout refused at the client
//! (no connection, a timeout, a `5xx`, `409 idempotency_key_in_use`) is retried every 250 ms with
//! the same key and session, as a shopper's browser would; it counts as *refused*, never as lost,
//! and an answer replayed from the key (`Idempotent-Replayed: true`) counts as a *replay*.
//!
//! # The faults ([`faults`])
//! After a lead-in of `--gap-s`, one fault at a time, each lasting `--fault-s`, with `--gap-s`
//! between the end of one and the start of the next: `kill -9` of each of the six processes
//! (restarted with the same settings when the fault ends), LocalStack paused (SIGSTOP of its
//! process group, then SIGCONT), the fake Stripe paused the same way, PostgreSQL restarted
//! (`scripts/services.sh restart-postgres`: `pg_ctl restart -m fast`, which cuts every
//! connection; the fault lasts as long as the restart), the SMTP sink killed and started again on
//! the same port and Maildir, and the partner simulator's faults switched on (503s, 429s and
//! requests held past the shipping-service's attempt timeout). Only the run's own services are
//! touched, by process id: the PostgreSQL cluster and LocalStack of `CHARGEFLOW_DATA_DIR` (the
//! private ones `scripts/bench.sh` and `scripts/test.sh` start), a private fake Stripe and SMTP
//! sink, an in-process partner simulator.
//!
//! # Settled, and the time to recover
//! An order is *settled* when it is in an end state (`shipped`, `delivered`, `payment_failed`,
//! `cancelled`, `refunded`) and every event of it that gets an e-mail (all but `shipment.failed`,
//! which the refund's e-mail announces) has it recorded; its *settle time* is
//! the latest of its timeline entries and its recorded e-mails. The run waits (at most
//! `--deadline-s` after the last checkout) until every order is settled, nothing is left
//! unpublished in the outbox and the four queues are empty (nothing waiting or in flight).
//!
//! A fault's **backlog** is the orders whose checkout was answered after the previous fault ended
//! (or the load started) and before this one ended. Its **time to recover** is from the fault's
//! end until the last order of its backlog settled (0 when all settled before the end). A
//! recovery longer than `--gap-s` runs into the next fault, which is then measured on its own
//! backlog only.
//!
//! # The counts ([`count`])
//! Orders answered `201` against the orders in the database; per order the PaymentIntents at the
//! fake Stripe (succeeded ones: exactly one per paid order, none otherwise) and its refunds
//! (exactly one per refunded order), the shipments the partner simulator booked for it (exactly one
//! per shipped order, none otherwise), and the e-mails in the SMTP sink's Maildir by their
//! `Message-ID` (the event's id: exactly one per event that gets an e-mail). A `Message-ID` received
//! twice is a duplicate; it is *explained* when the email-service was killed between one second
//! before the first copy arrived and the arrival of the last (the window of DESIGN.md's
//! guarantee 8: accepted by the server, not yet recorded). Then the stock (each product's stock
//! back to its start minus the quantities of the orders the partner shipped) and the dead-letter
//! queues (empty). The command prints the fault table and the totals, writes them to
//! `<out>/soak.md` (the processes' logs to `<out>/logs/`), and exits non-zero when an invariant is
//! broken: an order lost or not settled by the deadline, an extra order, a second charge or
//! shipment, an order that ended other than its basket meant, an e-mail missing or repeated
//! without a kill in its window, the stock off, a message parked.
//!
//! Times are reported, never asserted.

mod count;
mod faults;
mod load;
mod table;

use std::{
    path::PathBuf,
    time::{Duration, Instant, SystemTime},
};

use sqlx::PgPool;
use testkit::{processes::Processes, stripe::FakeStripe};
use tokio_util::sync::CancellationToken;

use crate::{
    pipeline::spawn_partner,
    report::{child_env, free_port, wait_healthy},
    workers::{Setup, setup_with},
};

/// Stock every product starts the run with: far more than any run orders.
const START_STOCK: i32 = 1_000_000;

#[derive(clap::Args)]
pub struct Args {
    /// Orders to place [default: 300; --reduced: 30].
    #[arg(long)]
    orders: Option<u32>,
    /// Checkouts per second [default: the orders spread over the lead-in and the schedule].
    #[arg(long)]
    rate: Option<f64>,
    /// How long each fault lasts, in seconds [default: 3; --reduced: 1].
    #[arg(long)]
    fault_s: Option<f64>,
    /// Seconds from the end of one fault to the start of the next (and before the first)
    /// [default: 5; --reduced: 1.5].
    #[arg(long)]
    gap_s: Option<f64>,
    /// How long to wait after the last checkout for every order to settle, in seconds.
    #[arg(long, default_value_t = 120)]
    deadline_s: u64,
    /// The short run of the test command: 30 orders, 1 s faults, 1.5 s gaps.
    #[arg(long)]
    reduced: bool,
    /// Folder for soak.md and the processes' logs.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
    /// Folder with the binaries (default: next to this one).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

/// The run's shape, from the arguments.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub(crate) orders: u32,
    pub(crate) rate: f64,
    pub(crate) fault: Duration,
    pub(crate) gap: Duration,
    pub(crate) deadline: Duration,
}

impl Args {
    fn plan(&self) -> anyhow::Result<Plan> {
        let (orders, fault_s, gap_s) = match self.reduced {
            true => (30, 1.0, 1.5),
            false => (300, 3.0, 5.0),
        };
        let orders = self.orders.unwrap_or(orders);
        let fault = Duration::try_from_secs_f64(self.fault_s.unwrap_or(fault_s))?;
        let gap = Duration::try_from_secs_f64(self.gap_s.unwrap_or(gap_s))?;
        let schedule = faults::schedule_length(fault, gap).as_secs_f64();
        let rate = self.rate.unwrap_or(f64::from(orders) / schedule);
        anyhow::ensure!(
            orders > 0 && rate > 0.0,
            "--orders and --rate must be positive"
        );
        let load = f64::from(orders) / rate;
        anyhow::ensure!(
            load >= schedule - 0.001,
            "{orders} orders at {rate}/s last {load:.0} s, but the fault schedule needs {schedule:.0} s: \
             lower --rate to {:.2} or raise --orders to {:.0} (or shorten --fault-s / --gap-s)",
            f64::from(orders) / schedule,
            (rate * schedule).ceil(),
        );
        Ok(Plan {
            orders,
            rate,
            fault,
            gap,
            deadline: Duration::from_secs(self.deadline_s),
        })
    }
}

/// What the run started besides the processes: the services of its own and the shop's address.
pub(crate) struct Stack {
    pub(crate) setup: Setup,
    pub(crate) stripe: FakeStripe,
    pub(crate) partner: String,
    pub(crate) address: String,
    stop: CancellationToken,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let plan = args.plan()?;
    let logs = args.out.join("logs");
    std::fs::create_dir_all(&logs)?;
    let (mut stack, mut processes) = start(&args, &logs).await?;
    let products = prepare_stock(&stack.setup.pool).await?;
    println!(
        "soak: {} orders at {:.2}/s, {} faults of {:?} with {:?} between them; logs in {}",
        plan.orders,
        plan.rate,
        faults::ALL.len(),
        plan.fault,
        plan.gap,
        logs.display()
    );

    let started = SystemTime::now();
    let load = tokio::spawn(load::Shoppers::new(&stack.address, &products, plan).run());
    let record = faults::Injector::new(&mut stack, &mut processes, plan)?
        .run_schedule(started)
        .await;
    let checkouts = load.await?;
    let record = record?;

    let waited = Instant::now();
    let settled = count::wait_settled(&stack.setup, plan.deadline).await;
    println!(
        "soak: {} after {:.1} s",
        if settled {
            "settled"
        } else {
            "deadline passed"
        },
        waited.elapsed().as_secs_f64()
    );
    let exited = processes
        .exited()
        .map(|(name, status)| (name, status.to_string()));
    let counts = count::Counts::gather(&stack, &checkouts, exited).await?;
    let report = table::Report::new(plan, started, &checkouts, &record, &counts);
    let markdown = report.markdown();
    std::fs::write(args.out.join("soak.md"), &markdown)?;
    println!("{markdown}");
    finish(stack, processes);
    let broken = report.broken();
    anyhow::ensure!(
        broken.is_empty(),
        "{} invariant(s) broken:\n{}",
        broken.len(),
        broken.join("\n")
    );
    Ok(())
}

/// A fresh database and queues, a private SMTP sink and fake Stripe, the partner simulator in
/// this process, and the six processes, started and answering.
async fn start(args: &Args, logs: &std::path::Path) -> anyhow::Result<(Stack, Processes)> {
    let stripe = FakeStripe::start()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let stop = CancellationToken::new();
    let partner = spawn_partner(&stop).await?;
    let http = format!("127.0.0.1:{}", free_port()?);
    let base = stripe.api_base();
    let setup = setup_with(&[
        ("APP__STRIPE__API_BASE", base.as_str()),
        ("APP__SHIPPING__PARTNER_URL", partner.as_str()),
        ("APP__HTTP__ADDR", http.as_str()),
    ])
    .await?;
    let bin_dir = args
        .bin_dir
        .clone()
        .unwrap_or_else(testkit::processes::binaries_dir);
    let mut env = child_env(&setup.settings, &base, &partner);
    // Warnings too: the logs then show how each process lived through the faults.
    env.push(("RUST_LOG".to_owned(), "warn".to_owned()));
    let processes = Processes::start(&bin_dir, &testkit::processes::PIPELINE, &env, Some(logs))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let address = format!("http://{http}");
    wait_healthy(&address).await?;
    let stack = Stack {
        setup,
        stripe,
        partner,
        address,
        stop,
    };
    Ok((stack, processes))
}

/// Gives every product [`START_STOCK`]; returns the product ids.
async fn prepare_stock(pool: &PgPool) -> anyhow::Result<Vec<i64>> {
    sqlx::query("UPDATE products SET stock = $1")
        .bind(START_STOCK)
        .execute(pool)
        .await?;
    Ok(sqlx::query_scalar("SELECT id FROM products ORDER BY id")
        .fetch_all(pool)
        .await?)
}

/// Stops the processes (SIGTERM), the partner simulator, the fake Stripe and the sink.
fn finish(stack: Stack, mut processes: Processes) {
    processes.stop();
    stack.stop.cancel();
    drop(stack);
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn plan(args: &[&str]) -> anyhow::Result<Plan> {
        Cli::parse_from(std::iter::once("soak").chain(args.iter().copied()))
            .args
            .plan()
    }

    #[test]
    fn by_default_the_orders_are_spread_over_the_whole_schedule() {
        let full = plan(&[]).expect("plan");
        // 5 s lead-in, then 11 faults of 3 s each followed by 5 s.
        assert_eq!(full.orders, 300);
        assert!((full.rate - 300.0 / 93.0).abs() < 1e-9, "{}", full.rate);
        let reduced = plan(&["--reduced"]).expect("plan");
        assert_eq!(
            (reduced.orders, reduced.fault),
            (30, Duration::from_secs(1))
        );
    }

    #[test]
    fn a_load_shorter_than_the_schedule_is_refused_with_what_would_fit() {
        let error = plan(&["--orders", "300", "--rate", "10"]).expect_err("30 s < 93 s");
        assert!(
            error.to_string().contains("lower --rate to 3.23"),
            "{error}"
        );
        assert!(
            plan(&[
                "--orders",
                "300",
                "--rate",
                "10",
                "--fault-s",
                "1",
                "--gap-s",
                "1"
            ])
            .is_ok()
        );
    }
}
