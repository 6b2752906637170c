//! The outbox relay: publishes committed outbox rows to the SQS queue of every consumer their
//! event type is routed to.
//!
//! `concurrency` loops each claim a batch (`FOR UPDATE SKIP LOCKED`, at most one row per order),
//! publish it with `SendMessageBatch` calls in flight together, then mark the rows published or
//! schedule a retry, and commit. Several relay processes may run at once: row locks keep them
//! apart and the claim rule keeps each order's events in commit order.
//!
//! The loops take turns to claim (`Turn`), so that a `LISTEN/NOTIFY` wake-up starts one claim
//! instead of one in every loop (which split the new rows into as many small batches and cost
//! empty claims). After a full claim (a backlog) the turn passes on at once and the loops
//! publish in parallel. After a short claim (it found fewer rows than a batch) the loop keeps
//! the turn until its batch is published, and the next claim starts `linger_ms` after the short
//! one at the earliest: rows committed while a batch is out go out together in the next, in
//! fuller `SendMessageBatch` calls — the busier the relay, the fuller — while an idle relay
//! claims as soon as it is notified.
//!
//! The relay listens only while it is idle (its last claim found nothing). PostgreSQL wakes
//! every listening connection of the database at every notifying commit, whatever the channel —
//! the `order_changed` notifications of the order pages included — and each wake-up is a
//! transaction of that connection's backend: about eight per order at 50 orders/s for a relay
//! that always listened. A busy relay claims again after each linger anyway. When a claim finds nothing
//! the listener listens again and then wakes the loops once, for rows committed meanwhile.
//!
//! A committed publish is a wake-up too when rows of the published orders wait behind the
//! published ones: they are claimable now, and no notification will come for them. Without it
//! a claim that found the rows of a backlog locked by the other loops (or only some of them)
//! waited for the poll interval while the other loops' commits freed the rest.
//!
//! A crash between the SQS call and the commit leaves the rows unpublished; they are sent again
//! and FIFO deduplication (by event id, five minutes) drops the repeat.
//!
//! Each committed pass is counted in [`metrics`]; a side loop keeps the backlog gauges current.
//!
//! Beside the publish loops runs the expiry sweeper ([`expiry`]): every relay cancels the unpaid
//! orders past their expiry and counts the stuck ones, so that work scales out and survives
//! restarts with the relays.

pub mod expiry;
pub mod lambda;
pub mod metrics;
mod publish;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};
use telemetry::{error_chain, trace::Kind};

use outbox::{Backoff, Claimed};
use secrecy::ExposeSecret;
use settings::{OrdersSettings, RelaySettings, Settings};
use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::{Mutex, MutexGuard, Notify, watch};
use tokio_util::sync::CancellationToken;

pub use expiry::Sweeper;
pub use publish::Publisher;

/// The error type of the relay.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// An outbox statement failed.
    #[error(transparent)]
    Outbox(#[from] outbox::OutboxError),
    /// The database could not be reached or a transaction failed.
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

/// What one claim-and-publish pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// A batch was claimed: how many rows went out and how many will be retried.
    Worked {
        /// Rows marked published.
        published: usize,
        /// Rows scheduled for another attempt.
        failed: usize,
    },
    /// Nothing was publishable.
    Empty,
}

/// What a [`Relay::run`] did before it stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunSummary {
    /// Rows marked published.
    pub published: usize,
    /// Failed publish attempts recorded on rows (each will be retried).
    pub failed: usize,
    /// Unpaid orders the run's expiry sweeps cancelled as `expired`.
    pub expired: usize,
}

/// A relay over one database and one SQS endpoint.
#[derive(Clone)]
pub struct Relay {
    pool: PgPool,
    publisher: Publisher,
    settings: RelaySettings,
    wake: Arc<Notify>,
    turn: Arc<Mutex<Turn>>,
    /// Whether the last claim found nothing: the listener listens only then.
    idle: Arc<watch::Sender<bool>>,
    sweeper: Option<Sweeper>,
}

/// The right to claim next, passed between the claim loops, with how the last claim went: it
/// decides how long the next one waits.
#[derive(Debug, Clone, Copy)]
enum Turn {
    /// The last claim found nothing (or failed): wait for a notification.
    Idle,
    /// The last claim, started then, found fewer rows than a batch: wait for its publish and
    /// until `linger_ms` after that start.
    Short(Instant),
    /// The last claim filled a batch: claim again at once.
    Full,
}

