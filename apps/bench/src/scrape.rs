//! Reading each process's Prometheus `/metrics` at the start and the end of the load window, and
//! what a series moved in between.

use std::time::{Duration, Instant};

use telemetry::metrics::sample;

/// One process's exposition text at one moment.
pub struct Scrape {
    pub process: String,
    pub text: String,
}

/// Every endpoint's `/metrics`, retried for up to 30 s each (a process's metrics port comes up
/// shortly after it starts).
pub async fn all(endpoints: &[(String, String)]) -> anyhow::Result<Vec<Scrape>> {
    let client = reqwest::Client::new();
    let mut scrapes = Vec::with_capacity(endpoints.len());
    for (process, addr) in endpoints {
        let text = one(&client, addr).await?;
        scrapes.push(Scrape {
            process: process.clone(),
            text,
        });
    }
    Ok(scrapes)
}

async fn one(client: &reqwest::Client, addr: &str) -> anyhow::Result<String> {
    let url = format!("http://{addr}/metrics");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = client.get(&url).send().await;
        match response.and_then(reqwest::Response::error_for_status) {
            Ok(response) => return Ok(response.text().await?),
            Err(error) if Instant::now() > deadline => {
                anyhow::bail!("{url} did not answer within 30 s: {error}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// How far `name{labels}` moved in `process` between two scrapes (a missing series reads 0).
pub fn moved(
    before: &[Scrape],
    after: &[Scrape],
    process: &str,
    name: &str,
    labels: &[(&str, &str)],
) -> f64 {
    let text = |scrapes: &[Scrape]| {
        scrapes
            .iter()
            .find(|s| s.process == process)
            .and_then(|s| sample(&s.text, name, labels))
            .unwrap_or(0.0)
    };
    text(after) - text(before)
}
