//! Command-line flags (each also an `SIM_…` environment variable): where to listen and which
//! faults are in force at start-up.

use std::net::SocketAddr;

use clap::Parser;

use crate::faults::{Faults, FaultsError};

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
}
