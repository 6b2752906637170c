//! Cold start of the packaged Lambda functions: each `bootstrap` is started, as Lambda starts
//! it, against a local stand-in of the Runtime API, several times. Measured per start: the init
//! (process start until it asks for its first event: settings, pool, SQS queue and DLQ lookup),
//! the first invocation (an empty SQS batch, or a relay run of zero seconds) and the peak RSS.
//! The baseline in the same run is a trivial process (`/bin/true`) started and reaped the same way.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::json;
use testkit::lambda_api::FakeRuntimeApi;

use testkit::processes::peak_rss_kib;

use crate::stats::percentile_ms;

#[derive(clap::Args)]
pub struct Args {
    /// Folder with one `<function>/bootstrap` each (`scripts/lambda.sh build` writes deploy/build).
    #[arg(long, default_value = "deploy/build")]
    bootstraps: PathBuf,
    /// Starts per function.
    #[arg(long, default_value_t = 5)]
    starts: usize,
    /// The functions to start.
    #[arg(default_values_t = ["invoice-service", "billing-service", "shipping-service", "email-service", "outbox-relay"].map(String::from))]
    functions: Vec<String>,
}

/// One cold start, measured.
struct Start {
    init: Duration,
    first_answer: Duration,
    peak_rss_kib: u64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let db_url = testkit::fresh_database()
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let endpoint = testkit::test_settings(&[]).sqs.endpoint_url;
    let sqs = testkit::sqs_client(&endpoint).await;
    let queues = testkit::fresh_queues(&sqs)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    println!(
        "## Lambda cold start ({} starts each, local Runtime API stand-in)",
        args.starts
    );
    println!();
    println!("| function | bootstrap | init p50 | init max | first answer p50 | peak RSS |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    let baseline = process_baseline(args.starts);
    println!(
        "| baseline: `/bin/true` spawn + reap | | {:.1} ms | | | |",
        ms(baseline)
    );
    for function in &args.functions {
        let bootstrap = args.bootstraps.join(function).join("bootstrap");
        let mut starts = Vec::new();
        for _ in 0..args.starts {
            starts.push(start_once(&bootstrap, function, &db_url, &queues.prefix).await?);
        }
        report(function, &bootstrap, &starts)?;
    }
    Ok(())
}

fn process_baseline(starts: usize) -> Duration {
    let mut times: Vec<Duration> = (0..starts.max(1))
        .map(|_| {
            let started = Instant::now();
            let _ = Command::new("/bin/true").status();
            started.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

async fn start_once(
    bootstrap: &Path,
    function: &str,
    db_url: &str,
    prefix: &str,
) -> anyhow::Result<Start> {
    let event = if function == "outbox-relay" {
        json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}})
    } else {
        json!({"Records": []})
    };
    let runtime = FakeRuntimeApi::start(vec![event])
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let templates = bootstrap.with_file_name("templates");
    let started = Instant::now();
    let mut child = Command::new(bootstrap)
        .envs(runtime.env())
        .env("APP__DATABASE__URL", db_url)
        .env("APP__DATABASE__MAX_CONNECTIONS", "2")
        .env("APP__SQS__QUEUE_PREFIX", prefix)
        .env("APP__SMTP__TEMPLATES_DIR", templates)
        .env("APP__RELAY__LAMBDA_RUN_S", "0")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while runtime.answered_at().is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let peak_rss_kib = peak_rss_kib(child.id());
    child.kill()?;
    child.wait()?;
    let (Some(asked), Some(answered)) = (runtime.first_next_at(), runtime.answered_at()) else {
        anyhow::bail!(
            "{function} did not answer within 30 s: {:?}",
            runtime.answers()
        );
    };
    Ok(Start {
        init: asked.saturating_duration_since(started),
        first_answer: answered.saturating_duration_since(started),
        peak_rss_kib,
    })
}

fn report(function: &str, bootstrap: &Path, starts: &[Start]) -> anyhow::Result<()> {
    let size = std::fs::metadata(bootstrap)?.len();
    let mut init: Vec<Duration> = starts.iter().map(|s| s.init).collect();
    let mut first: Vec<Duration> = starts.iter().map(|s| s.first_answer).collect();
    init.sort();
    first.sort();
    let rss = starts.iter().map(|s| s.peak_rss_kib).max().unwrap_or(0);
    println!(
        "| {function} | {:.1} MiB | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} MiB |",
        size as f64 / 1_048_576.0,
        percentile_ms(&init, 50.0),
        ms(*init.last().unwrap_or(&Duration::ZERO)),
        percentile_ms(&first, 50.0),
        rss as f64 / 1024.0,
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
