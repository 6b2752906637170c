//! The load window's cost readings, taken at its start (right before the first checkout) and its
//! end (when the pipeline has done all its work: every order shipped, every outbox row published,
//! no message waiting or in flight): CPU per process, each process's `/metrics` (SQS calls,
//! worker records and handler time) and PostgreSQL's statement and transaction counters. Every
//! figure per order is divided by the orders placed, all of which have shipped when it ends.

use std::{path::PathBuf, time::Duration};

use sqlx::PgPool;

use crate::{
    cost::Cost,
    cpu::{self, Group, Scope, Watched},
    scrape::{self, Scrape},
    sqlstats::{SqlStats, SqlUse, Statement, Xacts},
    sqs::SqsUse,
};

/// What is watched: the processes' CPU, their metrics ports, the bench's database.
pub struct Watch {
    cpu: Vec<Watched>,
    /// Process name and the `ip:port` of its metrics port.
    endpoints: Vec<(String, String)>,
    sql: SqlStats,
}

/// The readings at the start of the window.
pub struct Started {
    cpu: cpu::Sample,
    scrapes: Vec<Scrape>,
    xacts: Xacts,
}

/// The readings at the end of the window (the transactions are read once the processes stop).
pub struct Ended {
    cpu: cpu::Sample,
    scrapes: Vec<Scrape>,
    statements: Vec<Statement>,
}

/// What the window cost, ready to print.
pub struct Costs {
    watched: Vec<Watched>,
    cpu: Vec<Option<f64>>,
    window: Duration,
    sqs: SqsUse,
    sql: SqlUse,
    cost: Cost,
}

impl Watch {
    /// Watches `cpu` and `endpoints`, and the database of `pool`, in which the bench itself
    /// runs `own_sql` during the window (left out of the counts).
    ///
    /// # Errors
    /// When the database cannot be reached.
    pub async fn new(
        pool: &PgPool,
        cpu: Vec<Watched>,
        endpoints: Vec<(String, String)>,
        own_sql: Vec<&'static str>,
    ) -> anyhow::Result<Self> {
        let sql = SqlStats::prepare(pool, own_sql).await?;
        Ok(Watch {
            cpu,
            endpoints,
            sql,
        })
    }

    /// Opens the window: transactions so far, statement counters reset, metrics, then CPU.
    ///
    /// # Errors
    /// When the database or a metrics port cannot be reached.
    pub async fn start(&mut self) -> anyhow::Result<Started> {
        let xacts = self.sql.xacts().await?;
        self.sql.reset().await;
        let scrapes = scrape::all(&self.endpoints).await?;
        Ok(Started {
            cpu: cpu::sample(&self.cpu),
            scrapes,
            xacts,
        })
    }

    /// Closes the window: CPU first, then metrics and statements.
    ///
    /// # Errors
    /// When the database or a metrics port cannot be reached.
    pub async fn end(&self) -> anyhow::Result<Ended> {
        let cpu = cpu::sample(&self.cpu);
        Ok(Ended {
            cpu,
            scrapes: scrape::all(&self.endpoints).await?,
            statements: self.sql.statements().await?,
        })
    }

    /// What the window of length `window` cost; call once the processes have stopped, so that
    /// every backend has reported its transactions.
    ///
    /// # Errors
    /// When the database cannot be reached.
    pub async fn finish(
        &self,
        started: Started,
        ended: Ended,
        window: Duration,
    ) -> anyhow::Result<Costs> {
        let sql = self.sql.finish(ended.statements, started.xacts).await?;
        let processes: Vec<String> = self.endpoints.iter().map(|(p, _)| p.clone()).collect();
        let sqs = SqsUse::measure(&processes, &started.scrapes, &ended.scrapes);
        let cost = Cost::measure(&started.scrapes, &ended.scrapes, sqs.billed);
        Ok(Costs {
            watched: self.cpu.clone(),
            cpu: cpu::seconds(&started.cpu, &ended.cpu),
            window,
            sqs,
            sql,
            cost,
        })
    }
}