/// Rows claimed in their still-open transaction.
struct ClaimedBatch {
    tx: Transaction<'static, Postgres>,
    rows: Vec<outbox::PendingEvent>,
}

impl Relay {
    /// Connects to PostgreSQL and builds the SQS client (SQS itself is reached lazily, so the
    /// relay starts while SQS is down and catches up once it is back).
    ///
    /// # Errors
    /// [`RelayError::Database`] when PostgreSQL cannot be reached.
    pub async fn connect(settings: &Settings) -> Result<Self, RelayError> {
        let pool = settings
            .database
            .pool_options()
            // One connection per loop, one each for the listener, the purge, the backlog gauge
            // and the expiry sweeper.
            .max_connections(u32::try_from(settings.relay.concurrency + 4).unwrap_or(u32::MAX))
            .connect(settings.database.url.expose_secret())
            .await?;
        let timeout = Duration::from_millis(settings.relay.sqs_timeout_ms);
        let client = sqs_transport::connect(&settings.sqs, timeout).await;
        let publisher = Publisher::new(client, settings.sqs.queue_prefix.clone());
        Ok(Relay::new(pool, publisher, settings.relay.clone()).with_sweeper(&settings.orders))
    }

    /// A relay from parts (tests and benchmarks build their own pool and client), without an
    /// expiry sweeper until [`Relay::with_sweeper`]; its publisher keeps to
    /// `settings.sqs_in_flight` calls at once.
    pub fn new(pool: PgPool, publisher: Publisher, settings: RelaySettings) -> Self {
        Relay {
            pool,
            publisher: publisher.with_calls_in_flight(settings.sqs_in_flight),
            settings,
            wake: Arc::new(Notify::new()),
            turn: Arc::new(Mutex::new(Turn::Idle)),
            idle: Arc::new(watch::Sender::new(true)),
            sweeper: None,
        }
    }

    /// The relay with an expiry sweeper over its database ([`expiry`]), run beside the publish
    /// loops.
    pub fn with_sweeper(mut self, settings: &OrdersSettings) -> Self {
        self.sweeper = Some(Sweeper::new(self.pool.clone(), settings.clone()));
        self
    }

    /// The relay without its sweeper, and the sweeper, for a caller that sweeps on a schedule
    /// of its own (a Lambda invocation sweeps once).
    pub fn without_sweeper(mut self) -> (Relay, Option<Sweeper>) {
        let sweeper = self.sweeper.take();
        (self, sweeper)
    }

    /// Runs the claim loops, the `LISTEN` wake-up, the purge, the backlog gauge and the expiry
    /// sweeper (if it has one) until `shutdown` is cancelled; batches in flight finish first.
    pub async fn run(self, shutdown: CancellationToken) -> RunSummary {
        tracing::info!(concurrency = self.settings.concurrency, "relay started");
        metrics::describe();
        let mut side_tasks = tokio::task::JoinSet::new();
        side_tasks.spawn(self.clone().listen(shutdown.clone()));
        side_tasks.spawn(self.clone().purge_loop(shutdown.clone()));
        side_tasks.spawn(self.clone().backlog_loop(shutdown.clone()));
        let sweeping = self
            .sweeper
            .clone()
            .map(|sweeper| tokio::spawn(sweeper.run(shutdown.clone())));
        let mut claim_loops = tokio::task::JoinSet::new();
        for _ in 0..self.settings.concurrency {
            claim_loops.spawn(self.clone().claim_loop(shutdown.clone()));
        }
        let mut summary = RunSummary::default();
        while let Some(done) = claim_loops.join_next().await {
            if let Ok(loop_summary) = done {
                summary.published += loop_summary.published;
                summary.failed += loop_summary.failed;
            }
        }
        while side_tasks.join_next().await.is_some() {}
        if let Some(sweeping) = sweeping {
            summary.expired = sweeping.await.unwrap_or_default();
        }
        tracing::info!(
            published = summary.published,
            failed = summary.failed,
            expired = summary.expired,
            "relay stopped"
        );
        summary
    }

    /// Claims one batch, publishes it, and records the outcome in one transaction.
    ///
    /// # Errors
    /// [`RelayError`] when the database fails; SQS failures are recorded on the rows instead.
    pub async fn relay_once(&self) -> Result<Pass, RelayError> {
        match self.claim().await? {
            Some(batch) => self.publish(batch).await,
            None => Ok(Pass::Empty),
        }
    }

