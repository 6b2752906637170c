//! The expiry sweeper: beside the publish loops, every `orders.sweep_interval_s` it cancels the
//! unpaid orders placed more than `orders.expire_after_s` ago (as `expired`, through
//! `orders::expiry::expire_due`) and counts the stuck ones for the `chargeflow_orders_stuck`
//! gauge.
//!
//! Every relay process sweeps, so the expiry needs no process of its own, survives restarts and
//! scales out with the relays: `expire_due` claims due orders with `FOR NO KEY UPDATE SKIP
//! LOCKED`, so sweepers running at once share the work and each order passes its cancellation
//! once; its `order.cancelled` row is published by whichever relay claims it. One sweep expires
//! batch by batch (`orders.sweep_batch` orders per transaction) until a batch comes back short or
//! the relay stops, then counts the stuck orders. Under Lambda each invocation sweeps once
//! ([`crate::lambda`]).
//!
//! A failed sweep is logged once, here; the next one tries again.

use std::time::Duration;

use orders::OrdersError;
use settings::OrdersSettings;
use sqlx::PgPool;
use telemetry::error_chain;
use tokio_util::sync::CancellationToken;

use crate::metrics;

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Orders cancelled as `expired` (also those of batches committed before a failure).
    pub expired: usize,
    /// Orders not settled and older than `orders.stuck_after_s`, counted after the expiry;
    /// `None` when the sweep failed before counting.
    pub stuck: Option<i64>,
}

/// Sweeps one database for expired and stuck orders.
#[derive(Debug, Clone)]
pub struct Sweeper {
    pool: PgPool,
    settings: OrdersSettings,
}

impl Sweeper {
    /// A sweeper over `pool` with the expiry, batch and stuck limit of `settings`.
    pub fn new(pool: PgPool, settings: OrdersSettings) -> Self {
        Sweeper { pool, settings }
    }

    /// Sweeps every `orders.sweep_interval_s`, the first time at once, until `shutdown` is
    /// cancelled; returns the orders it expired.
    pub async fn run(self, shutdown: CancellationToken) -> usize {
        let every = Duration::from_secs(self.settings.sweep_interval_s);
        let mut expired = 0;
        loop {
            expired += self.sweep(&shutdown).await.expired;
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = shutdown.cancelled() => return expired,
            }
        }
    }

    /// One sweep: expires due orders batch by batch until a batch comes back short (or `stop`
    /// is cancelled between two batches), then sets the stuck gauge. A failure is logged here
    /// and ends the sweep; what was committed before it counts.
    pub async fn sweep(&self, stop: &CancellationToken) -> Swept {
        let mut swept = Swept::default();
        if let Err(error) = self.try_sweep(stop, &mut swept).await {
            tracing::error!(
                error = %error_chain(&error),
                expired = swept.expired,
                "expiry sweep failed; the next sweep tries again"
            );
        }
        swept
    }

    async fn try_sweep(
        &self,
        stop: &CancellationToken,
        swept: &mut Swept,
    ) -> Result<(), OrdersError> {
        let after = Duration::from_secs(self.settings.expire_after_s);
        loop {
            let batch =
                orders::expiry::expire_due(&self.pool, after, self.settings.sweep_batch).await?;
            metrics::record_expired(batch.len());
            swept.expired += batch.len();
            if !batch.is_empty() {
                tracing::info!(orders = batch.len(), "expired unpaid orders");
            }
            if (batch.len() as i64) < self.settings.sweep_batch || stop.is_cancelled() {
                break;
            }
        }
        let stuck_after = Duration::from_secs(self.settings.stuck_after_s);
        let stuck = orders::stuck::count_stuck(&self.pool, stuck_after).await?;
        metrics::set_stuck(stuck);
        swept.stuck = Some(stuck);
        Ok(())
    }
}
