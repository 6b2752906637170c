//! A **simulator** of the shipping partner's HTTP API — not the partner itself.
//!
//! It speaks the partner API documented in this app's `README.md` (create a shipment under an
//! `Idempotency-Key`, fetch it) so that the shipping-service can be run and tested on one
//! machine, and it misbehaves on request: added latency, `503`s, `429` with `Retry-After`, and
//! requests that never get an answer ([`Faults`]). Booked shipments are delivered after a delay
//! (or cancelled first), and each delivery is notified to a callback URL with a signed, retried
//! webhook ([`Delivery`]). Simulator-only endpoints under `/v1/_sim/` change the faults and the
//! delivery delay, deliver a shipment on demand and count what the partner was asked to do.
//!
//! Everything lives in memory: restarting the process forgets every shipment, key and counter.
//!
//! [`Application::new`] wraps a bound listener (port 0 in tests); `main.rs` only parses the
//! [`Config`], sets up telemetry and runs the application until a shutdown signal.

mod callback;
mod config;
mod delivery;
mod error;
mod faults;
mod json;
mod rng;
mod routes;
mod shipment;
mod state;
mod store;

use std::net::SocketAddr;

use tokio::net::TcpListener;

pub use callback::{Callback, CallbackError, SIGNATURE_HEADER, Secret};
pub use config::{Config, ConfigError, DEFAULT_ADDR};
pub use delivery::{DEFAULT_DELIVER_AFTER_MS, Delivery};
pub use error::ApiError;
pub use faults::{Faults, FaultsError};

use state::AppState;

/// A bound, not yet serving, partner simulator.
pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    /// Wraps `listener`, starting with `faults` in force; shipments are delivered after
    /// [`DEFAULT_DELIVER_AFTER_MS`], with no callbacks.
    ///
    /// # Errors
    /// [`FaultsError`] when `faults` are out of range.
    pub fn new(listener: TcpListener, faults: Faults) -> Result<Self, FaultsError> {
        Self::with_delivery(listener, faults, Delivery::default())
    }

    /// Wraps `listener`, starting with `faults` in force and delivering as `delivery` says.
    ///
    /// # Errors
    /// [`FaultsError`] when `faults` are out of range.
    pub fn with_delivery(
        listener: TcpListener,
        faults: Faults,
        delivery: Delivery,
    ) -> Result<Self, FaultsError> {
        faults.check()?;
        Ok(Application {
            listener,
            state: AppState::new(faults, delivery),
        })
    }

    /// The address actually bound.
    ///
    /// # Errors
    /// When the socket has no local address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves. Requests that are hanging or delayed on purpose are cut
    /// short then; the others finish first. Pending deliveries and callbacks are dropped.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let stopping = self.state.stopping();
        let signal = async move {
            shutdown.await;
            stopping.cancel();
        };
        axum::serve(self.listener, routes::router(self.state))
            .with_graceful_shutdown(signal)
            .await
    }

    /// Starts a simulator on a free loopback port in the background, serving until `shutdown`
    /// is cancelled (tests and benchmarks); returns its base URL.
    ///
    /// # Errors
    /// When no port can be bound or `faults` are out of range.
    pub async fn spawn_on_loopback(
        faults: Faults,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let app = Application::new(listener, faults)?;
        let address = format!("http://{}", app.local_addr()?);
        tokio::spawn(app.run(async move { shutdown.cancelled().await }));
        Ok(address)
    }
}