/// The services' processes: PostgreSQL, LocalStack and Redis from scripts/services.sh's pid
/// files (in `CHARGEFLOW_DATA_DIR`), and the run's private stand-ins by their pids.
pub fn services(stripe: Option<u32>, smtp: Option<u32>, partner: Option<u32>) -> Vec<Watched> {
    let tree = |name, pid| Watched::new(name, Group::Service, pid, Scope::Tree);
    vec![
        tree("LocalStack (SQS)", pid_file("localstack.pid")),
        tree(
            "PostgreSQL (postmaster + backends)",
            pid_file("postgres.pid"),
        ),
        tree("fake Stripe", stripe),
        tree("SMTP sink", smtp),
        tree("partner simulator", partner),
        tree("Redis", pid_file("redis.pid")),
    ]
}

/// The pid in `$CHARGEFLOW_DATA_DIR/pids/<file>` (services.sh's default data dir without it).
fn pid_file(file: &str) -> Option<u32> {
    let dir = std::env::var_os("CHARGEFLOW_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../.data/dev")));
    let text = std::fs::read_to_string(dir.join("pids").join(file)).ok()?;
    text.lines().next()?.trim().parse().ok()
}

/// Figures from the 2026-12 hand measurement (issue 15: 3000 orders at 50/s) and DESIGN.md's
/// targets, to print next to this run's.
const OURS_TARGET_MS: f64 = 6.0;
const OURS_2026_12_MS: f64 = 11.6;
const POSTGRES_2026_12_MS: f64 = 44_000.0 / 3000.0;
const SQS_TARGET: f64 = 4.0;

impl Costs {
    /// Every SQL statement of the window with its calls per order (`statements.md`).
    pub fn statements_markdown(&self, orders: usize) -> String {
        self.sql.all_statements_markdown(orders)
    }

    /// The four tables with a line each saying how they compare with the targets.
    pub fn markdown(&self, orders: usize) -> String {
        let n = orders.max(1) as f64;
        let ours = 1000.0 * cpu::total(&self.watched, &self.cpu, Some(Group::Ours)) / n;
        let postgres = cpu::of(
            &self.watched,
            &self.cpu,
            "PostgreSQL (postmaster + backends)",
        )
        .map_or(f64::NAN, |s| 1000.0 * s / n);
        let capacity = self.window.as_secs_f64()
            * std::thread::available_parallelism().map_or(1, usize::from) as f64;
        let everything = cpu::total(&self.watched, &self.cpu, None);
        format!(
            "\n## Where the cost goes (per order placed, over the {:.1} s from the first checkout \
             until the pipeline was drained: every outbox row published, every queue empty)\n\n\
             ### CPU per process\n\n{}\n\
             Ours: **{ours:.2} ms per order** (target ≤ {OURS_TARGET_MS}; {OURS_2026_12_MS:.1} in \
             2026-12). PostgreSQL: **{postgres:.2} ms per order** (target ≤ {:.1}, half of \
             {POSTGRES_2026_12_MS:.1} in 2026-12). Everything measured used {:.0} % of the \
             machine's {capacity:.0} CPU-seconds in the window.\n\n\
             ### SQS requests per order (counted by our processes)\n\n{}\n\
             All SQS calls: **{:.2} per order** (target ≤ {SQS_TARGET}).\n\n\
             ### SQL per order (bench database)\n\n{}\n\
             ### AWS cost per million orders\n\n{}",
            self.window.as_secs_f64(),
            cpu::markdown(&self.watched, &self.cpu, orders),
            POSTGRES_2026_12_MS / 2.0,
            100.0 * everything / capacity.max(0.001),
            self.sqs.markdown(orders),
            self.sqs.total() / n,
            self.sql.markdown(orders),
            self.cost.markdown(orders),
        )
    }
}
