//! What every handler can reach: the store and the fault picker, each behind a mutex that is
//! never held across an `.await`, the delivery settings, and the token that cuts deliberate
//! delays and background deliveries short at shutdown.

use std::{
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio_util::sync::CancellationToken;

use crate::{
    callback::Callback,
    delivery::Delivery,
    faults::{Fault, FaultPicker, Faults},
    store::Store,
};

/// Shared state of one simulator.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

struct Shared {
    store: Mutex<Store>,
    picker: Mutex<FaultPicker>,
    callback: Option<Callback>,
    deliver_after_ms: AtomicU64,
    stopping: CancellationToken,
}

impl AppState {
    /// An empty simulator with `faults` in force, delivering as `delivery` says.
    pub fn new(faults: Faults, delivery: Delivery) -> Self {
        let deliver_after_ms =
            u64::try_from(delivery.deliver_after.as_millis()).unwrap_or(u64::MAX);
        let shared = Shared {
            store: Mutex::new(Store::default()),
            picker: Mutex::new(FaultPicker::new(faults)),
            callback: delivery.callback,
            deliver_after_ms: AtomicU64::new(deliver_after_ms),
            stopping: CancellationToken::new(),
        };
        AppState {
            inner: Arc::new(shared),
        }
    }

    /// Cancelled when the server starts shutting down.
    pub fn stopping(&self) -> CancellationToken {
        self.inner.stopping.clone()
    }

    /// The store, locked. A panic elsewhere never poisons it for good: the maps stay usable.
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.inner
            .store
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn picker(&self) -> MutexGuard<'_, FaultPicker> {
        self.inner
            .picker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        self.picker().faults().clone()
    }

    /// Replaces the faults (and reseeds the draws).
    pub fn set_faults(&self, faults: Faults) {
        *self.picker() = FaultPicker::new(faults);
    }

    /// Draws the fault, if any, for one `POST /v1/shipments` or cancel.
    pub fn draw_fault(&self) -> Option<Fault> {
        self.picker().draw()
    }

    /// Where delivery events go, if anywhere.
    pub fn callback(&self) -> Option<&Callback> {
        self.inner.callback.as_ref()
    }

    /// How long after booking a shipment is delivered.
    pub fn deliver_after(&self) -> Duration {
        Duration::from_millis(self.deliver_after_ms())
    }

    /// [`AppState::deliver_after`] in milliseconds.
    pub fn deliver_after_ms(&self) -> u64 {
        self.inner.deliver_after_ms.load(Ordering::Relaxed)
    }

    /// Changes the delivery delay of the shipments booked from now on.
    pub fn set_deliver_after_ms(&self, ms: u64) {
        self.inner.deliver_after_ms.store(ms, Ordering::Relaxed);
    }

    /// Waits the configured latency.
    pub async fn add_latency(&self) {
        let latency = self.picker().faults().latency();
        self.pause(latency).await;
    }

    /// Sleeps for `duration`, or until shutdown begins.
    pub async fn pause(&self, duration: Duration) {
        if duration.is_zero() {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(duration) => {}
            () = self.inner.stopping.cancelled() => {}
        }
    }

    /// Runs `work` unless shutdown begins first (or already has): `None` then.
    pub async fn unless_stopping<T>(&self, work: impl Future<Output = T>) -> Option<T> {
        tokio::select! {
            biased;
            () = self.inner.stopping.cancelled() => None,
            done = work => Some(done),
        }
    }
}
