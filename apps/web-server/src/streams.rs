//! Live order pages at scale: one PostgreSQL listener per process, fanned out to the open event
//! streams of each order (`GET /api/orders/{id}/events`, see `routes/orders.rs`).
//!
//! **Where changes come from.** Every change to what the order page shows fires
//! `NOTIFY order_changed, '<order id>'` ([`orders::read::CHANGES_CHANNEL`]; triggers on
//! `orders`, `order_timeline`, `invoices`, `payments` and `shipments`), delivered at commit by
//! whichever process made it. One [`Listener`] per web-server process hears them all, on a
//! connection of its own (`application_name` [`APPLICATION_NAME`], outside the request pool):
//! however many pages are open, the process costs the database one listener and no polling.
//!
//! **Fan-out.** [`Streams`] keeps, for each order that has open streams, one
//! [`tokio::sync::watch`] channel; a notification for the order marks it changed. An open stream
//! holds a [`Watcher`]: it waits for its order's channel, then reads the page again through the
//! access rule (so an expired link stops the updates) and sends it when it differs from the last
//! one sent. A watch channel says only "changed since you last looked": notifications that arrive
//! while a stream is busy fold into one more read, nothing queues up and nothing lags. Re-reads
//! run at most `max(1, database.max_connections / 4)` at once ([`Watcher::read`]), so a burst (a
//! resync of every stream) waits here rather than in front of checkouts in the pool's queue.
//!
//! **Listening only while streams are open.** Every notification in the database wakes every
//! listening connection of it, whatever the channel (PostgreSQL signals them all, and each
//! wake-up is a transaction of that connection's backend): about ten per order, from checkout,
//! the workers and the relay's own channel. So the listener's connection says `LISTEN` when the
//! process's first stream opens and `UNLISTEN` [`UNLISTEN_AFTER`] after its last one closed; then
//! every open stream reads its order once, which catches a change made before the `LISTEN`.
//! Measured (`bench report`, no order page open): ~20 of the ~34 commits per order were the
//! listeners' wake-ups, this one's about half of them.
//!
//! **Lost notifications.** PostgreSQL keeps no notification for a listener that is not connected.
//! When the listener's connection drops, sqlx's `PgListener` connects again and listens again
//! (or, when that fails, [`Listener::run`] starts a new one after a pause growing from 100 ms to
//! 5 s); then every open stream is marked changed — a resync — and reads its order once, which
//! catches whatever changed while nobody listened.
//!
//! **Bounded.** An order's channel is removed when its last stream closes. Each open stream is
//! counted for its session (a stream opened with an order link counts for the session that opened
//! it) and for the process, and refused beyond the caps of [`settings::StreamSettings`] with
//! `429 too_many_streams` or `429 streams_full` (with `Retry-After`); the [`Watcher`] gives its
//! place back when it is dropped — when the client goes away, the stream ends at shutdown, or the
//! handler fails before streaming. A 429 rather than a 503 for a full process: it is load shed on
//! purpose, not a fault to alert on, and the client's answer (wait, then retry) is the same.
//!
//! Hand-written on tokio's `watch` and `Semaphore` and sqlx's `PgListener`: what is left — a
//! map from order to channel with counts, under one short-held lock — is smaller than the glue
//! a pub/sub crate would need.

use std::{
    collections::HashMap,
    str::FromStr,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use secrecy::ExposeSecret;
use settings::{DatabaseSettings, StreamSettings};
use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgListener, PgPoolOptions},
};
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::ApiError;

/// The `application_name` of the listener's connection, to find it in `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "chargeflow-web-server-order-changes";

/// Gauge `chargeflow_order_streams`: live order streams open in this process.
pub const OPEN_STREAMS: &str = "chargeflow_order_streams";
/// Counter `chargeflow_order_streams_refused_total{code}`: streams refused by a cap
/// (`too_many_streams` for a session, `streams_full` for the process).
pub const REFUSED_STREAMS_TOTAL: &str = "chargeflow_order_streams_refused_total";

/// How long the listener keeps listening after the last open stream closed: a shopper moving
/// from one order page to the next should not cost a `LISTEN`/`UNLISTEN` pair.
pub const UNLISTEN_AFTER: Duration = Duration::from_secs(30);
/// First pause before connecting a new listener; it doubles up to [`RECONNECT_MAX`].
const RECONNECT_MIN: Duration = Duration::from_millis(100);
/// Longest pause between two attempts to connect the listener.
const RECONNECT_MAX: Duration = Duration::from_secs(5);
/// `Retry-After` of `too_many_streams`: the session's own closed pages free their places as soon
/// as the server sees them go.
const SESSION_RETRY_AFTER_S: u64 = 5;
/// `Retry-After` of `streams_full`: other shoppers' pages must close first.
const PROCESS_RETRY_AFTER_S: u64 = 15;

