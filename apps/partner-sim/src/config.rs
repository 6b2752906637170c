//! Command-line flags (each also an `SIM_…` environment variable): where to listen, which
//! faults are in force at start-up, and when and where deliveries are notified.

use std::{net::SocketAddr, time::Duration};

use clap::Parser;
use reqwest::Url;

use crate::{
    callback::{Callback, CallbackError, Secret},
    delivery::{DEFAULT_DELIVER_AFTER_MS, Delivery},
    faults::{Faults, FaultsError},
};

/// Where the simulator listens unless told otherwise.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8430";

/// The simulator's start-up configuration.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "partner-sim",
    version,
    about = "A simulator of the shipping partner's HTTP API (not the partner itself)"
)]
pub struct Config {
    /// Address to listen on, as IP:port.
    #[arg(long, env = "SIM_ADDR", default_value = DEFAULT_ADDR)]
    pub addr: SocketAddr,
    /// Allow a non-loopback `--addr` (inside a container, for instance).
    #[arg(long, env = "SIM_ALLOW_ANY_HOST")]
    pub allow_any_host: bool,
    /// Faults in force from the start; `PUT /v1/_sim/faults` replaces them.
    #[command(flatten)]
    pub faults: Faults,
    /// URL that delivery events are posted to; none are sent when absent.
    #[arg(long, env = "SIM_CALLBACK_URL")]
    pub callback_url: Option<Url>,
    /// Key of the callbacks' HMAC-SHA256 signature; required with `--callback-url`.
    #[arg(long, env = "SIM_CALLBACK_SECRET", hide_env_values = true)]
    pub callback_secret: Option<Secret>,
    /// How long after booking a shipment is delivered, in milliseconds;
    /// `PUT /v1/_sim/delivery` changes it.
    #[arg(long, env = "SIM_DELIVER_AFTER_MS", default_value_t = DEFAULT_DELIVER_AFTER_MS)]
    pub deliver_after_ms: u64,
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--addr` is not a loopback address and `--allow-any-host` is not set.
    #[error("refusing to listen on non-loopback address {0} without --allow-any-host")]
    NotLoopback(SocketAddr),
    /// A fault flag is out of range.
    #[error("invalid fault flags")]
    Faults(#[from] FaultsError),
    /// `--callback-url` is set without a (non-empty) `--callback-secret`.
    #[error("--callback-url needs --callback-secret (SIM_CALLBACK_SECRET) to sign the callbacks")]
    CallbackSecretMissing,
    /// The callback flags cannot be used.
    #[error("invalid callback flags")]
    Callback(#[from] CallbackError),
}

impl Config {
    /// The address to bind, once the flags are checked.
    ///
    /// # Errors
    /// [`ConfigError::NotLoopback`] for a non-loopback address without `--allow-any-host`;
    /// [`ConfigError::Faults`] when a fault flag is out of range.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.faults.check()?;
        if !self.addr.ip().is_loopback() && !self.allow_any_host {
            return Err(ConfigError::NotLoopback(self.addr));
        }
        Ok(self.addr)
    }

    /// The delivery settings, once the callback flags are checked.
    ///
    /// # Errors
    /// [`ConfigError::CallbackSecretMissing`] for a callback URL without a secret;
    /// [`ConfigError::Callback`] for a callback URL that is not `http(s)`.
    pub fn delivery(&self) -> Result<Delivery, ConfigError> {
        let deliver_after = Duration::from_millis(self.deliver_after_ms);
        let callback = match (&self.callback_url, &self.callback_secret) {
            (None, _) => None,
            (Some(_), None) => return Err(ConfigError::CallbackSecretMissing),
            (Some(_), Some(secret)) if secret.is_empty() => {
                return Err(ConfigError::CallbackSecretMissing);
            }
            (Some(url), Some(secret)) => Some(Callback::new(url.clone(), secret.clone())?),
        };
        Ok(Delivery {
            callback,
            deliver_after,
        })
    }
}
