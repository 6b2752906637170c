//! A handler that runs its events on the pool itself ([`Handler::run`]): the runtime opens no
//! transaction for it, and its closing transaction from [`worker::begin_with_inbox`] makes its
//! last write happen once. (Its consumer is `invoice`, which no other test of this binary uses:
//! the metrics test counts `shipping`.)

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use domain::{Consumer, Event};
use sqlx::{PgConnection, PgPool, postgres::PgPoolOptions};
use worker::{Classify, Disposition, Failure, Handled, Handler, RunError};

#[derive(Debug, thiserror::Error)]
#[error("on-pool failure")]
struct OnPoolFailure(#[from] sqlx::Error);

impl Classify for OnPoolFailure {
    fn failure(&self) -> Failure {
        Failure::Retryable
    }
}

/// A statement on its own (as a handler commits a step before a remote call), then the closing
/// transaction with the inbox row; counts how often its closing write and `handle` ran.
#[derive(Clone, Default)]
struct OnPool {
    closed: Arc<AtomicUsize>,
    handled: Arc<AtomicUsize>,
}

impl Handler for OnPool {
    type Error = OnPoolFailure;

    fn consumer(&self) -> Consumer {
        Consumer::Invoice
    }

    async fn handle(&self, _event: &Event, _tx: &mut PgConnection) -> Result<(), OnPoolFailure> {
        self.handled.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn run(&self, event: &Event, pool: &PgPool) -> Result<Handled, RunError<OnPoolFailure>> {
        sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map_err(|e| RunError::Handler(e.into()))?;
        let Some(mut tx) = worker::begin_with_inbox(pool, self.consumer(), event.id).await? else {
            return Ok(Handled::Duplicate);
        };
        sqlx::query("SELECT 1")
            .execute(&mut *tx)
            .await
            .map_err(|e| RunError::Handler(e.into()))?;
        tx.commit().await?;
        self.closed.fetch_add(1, Ordering::SeqCst);
        Ok(Handled::Done)
    }
}

#[tokio::test]
async fn a_handler_running_on_the_pool_closes_each_event_once_with_the_inbox_row() {
    let backends = testkit::Backends::start(1).await.expect("database");
    // One connection: the runtime must not hold one while the handler takes its own.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(2))
        .connect(&backends.db_url)
        .await
        .expect("pool");
    let handler = OnPool::default();
    let (_, body) = crate::event();
    let run = || worker::process(&handler, &pool, &body, Duration::from_secs(10));

    assert_eq!(run().await, Disposition::Done);
    assert_eq!(run().await, Disposition::Duplicate);

    assert_eq!(handler.closed.load(Ordering::SeqCst), 1);
    assert_eq!(
        handler.handled.load(Ordering::SeqCst),
        0,
        "the runtime left it to `run`"
    );
    let inbox: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox WHERE consumer = 'invoice'")
        .fetch_one(&pool)
        .await
        .expect("inbox");
    assert_eq!(inbox, 1);
}

/// A handler cut off by its timeout while its transaction's `BEGIN` waits on PostgreSQL leaves
/// its connection out of any transaction, and the event's next delivery is handled. (sqlx 0.9.0
/// handed that connection back inside the open transaction: its guard rolled back only a `BEGIN`
/// already counted.) The pool's one backend is held still with SIGSTOP while the timeout strikes.
#[tokio::test]
async fn a_handler_timed_out_while_its_transaction_begins_leaves_no_transaction_behind() {
    let testkit::Backends { db_url, .. } = testkit::Backends::start(1).await.expect("database");
    // The workers' own pool, one connection, handed out untested (used within the test window).
    let pool = settings::DatabaseSettings {
        url: db_url.clone().into(),
        max_connections: 1,
        test_idle_ms: 60_000,
        ..settings::DatabaseSettings::default()
    }
    .connect()
    .await
    .expect("pool");
    let observer = testkit::pool(&db_url, 1).await.expect("observer");
    let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&pool)
        .await
        .expect("backend");
    // Back in the pool once sqlx's test on release (a round trip) is over.
    testkit::eventually(
        "the connection back in the pool",
        Duration::from_secs(5),
        || async { pool.num_idle() == 1 },
    )
    .await
    .expect("idle");
    let (_, body) = crate::event();
    let handler = crate::Scripted::default();

    testkit::processes::signal(backend, "-STOP");
    let cut_off = worker::process(&handler, &pool, &body, Duration::from_millis(300)).await;
    testkit::processes::signal(backend, "-CONT");

    assert!(matches!(cut_off, Disposition::Retry { .. }), "{cut_off:?}");
    // Taken from the pool (once it is back there) and held unused, the connection's session
    // shows its state to another one.
    let held = pool
        .acquire()
        .await
        .expect("the connection back in the pool");
    let state: String = sqlx::query_scalar("SELECT state FROM pg_stat_activity WHERE pid = $1")
        .bind(backend)
        .fetch_one(&observer)
        .await
        .expect("state");
    assert_eq!(state, "idle", "not inside a transaction left open");
    drop(held);
    assert_eq!(
        worker::process(&handler, &pool, &body, Duration::from_secs(10)).await,
        Disposition::Done
    );
}