/// Describes the series (their `# HELP` lines).
pub fn describe() {
    ::metrics::describe_gauge!(OPEN_STREAMS, "Live order streams open in this process.");
    ::metrics::describe_counter!(
        REFUSED_STREAMS_TOTAL,
        "Live order streams refused by the per-session or per-process cap."
    );
}

/// The open streams of this process, by order and by session. Cheap to clone.
#[derive(Clone)]
pub struct Streams {
    hub: Arc<Hub>,
}

struct Hub {
    caps: StreamSettings,
    registry: Mutex<Registry>,
    /// Re-reads running at once.
    reads: Semaphore,
    load: watch::Sender<Load>,
}

#[derive(Default)]
struct Registry {
    /// One channel per order with open streams; a notification marks it changed.
    orders: HashMap<Uuid, watch::Sender<()>>,
    /// Open streams per session (the SHA-256 of its id); sessions with none are not kept.
    sessions: HashMap<String, usize>,
    open: usize,
}

/// How many streams are open, and for how many orders.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Load {
    /// Open streams.
    pub streams: usize,
    /// Orders with at least one open stream (entries of the fan-out map).
    pub orders: usize,
}

/// Why a stream was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The session holds `cap` streams already.
    Session {
        /// `streams.per_session`.
        cap: usize,
    },
    /// The process holds `cap` streams already.
    Process {
        /// `streams.per_process`.
        cap: usize,
    },
}

impl Streams {
    /// No streams yet; at most `caps` of them, re-reading at most `reads_at_once` orders at once.
    pub fn new(caps: StreamSettings, reads_at_once: usize) -> Self {
        Streams {
            hub: Arc::new(Hub {
                caps,
                registry: Mutex::default(),
                reads: Semaphore::new(reads_at_once.max(1)),
                load: watch::Sender::new(Load::default()),
            }),
        }
    }

    /// Opens a stream of `order_id` for the session `owner` (see
    /// [`crate::access::OrderAccess::owner`]), subscribed from now on.
    ///
    /// # Errors
    /// [`Refused`] when the session or the process already holds as many streams as allowed.
    pub fn open(&self, owner: &str, order_id: Uuid) -> Result<Watcher, Refused> {
        let mut registry = self.hub.lock();
        if let Err(refused) = registry.admit(&self.hub.caps, owner) {
            let code = refused.code();
            ::metrics::counter!(REFUSED_STREAMS_TOTAL, "code" => code).increment(1);
            return Err(refused);
        }
        let changes = registry.subscribe(order_id);
        self.hub.publish(&registry);
        Ok(Watcher {
            hub: Arc::clone(&self.hub),
            owner: owner.to_owned(),
            order_id,
            changes: Some(changes),
        })
    }

    /// How many streams are open, now and as it changes (for tests and tools).
    pub fn load(&self) -> watch::Receiver<Load> {
        self.hub.load.subscribe()
    }

    /// Marks the order changed for its open streams, if it has any.
    fn changed(&self, order_id: Uuid) {
        if let Some(sender) = self.hub.lock().orders.get(&order_id) {
            sender.send_replace(());
        }
    }

    /// Marks every order changed: each open stream reads its order once.
    fn resync(&self) {
        for sender in self.hub.lock().orders.values() {
            sender.send_replace(());
        }
    }

    /// Passes the listener's notifications on until shutdown (`Ok`) or until it fails,
    /// listening only while streams are open (and [`UNLISTEN_AFTER`] longer).
    async fn relay(
        &self,
        listener: &mut PgListener,
        shutdown: &CancellationToken,
    ) -> Result<(), sqlx::Error> {
        let mut load = self.load();
        let mut listening = false;
        // When listening, with no stream open: when to stop.
        let mut unlisten_at = None;
        loop {
            let open = load.borrow_and_update().streams > 0;
            if open && !listening {
                listener.listen(orders::read::CHANGES_CHANNEL).await?;
                listening = true;
                // A change made between a stream's first read and the LISTEN is read now.
                self.resync();
            }
            unlisten_at = match (open, listening) {
                (false, true) => {
                    unlisten_at.or_else(|| Some(tokio::time::Instant::now() + UNLISTEN_AFTER))
                }
                _ => None,
            };
            let received = tokio::select! {
                received = listener.try_recv(), if listening => received?,
                changed = load.changed() => {
                    // The sender lives in `self`: it cannot be dropped while this runs.
                    let _ = changed;
                    continue;
                }
                () = sleep_until_or_forever(unlisten_at) => {
                    listener.unlisten(orders::read::CHANGES_CHANNEL).await?;
                    listening = false;
                    continue;
                }
                () = shutdown.cancelled() => return Ok(()),
            };
            match received {
                Some(notification) => self.notified(notification.payload()),
                // The connection was lost, and sqlx has connected and listened again.
                None => {
                    tracing::info!("order change listener reconnected: open streams read again");
                    self.resync();
                }
            }
        }
    }