    /// Opens a transaction and claims up to `batch_size` rows in it; `None` (and no transaction)
    /// when nothing is publishable.
    async fn claim(&self) -> Result<Option<ClaimedBatch>, RelayError> {
        let mut tx = outbox::begin_claim(&self.pool).await?;
        Ok(
            match outbox::claim(&mut tx, self.settings.batch_size).await? {
                Claimed::Empty => None,
                Claimed::Batch(rows) => Some(ClaimedBatch { tx, rows }),
            },
        )
    }

    /// Publishes claimed rows, marks them published or schedules their retry, and commits.
    async fn publish(&self, batch: ClaimedBatch) -> Result<Pass, RelayError> {
        let ClaimedBatch { mut tx, mut rows } = batch;
        let spans = publish_spans(&mut rows);
        let outcome = self.publisher.publish(&rows).await;
        let accepted_at = chrono::Utc::now();
        if !outcome.published.is_empty() {
            outbox::mark_published(&mut tx, &outcome.published).await?;
        }
        for (ids, error) in &outcome.failed {
            outbox::record_failure(&mut tx, ids, error, self.backoff()).await?;
        }
        tx.commit().await?;
        mark_failed(&spans, &rows, &outcome);
        drop(spans);
        let failed = outcome.failed.iter().map(|(ids, _)| ids.len()).sum();
        let published = published_rows(&rows, &outcome.published);
        if published.iter().any(|row| row.next_waiting) {
            // The rows behind these are claimable now; no notification will say so.
            self.wake.notify_one();
        }
        metrics::record_pass(&published, failed, accepted_at);
        log_published(&published);
        Ok(Pass::Worked {
            published: outcome.published.len(),
            failed,
        })
    }

    /// Publishes until nothing is publishable (tests and tools).
    ///
    /// # Errors
    /// [`RelayError`] when the database fails.
    pub async fn drain(&self) -> Result<usize, RelayError> {
        let mut published = 0;
        while let Pass::Worked { published: n, .. } = self.relay_once().await? {
            published += n;
        }
        Ok(published)
    }

    fn backoff(&self) -> Backoff {
        Backoff {
            base: Duration::from_millis(self.settings.backoff_base_ms),
            max: Duration::from_millis(self.settings.backoff_max_ms),
        }
    }

