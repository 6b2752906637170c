//! Latency percentiles and throughput of one measured phase.

use std::time::Duration;

/// What one phase measured.
pub struct Phase {
    pub name: String,
    pub count: usize,
    pub elapsed: Duration,
    pub latencies: Vec<Duration>,
}

impl Phase {
    /// A phase that counted messages without timing each one (percentiles print as `-`).
    pub fn throughput(name: impl Into<String>, count: usize, elapsed: Duration) -> Self {
        Phase {
            name: name.into(),
            count,
            elapsed,
            latencies: Vec::new(),
        }
    }

    pub fn new(name: impl Into<String>, elapsed: Duration, mut latencies: Vec<Duration>) -> Self {
        latencies.sort_unstable();
        Phase {
            name: name.into(),
            count: latencies.len(),
            elapsed,
            latencies,
        }
    }

    pub fn per_second(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64()
    }

    pub fn percentile_ms(&self, p: f64) -> f64 {
        percentile_ms(&self.latencies, p)
    }

    pub fn row(&self) -> String {
        let ms = |p| match self.latencies.is_empty() {
            true => "-".to_owned(),
            false => format!("{:.2}", self.percentile_ms(p)),
        };
        format!(
            "| {:<34} | {:>7} | {:>9.1} | {:>8} | {:>8} |",
            self.name,
            self.count,
            self.per_second(),
            ms(50.0),
            ms(99.0)
        )
    }
}

/// The `p`th percentile (nearest rank) of sorted latencies, in milliseconds.
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
}

pub fn header() -> &'static str {
    "| phase                              |   count |   per s   |  p50 ms  |  p99 ms  |\n\
     |------------------------------------|---------|-----------|----------|----------|"
}