    fn notified(&self, payload: &str) {
        match payload.parse() {
            Ok(order_id) => self.changed(order_id),
            Err(_) => tracing::warn!("ignored an order change notification without an order id"),
        }
    }
}

impl Hub {
    /// The registry; a panic elsewhere while holding it left it consistent (every change to it
    /// is a few non-panicking statements), so a poisoned lock is used as is.
    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&self, registry: &Registry) {
        self.load.send_replace(Load {
            streams: registry.open,
            orders: registry.orders.len(),
        });
        ::metrics::gauge!(OPEN_STREAMS).set(registry.open as f64);
    }
}

impl Registry {
    /// Counts one more stream for `owner`, unless a cap is reached.
    fn admit(&mut self, caps: &StreamSettings, owner: &str) -> Result<(), Refused> {
        let of_session = self.sessions.get(owner).copied().unwrap_or(0);
        if of_session >= caps.per_session {
            return Err(Refused::Session {
                cap: caps.per_session,
            });
        }
        if self.open >= caps.per_process {
            return Err(Refused::Process {
                cap: caps.per_process,
            });
        }
        self.open += 1;
        *self.sessions.entry(owner.to_owned()).or_default() += 1;
        Ok(())
    }

    fn subscribe(&mut self, order_id: Uuid) -> watch::Receiver<()> {
        self.orders
            .entry(order_id)
            .or_insert_with(|| watch::Sender::new(()))
            .subscribe()
    }

    /// Forgets one stream of `owner` on `order_id`, whose receiver is already dropped; the
    /// order's channel goes with its last receiver.
    fn release(&mut self, owner: &str, order_id: Uuid) {
        self.open = self.open.saturating_sub(1);
        if let Some(count) = self.sessions.get_mut(owner) {
            *count -= 1;
            if *count == 0 {
                self.sessions.remove(owner);
            }
        }
        if self
            .orders
            .get(&order_id)
            .is_some_and(|sender| sender.receiver_count() == 0)
        {
            self.orders.remove(&order_id);
        }
    }
}

impl Refused {
    /// The stable error code.
    pub fn code(self) -> &'static str {
        match self {
            Refused::Session { .. } => "too_many_streams",
            Refused::Process { .. } => "streams_full",
        }
    }
}

impl From<Refused> for ApiError {
    fn from(refused: Refused) -> Self {
        let (message, retry_after_s) = match refused {
            Refused::Session { cap } => (
                format!(
                    "this session already follows {cap} orders live, the most it may at once: \
                     close another order page, then try again"
                ),
                SESSION_RETRY_AFTER_S,
            ),
            Refused::Process { cap } => (
                format!(
                    "the shop already follows {cap} orders live, the most it can at once: the \
                     order itself can still be read; try the live updates again later"
                ),
                PROCESS_RETRY_AFTER_S,
            ),
        };
        ApiError::TooManyRequests {
            code: refused.code(),
            message,
            retry_after_s,
        }
    }
}

/// One open stream's place: its subscription to its order's changes, counted for its session and
/// the process until it is dropped.
pub struct Watcher {
    hub: Arc<Hub>,
    owner: String,
    order_id: Uuid,
    /// `None` only once dropping (see [`Drop`]).
    changes: Option<watch::Receiver<()>>,
}

impl Watcher {
    /// Waits until the order may have changed since the last call returned (or since the stream
    /// opened): a notification for it, or a resync. `false` when no change can come any more.
    pub async fn changed(&mut self) -> bool {
        match self.changes.as_mut() {
            Some(changes) => changes.changed().await.is_ok(),
            None => false,
        }
    }

    /// Runs `read` (a re-read of the order) once one of the process's read places is free.
    pub async fn read<T>(&self, read: impl Future<Output = T>) -> T {
        // The semaphore is never closed: a permit always comes.
        let _permit = self.hub.reads.acquire().await;
        read.await
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let mut registry = self.hub.lock();
        // The receiver goes under the lock, so that the last stream of an order to close always
        // sees no receivers left and removes the order's channel.
        drop(self.changes.take());
        registry.release(&self.owner, self.order_id);
        self.hub.publish(&registry);
    }
}

/// The process's one listener on [`orders::read::CHANGES_CHANNEL`], and the pool of one
/// connection it (re)connects from.
pub struct Listener {
    pool: PgPool,
    listener: PgListener,
}