    async fn claim_loop(self, shutdown: CancellationToken) -> RunSummary {
        let mut summary = RunSummary::default();
        while let Some((turn, claimed)) = self.take_turn(&shutdown).await {
            let passed = match claimed {
                Ok(Some(batch)) => {
                    // After a full claim the next loop claims while this one publishes; after a
                    // short one it waits for this publish, and rows gather meanwhile.
                    if matches!(*turn, Turn::Full) {
                        drop(turn);
                    }
                    self.publish(batch).await
                }
                Ok(None) => continue,
                Err(error) => Err(error),
            };
            match passed {
                Ok(Pass::Worked { published, failed }) => {
                    summary.published += published;
                    summary.failed += failed;
                }
                Ok(Pass::Empty) => {}
                Err(error) => {
                    tracing::error!(error = %error_chain(&error), "relay pass failed");
                    let pause = self.settings.poll_interval().max(Duration::from_secs(1));
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = shutdown.cancelled() => {}
                    }
                }
            }
        }
        summary
    }

    /// Waits for this loop's turn, then for work ([`Relay::await_work`]), and claims; returns the
    /// turn with the claim, for the caller to pass on. `None` once `shutdown` is cancelled.
    async fn take_turn(
        &self,
        shutdown: &CancellationToken,
    ) -> Option<(
        MutexGuard<'_, Turn>,
        Result<Option<ClaimedBatch>, RelayError>,
    )> {
        let mut turn = tokio::select! {
            turn = self.turn.lock() => turn,
            () = shutdown.cancelled() => return None,
        };
        self.await_work(*turn, shutdown).await?;
        let started = Instant::now();
        let claimed = self.claim().await;
        *turn = match &claimed {
            Ok(Some(batch)) if batch.rows.len() >= self.batch_len() => Turn::Full,
            Ok(Some(_)) => Turn::Short(started),
            Ok(None) | Err(_) => Turn::Idle,
        };
        let idle = matches!(*turn, Turn::Idle);
        self.idle
            .send_if_modified(|was| std::mem::replace(was, idle) != idle);
        Some((turn, claimed))
    }

    /// After a full claim, returns at once; after a short one, waits until `linger_ms` after its
    /// start (the relay is busy and does not listen: it claims again then, whatever came);
    /// after an empty one, waits for a wake-up (`LISTEN/NOTIFY`, or a publish that made rows
    /// claimable; one that came while claiming counts: it is kept until taken) or the poll
    /// interval. `None` once `shutdown` is cancelled.
    async fn await_work(&self, turn: Turn, shutdown: &CancellationToken) -> Option<()> {
        match turn {
            Turn::Full => return (!shutdown.is_cancelled()).then_some(()),
            Turn::Short(started) => tokio::select! {
                () = tokio::time::sleep_until((started + self.settings.linger()).into()) => {}
                () = shutdown.cancelled() => return None,
            },
            Turn::Idle => tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.settings.poll_interval()) => {}
                () = shutdown.cancelled() => return None,
            },
        }
        Some(())
    }

    /// The batch size as a row count.
    fn batch_len(&self) -> usize {
        usize::try_from(self.settings.batch_size).unwrap_or(usize::MAX)
    }

    async fn listen(self, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            if let Err(error) = self.listen_once(&shutdown).await {
                tracing::warn!(error = %error_chain(&error), "outbox listener lost, polling until it is back");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = shutdown.cancelled() => {}
                }
            }
        }
    }

    /// Listens while the relay is idle (its last claim found nothing) and not while it is busy:
    /// a busy relay claims again after each linger anyway, and PostgreSQL wakes every
    /// listening connection of the database at every notifying commit, whatever the channel
    /// (the `order_changed` ones included), each wake-up a transaction of its backend.
    async fn listen_once(&self, shutdown: &CancellationToken) -> Result<(), sqlx::Error> {
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool).await?;
        let mut idle = self.idle.subscribe();
        loop {
            if *idle.borrow_and_update() {
                listener.listen(outbox::NOTIFY_CHANNEL).await?;
                // Rows may have been committed while nobody listened. One wake-up is kept until
                // the loop whose turn it is takes it (`notify_one`), so none is lost.
                self.wake.notify_one();
                loop {
                    tokio::select! {
                        received = listener.recv() => {
                            received?;
                            self.wake.notify_one();
                        }
                        changed = idle.changed() => {
                            if changed.is_err() || !*idle.borrow_and_update() {
                                break;
                            }
                        }
                        () = shutdown.cancelled() => return Ok(()),
                    }
                }
                listener.unlisten(outbox::NOTIFY_CHANNEL).await?;
            }
            tokio::select! {
                changed = idle.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                }
                () = shutdown.cancelled() => return Ok(()),
            }
        }
    }

    /// Purges at start and every `purge_interval_s`: published outbox rows and the bounded
    /// tables of [`outbox::retention`].
    async fn purge_loop(self, shutdown: CancellationToken) {
        let every = Duration::from_secs(self.settings.purge_interval_s.max(1));
        loop {
            self.purge_all().await;
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// One purge of every table; a failure is logged and retried at the next interval.
    async fn purge_all(&self) {
        let outbox_retention = Duration::from_secs(self.settings.retention_s);
        match self.purge(None, outbox_retention).await {
            Ok(0) => {}
            Ok(rows) => tracing::info!(rows, "purged published outbox rows"),
            Err(error) => tracing::warn!(error = %error_chain(&error), "outbox purge failed"),
        }
        for table in outbox::retention::Table::ALL {
            match self
                .purge(Some(table), table.retention(&self.settings))
                .await
            {
                Ok(0) => {}
                Ok(rows) => tracing::info!(rows, table = table.name(), "purged old rows"),
                Err(error) => {
                    tracing::warn!(error = %error_chain(&error), table = table.name(), "purge failed")
                }
            }
        }
    }
    /// Reads the backlog now and every [`metrics::BACKLOG_EVERY`] into its gauges.
    async fn backlog_loop(self, shutdown: CancellationToken) {
        loop {
            match self.backlog().await {
                Ok(backlog) => metrics::set_backlog(&backlog),
                Err(error) => {
                    tracing::warn!(error = %error_chain(&error), "could not read the outbox backlog")
                }
            }
            tokio::select! {
                () = tokio::time::sleep(metrics::BACKLOG_EVERY) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    async fn backlog(&self) -> Result<outbox::Backlog, RelayError> {
        let mut conn = self.pool.acquire().await?;
        Ok(outbox::backlog(&mut conn).await?)
    }

    /// Deletes `table`'s rows older than `retention` (published outbox rows for `None`) in
    /// batches of [`PURGE_CHUNK`], each its own statement; counts them in
    /// `chargeflow_rows_purged_total`.
    async fn purge(
        &self,
        table: Option<outbox::retention::Table>,
        retention: Duration,
    ) -> Result<u64, RelayError> {
        let mut total = 0;
        loop {
            let mut conn = self.pool.acquire().await?;
            let rows = match table {
                None => outbox::purge_published(&mut conn, retention, PURGE_CHUNK).await?,
                Some(table) => {
                    outbox::retention::purge(&mut conn, table, retention, PURGE_CHUNK).await?
                }
            };
            total += rows;
            metrics::count_purged(table.map_or("outbox", |t| t.name()), rows);
            if rows < PURGE_CHUNK.unsigned_abs() {
                return Ok(total);
            }
        }
    }
}

/// With the span export on, one span per row, `outbox.publish` (a producer span named
/// `publish <event type>`, the child of the row's `traceparent`), lasting until the batch is
/// committed; each row's `traceparent` becomes its span's context, which the row's SQS messages
/// carry as their `traceparent` attribute, so the consumers' spans hang under it. Off: none, and
/// the rows are left as they are (no cost).
fn publish_spans(rows: &mut [outbox::PendingEvent]) -> Vec<tracing::Span> {
    if !telemetry::otel::enabled() {
        return Vec::new();
    }
    rows.iter_mut()
        .map(|row| {
            let span = tracing::info_span!(
                "outbox.publish",
                event.id = %row.event_id,
                event.r#type = %row.event_type,
                aggregate.id = %row.aggregate_id,
                trace_id = tracing::field::Empty,
                otel.name = tracing::field::Empty,
                otel.kind = tracing::field::Empty,
                otel.status_code = tracing::field::Empty,
            );
            let own =
                telemetry::trace::continue_in(&span, &row.traceparent, Kind::Producer, || {
                    format!("publish {}", row.event_type)
                });
            row.traceparent = own.to_string();
            span
        })
        .collect()
}

/// Marks the spans of the rows that were not published as failed.
fn mark_failed(
    spans: &[tracing::Span],
    rows: &[outbox::PendingEvent],
    outcome: &publish::PublishOutcome,
) {
    if spans.is_empty() || outcome.failed.is_empty() {
        return;
    }
    let failed: std::collections::HashSet<i64> = outcome
        .failed
        .iter()
        .flat_map(|(ids, _)| ids.iter().copied())
        .collect();
    for (span, row) in spans.iter().zip(rows) {
        if failed.contains(&row.id) {
            span.record("otel.status_code", "error");
        }
    }
}

/// Rows deleted per purge statement.
const PURGE_CHUNK: i64 = 1_000;

/// The rows of `batch` whose ids are in `published`.
fn published_rows<'a>(
    batch: &'a [outbox::PendingEvent],
    published: &[i64],
) -> Vec<&'a outbox::PendingEvent> {
    let published: std::collections::HashSet<i64> = published.iter().copied().collect();
    batch.iter().filter(|e| published.contains(&e.id)).collect()
}

/// One debug line per published event, carrying its order's `trace_id` (the relay's part of the
/// order's trace).
fn log_published(published: &[&outbox::PendingEvent]) {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    for event in published {
        let trace_id = telemetry::trace::trace_id_of(&event.traceparent);
        // Every aggregate is an order but a sign-in request's (`customer.sign_in_requested`).
        let aggregate = event.event_type.parse().map(domain::EventType::aggregate);
        if aggregate == Ok(domain::Aggregate::SignInRequest) {
            tracing::debug!(
                event.id = %event.event_id,
                event.r#type = %event.event_type,
                sign_in_request.id = %event.aggregate_id,
                trace_id = %trace_id,
                "event published"
            );
        } else {
            tracing::debug!(
                event.id = %event.event_id,
                event.r#type = %event.event_type,
                order.id = %event.aggregate_id,
                trace_id = %trace_id,
                "event published"
            );
        }
    }
}
