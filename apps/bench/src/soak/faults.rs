//! The soak's faults, one at a time, and what each does when it starts and when it ends.
//!
//! Services are touched only by process id: the run's own processes ([`Processes`]), its private
//! fake Stripe and SMTP sink, the in-process partner simulator (through its `/v1/_sim/faults`),
//! and the LocalStack and PostgreSQL of `CHARGEFLOW_DATA_DIR`, the data dir whose services the
//! calling script started (LocalStack's pid file is checked to name a LocalStack process before it
//! is signalled). A paused service is resumed when its guard is dropped, also on an error.

use std::{
    process::Stdio,
    time::{Duration, SystemTime},
};

use anyhow::Context;
use testkit::{processes::Processes, smtp::SmtpSink};

use super::{Plan, Stack};

/// `scripts/services.sh`, which restarts the data dir's PostgreSQL.
const SERVICES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/services.sh");

/// The partner's faults while its fault is on: a third of the bookings answered `503`, a fifth
/// `429`, a fifth held past the shipping-service's 5 s attempt timeout.
const PARTNER_FAULTS: &str = r#"{"error_rate": 0.3, "rate_limit_rate": 0.2, "retry_after_s": 1, "hang_rate": 0.2, "hang_ms": 6000}"#;

/// One fault of the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// `kill -9` of one of the six processes, started again when the fault ends.
    Kill(&'static str),
    /// LocalStack (the queues) stopped with SIGSTOP, resumed with SIGCONT.
    PauseLocalStack,
    /// The fake Stripe stopped with SIGSTOP, resumed with SIGCONT.
    PauseStripe,
    /// `pg_ctl restart -m fast`: every connection cut; lasts as long as the restart.
    RestartPostgres,
    /// The SMTP sink killed, started again on the same port and Maildir when the fault ends.
    RestartSmtp,
    /// The partner simulator answering 503, 429 and not at all, for a share of its requests.
    PartnerFaults,
}

/// The schedule, in order.
pub(crate) const ALL: [Fault; 11] = [
    Fault::Kill("web-server"),
    Fault::Kill("outbox-relay"),
    Fault::Kill("invoice-service"),
    Fault::Kill("billing-service"),
    Fault::Kill("shipping-service"),
    Fault::Kill("email-service"),
    Fault::PauseLocalStack,
    Fault::PauseStripe,
    Fault::RestartPostgres,
    Fault::RestartSmtp,
    Fault::PartnerFaults,
];

impl Fault {
    /// How the tables name it.
    pub(crate) fn name(self) -> String {
        match self {
            Fault::Kill(process) => format!("kill -9 {process}"),
            Fault::PauseLocalStack => "LocalStack paused".to_owned(),
            Fault::PauseStripe => "fake Stripe paused".to_owned(),
            Fault::RestartPostgres => "PostgreSQL restarted".to_owned(),
            Fault::RestartSmtp => "SMTP sink restarted".to_owned(),
            Fault::PartnerFaults => "partner faults on".to_owned(),
        }
    }
}

/// The lead-in, then every fault with the gap after it.
pub(crate) fn schedule_length(fault: Duration, gap: Duration) -> Duration {
    gap + (fault + gap) * ALL.len() as u32
}

/// When one fault started and ended.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FaultRun {
    pub(crate) fault: Fault,
    pub(crate) start: SystemTime,
    pub(crate) end: SystemTime,
}

/// Runs the schedule against the run's processes and services.
pub(crate) struct Injector<'a> {
    processes: &'a mut Processes,
    sink: &'a mut SmtpSink,
    stripe_pid: u32,
    localstack_group: u32,
    partner: String,
    http: reqwest::Client,
    plan: Plan,
}

