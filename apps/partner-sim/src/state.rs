//! What every handler can reach: the store and the fault picker, each behind a mutex that is
//! never held across an `.await`, and the token that cuts deliberate delays short at shutdown.

use std::{
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use tokio_util::sync::CancellationToken;

use crate::{
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
    stopping: CancellationToken,
}

impl AppState {
    /// An empty simulator with `faults` in force.
    pub fn new(faults: Faults) -> Self {
        let shared = Shared {
            store: Mutex::new(Store::default()),
            picker: Mutex::new(FaultPicker::new(faults)),
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

    /// Draws the fault, if any, for one `POST /v1/shipments`.
    pub fn draw_fault(&self) -> Option<Fault> {
        self.picker().draw()
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
}