impl Listener {
    /// Connects to the database of `database` (as [`APPLICATION_NAME`]); it listens while
    /// streams are open.
    ///
    /// # Errors
    /// When the URL is invalid or the database cannot be reached.
    pub async fn connect(database: &DatabaseSettings) -> Result<Self, sqlx::Error> {
        let options = PgConnectOptions::from_str(database.url.expose_secret())?
            .application_name(APPLICATION_NAME);
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_millis(database.acquire_timeout_ms))
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_lazy_with(options);
        let listener = listen(&pool).await?;
        Ok(Listener { pool, listener })
    }

    /// Passes every notification on to `streams` until `shutdown`. A lost connection is
    /// connected again, and every open stream then reads its order once.
    pub async fn run(self, streams: Streams, shutdown: CancellationToken) {
        let Listener { pool, listener } = self;
        let mut current = Some(listener);
        let mut pause = RECONNECT_MIN;
        while !shutdown.is_cancelled() {
            let Some(mut listener) = current.take() else {
                current = reconnect(&pool, &mut pause, &shutdown).await;
                continue;
            };
            if let Err(error) = streams.relay(&mut listener, &shutdown).await {
                tracing::warn!(error = %error, "order change listener lost its connection");
            }
        }
    }
}

/// A new listener connection (its first `LISTEN` is followed by a resync: [`Streams::relay`]),
/// or `None` after a failed attempt and a pause (doubling `pause`, reset on success).
async fn reconnect(
    pool: &PgPool,
    pause: &mut Duration,
    shutdown: &CancellationToken,
) -> Option<PgListener> {
    match listen(pool).await {
        Ok(listener) => {
            tracing::info!("order change listener connected again: open streams read again");
            *pause = RECONNECT_MIN;
            Some(listener)
        }
        Err(error) => {
            tracing::warn!(error = %error, retry_in_ms = pause.as_millis(), "order change listener cannot connect");
            tokio::select! {
                () = tokio::time::sleep(*pause) => {}
                () = shutdown.cancelled() => {}
            }
            *pause = (*pause * 2).min(RECONNECT_MAX);
            None
        }
    }
}

/// A listener connection, not listening yet ([`Streams::relay`] listens while streams are open).
async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    PgListener::connect_with(pool).await
}

/// Sleeps until `until`, or forever when there is none.
async fn sleep_until_or_forever(until: Option<tokio::time::Instant>) {
    match until {
        Some(until) => tokio::time::sleep_until(until).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streams(per_session: usize, per_process: usize) -> Streams {
        Streams::new(
            StreamSettings {
                per_session,
                per_process,
            },
            2,
        )
    }

    #[test]
    fn a_session_over_its_cap_is_refused_and_a_closed_stream_gives_its_place_back() {
        let streams = streams(2, 10);
        let order = Uuid::new_v4();
        let first = streams.open("a", order).unwrap();
        let _second = streams.open("a", order).unwrap();

        assert_eq!(
            streams.open("a", Uuid::new_v4()).err(),
            Some(Refused::Session { cap: 2 })
        );
        assert!(
            streams.open("b", order).is_ok(),
            "another session has its own count"
        );
        drop(first);
        assert!(streams.open("a", order).is_ok());
    }

    #[test]
    fn the_process_cap_counts_every_session() {
        let streams = streams(2, 3);
        let _held: Vec<Watcher> = ["a", "b", "c"]
            .iter()
            .map(|owner| streams.open(owner, Uuid::new_v4()).unwrap())
            .collect();

        let refused = streams.open("d", Uuid::new_v4()).err().unwrap();

        assert_eq!(refused, Refused::Process { cap: 3 });
        assert_eq!(refused.code(), "streams_full");
    }

    #[test]
    fn an_order_is_forgotten_when_its_last_stream_closes() {
        let streams = streams(5, 10);
        let order = Uuid::new_v4();
        let one = streams.open("a", order).unwrap();
        let two = streams.open("b", order).unwrap();
        assert_eq!(
            *streams.load().borrow(),
            Load {
                streams: 2,
                orders: 1
            }
        );

        drop(one);
        assert_eq!(streams.load().borrow().orders, 1);
        drop(two);

        assert_eq!(*streams.load().borrow(), Load::default());
        assert!(streams.hub.lock().sessions.is_empty());
    }

    #[tokio::test]
    async fn a_notification_wakes_the_streams_of_its_order_only_and_a_resync_wakes_all() {
        let streams = streams(5, 10);
        let (order, other) = (Uuid::new_v4(), Uuid::new_v4());
        let mut watching = streams.open("a", order).unwrap();
        let mut elsewhere = streams.open("a", other).unwrap();

        streams.notified(&order.to_string());
        streams.notified("not an order id");

        assert!(watching.changed().await);
        let unchanged = elsewhere.changes.as_mut().unwrap().has_changed();
        assert_eq!(unchanged.ok(), Some(false));
        streams.resync();
        assert!(watching.changed().await);
        assert!(elsewhere.changed().await);
    }
}