impl<'a> Injector<'a> {
    /// An injector for the run's stack; finds LocalStack by the data dir's pid file.
    pub(crate) fn new(
        stack: &'a mut Stack,
        processes: &'a mut Processes,
        plan: Plan,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            std::env::var_os("PG_PORT").is_some(),
            "PG_PORT is not set: run the soak through scripts/bench.sh or scripts/test.sh"
        );
        Ok(Injector {
            processes,
            stripe_pid: stack
                .stripe
                .pid()
                .context("the fake Stripe is not running")?,
            sink: &mut stack.setup.sink,
            localstack_group: localstack_pid()?,
            partner: stack.partner.clone(),
            http: reqwest::Client::builder().no_proxy().build()?,
            plan,
        })
    }

    /// The lead-in, then each fault of [`ALL`] followed by the gap (but the last).
    pub(crate) async fn run_schedule(
        mut self,
        started: SystemTime,
    ) -> anyhow::Result<Vec<FaultRun>> {
        tokio::time::sleep(self.plan.gap).await;
        let mut runs = Vec::new();
        for (i, fault) in ALL.into_iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(self.plan.gap).await;
            }
            let run = self.apply(fault).await?;
            println!(
                "soak: {} at {:.1} s, for {:.1} s",
                fault.name(),
                seconds_between(started, run.start),
                seconds_between(run.start, run.end),
            );
            runs.push(run);
        }
        Ok(runs)
    }

    async fn apply(&mut self, fault: Fault) -> anyhow::Result<FaultRun> {
        let start = SystemTime::now();
        match fault {
            Fault::Kill(process) => self.kill(process).await?,
            Fault::PauseLocalStack => self.pause(&format!("-{}", self.localstack_group)).await?,
            Fault::PauseStripe => self.pause(&self.stripe_pid.to_string()).await?,
            Fault::RestartPostgres => restart_postgres().await?,
            Fault::RestartSmtp => self.restart_sink().await?,
            Fault::PartnerFaults => self.partner_faults().await?,
        }
        Ok(FaultRun {
            fault,
            start,
            end: SystemTime::now(),
        })
    }

    async fn kill(&mut self, process: &str) -> anyhow::Result<()> {
        let boxed = |e| anyhow::anyhow!("{e}");
        self.processes.kill(process).map_err(boxed)?;
        tokio::time::sleep(self.plan.fault).await;
        self.processes.restart(process).map_err(boxed)
    }

    /// SIGSTOP to `target` (a pid, or `-pgid` for a process group) for the fault's length.
    async fn pause(&self, target: &str) -> anyhow::Result<()> {
        let _paused = Paused::new(target)?;
        tokio::time::sleep(self.plan.fault).await;
        Ok(())
    }

    async fn restart_sink(&mut self) -> anyhow::Result<()> {
        self.sink.stop();
        tokio::time::sleep(self.plan.fault).await;
        self.sink.resume().await.map_err(|e| anyhow::anyhow!("{e}"))
    }

    async fn partner_faults(&self) -> anyhow::Result<()> {
        self.put_partner_faults(PARTNER_FAULTS).await?;
        tokio::time::sleep(self.plan.fault).await;
        self.put_partner_faults("{}").await
    }

    async fn put_partner_faults(&self, faults: &str) -> anyhow::Result<()> {
        self.http
            .put(format!("{}/v1/_sim/faults", self.partner))
            .header("content-type", "application/json")
            .body(faults.to_owned())
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }
}

/// A process (or process group) stopped with SIGSTOP; SIGCONT when dropped.
struct Paused {
    target: String,
}

impl Paused {
    fn new(target: &str) -> anyhow::Result<Self> {
        signal("STOP", target)?;
        Ok(Paused {
            target: target.to_owned(),
        })
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        if let Err(e) = signal("CONT", &self.target) {
            eprintln!("soak: could not resume {}: {e}", self.target);
        }
    }
}

/// `kill -<signal> -- <target>`.
fn signal(signal: &str, target: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), "--", target])
        .status()?;
    anyhow::ensure!(status.success(), "kill -{signal} {target}: {status}");
    Ok(())
}

/// LocalStack's pid (the leader of its own process group: services.sh starts it with setsid),
/// from `$CHARGEFLOW_DATA_DIR/pids/localstack.pid`, checked against its command line.
fn localstack_pid() -> anyhow::Result<u32> {
    let dir = std::env::var("CHARGEFLOW_DATA_DIR").context(
        "CHARGEFLOW_DATA_DIR is not set: run the soak through scripts/bench.sh or scripts/test.sh, \
         which start private services",
    )?;
    let file = std::path::Path::new(&dir).join("pids/localstack.pid");
    let pid: u32 = std::fs::read_to_string(&file)
        .with_context(|| format!("reading {}", file.display()))?
        .trim()
        .parse()
        .with_context(|| format!("the pid in {}", file.display()))?;
    let command = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let command = String::from_utf8_lossy(&command);
    // services.sh starts it through localstack/launch.py, which runs LocalStack's main module.
    anyhow::ensure!(
        command.contains("localstack/launch.py") || command.contains("localstack.runtime.main"),
        "process {pid} of {} is not LocalStack",
        file.display()
    );
    Ok(pid)
}

/// `scripts/services.sh restart-postgres` for the data dir of the environment.
async fn restart_postgres() -> anyhow::Result<()> {
    let output = tokio::process::Command::new(SERVICES)
        .arg("restart-postgres")
        .stdin(Stdio::null())
        .output()
        .await
        .context("running scripts/services.sh restart-postgres")?;
    anyhow::ensure!(
        output.status.success(),
        "scripts/services.sh restart-postgres failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// Seconds from `from` to `to` (negative when `to` is earlier).
pub(crate) fn seconds_between(from: SystemTime, to: SystemTime) -> f64 {
    match to.duration_since(from) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}
