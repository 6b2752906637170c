//! A handler with an effect (`Handler::HAS_EFFECT`): the runtime runs the effect before its
//! transaction, with no transaction open, only for an event the inbox does not hold, and skips
//! `handle` (and the inbox row) when the effect fails.

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};

use domain::{Consumer, Event, EventEnvelope, EventType};
use sqlx::{PgConnection, PgPool};
use worker::{Classify, Disposition, Failure, Handler};

/// Counts its effects and handles; the effect fails while `failing` is set, and notes whether
/// the inbox held its event while it ran.
#[derive(Clone, Default)]
struct WithEffect {
    effects: Arc<AtomicUsize>,
    handles: Arc<AtomicUsize>,
    failing: Arc<AtomicBool>,
    inbox_held_during_effect: Arc<AtomicBool>,
}

#[derive(Debug, thiserror::Error)]
enum EffectError {
    #[error("the remote service is down")]
    Down,
    #[error("the effect's statement failed")]
    Database(#[from] sqlx::Error),
}

impl Classify for EffectError {
    fn failure(&self) -> Failure {
        Failure::Retryable
    }
}

impl Handler for WithEffect {
    type Error = EffectError;

    const HAS_EFFECT: bool = true;

    fn consumer(&self) -> Consumer {
        Consumer::Shipping
    }

    async fn effect(&self, event: &Event, pool: &PgPool) -> Result<(), EffectError> {
        self.effects.fetch_add(1, Ordering::SeqCst);
        let held: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM inbox WHERE event_id = $1)")
                .bind(event.id)
                .fetch_one(pool)
                .await?;
        self.inbox_held_during_effect
            .fetch_or(held, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            return Err(EffectError::Down);
        }
        Ok(())
    }

    async fn handle(&self, _event: &Event, _tx: &mut PgConnection) -> Result<(), EffectError> {
        self.handles.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn body() -> String {
    let payload = serde_json::json!({"reason": "test"});
    let event = EventEnvelope::new(
        EventType::ShipmentFailed,
        uuid::Uuid::new_v4(),
        "t",
        "",
        &payload,
    )
    .expect("envelope");
    serde_json::to_string(&event).expect("json")
}

async fn process(handler: &WithEffect, pool: &PgPool, body: &str) -> Disposition {
    worker::process(handler, pool, body, std::time::Duration::from_secs(10)).await
}

#[tokio::test]
async fn the_effect_runs_before_the_transaction_once_per_event_and_a_failed_one_writes_nothing() {
    let backends = testkit::Backends::start(3).await.expect("database");
    let pool = &backends.pool;
    let handler = WithEffect::default();
    let body = body();

    handler.failing.store(true, Ordering::SeqCst);
    let failed = process(&handler, pool, &body).await;
    assert!(matches!(failed, Disposition::Retry { .. }), "{failed:?}");
    assert_eq!(
        handler.handles.load(Ordering::SeqCst),
        0,
        "no handle after a failed effect"
    );
    assert_eq!(testkit::scalar(pool, "SELECT count(*) FROM inbox").await, 0);

    handler.failing.store(false, Ordering::SeqCst);
    assert_eq!(process(&handler, pool, &body).await, Disposition::Done);
    assert_eq!(process(&handler, pool, &body).await, Disposition::Duplicate);

    assert_eq!(
        handler.effects.load(Ordering::SeqCst),
        2,
        "not run for the handled event"
    );
    assert_eq!(handler.handles.load(Ordering::SeqCst), 1);
    assert!(
        !handler.inbox_held_during_effect.load(Ordering::SeqCst),
        "the effect ran before the inbox row was written"
    );
    assert_eq!(testkit::scalar(pool, "SELECT count(*) FROM inbox").await, 1);
}
