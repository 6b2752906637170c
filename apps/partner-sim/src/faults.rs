//! The faults the simulator injects on purpose, and the per-request draw that picks one.
//!
//! Each `POST /v1/shipments` (and each `POST /v1/shipments/{id}/cancel`) draws one number `u`
//! from `[0, 1)`: below `error_rate` it is answered `503`; below `error_rate + rate_limit_rate`,
//! `429`; below that plus `hang_rate`, it never gets an answer. The rates are therefore exact,
//! exclusive shares and may add up to 1 at most. A faulted request never creates or cancels a
//! shipment.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::rng::XorShift64Star;

/// How long a hanging request waits before its connection is closed, unless told otherwise.
pub const DEFAULT_HANG_MS: u64 = 30_000;
/// The `Retry-After` of a `429`, in seconds, unless told otherwise.
pub const DEFAULT_RETRY_AFTER_S: u64 = 1;
/// The longest latency or hang accepted (ten minutes).
pub const MAX_DELAY_MS: u64 = 600_000;

/// The faults in force. Set at start-up from flags (or `SIM_…` variables) and replaced as a
/// whole by `PUT /v1/_sim/faults`, where a missing field takes its default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Milliseconds added to every answer of `/v1/shipments`, after the work is done.
    #[arg(long, env = "SIM_LATENCY_MS", default_value_t = 0)]
    pub latency_ms: u64,
    /// Share (0 to 1) of `POST /v1/shipments` (and cancels) answered `503`, doing nothing.
    #[arg(long, env = "SIM_ERROR_RATE", default_value_t = 0.0)]
    pub error_rate: f64,
    /// Share (0 to 1) of `POST /v1/shipments` (and cancels) answered `429` with `Retry-After`.
    #[arg(long, env = "SIM_RATE_LIMIT_RATE", default_value_t = 0.0)]
    pub rate_limit_rate: f64,
    /// The `Retry-After` of a `429`, in seconds.
    #[arg(long, env = "SIM_RETRY_AFTER_S", default_value_t = DEFAULT_RETRY_AFTER_S)]
    pub retry_after_s: u64,
    /// Share (0 to 1) of `POST /v1/shipments` (and cancels) never answered: the connection closes
    /// after `hang_ms`.
    #[arg(long, env = "SIM_HANG_RATE", default_value_t = 0.0)]
    pub hang_rate: f64,
    /// How long a hanging request is held before its connection is closed, in milliseconds.
    #[arg(long, env = "SIM_HANG_MS", default_value_t = DEFAULT_HANG_MS)]
    pub hang_ms: u64,
    /// Seed of the fault draws, to replay a sequence; unpredictable when absent.
    #[arg(long, env = "SIM_SEED")]
    pub seed: Option<u64>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            latency_ms: 0,
            error_rate: 0.0,
            rate_limit_rate: 0.0,
            retry_after_s: DEFAULT_RETRY_AFTER_S,
            hang_rate: 0.0,
            hang_ms: DEFAULT_HANG_MS,
            seed: None,
        }
    }
}

/// Why a set of faults cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultsError {
    /// A rate is not a number from 0 to 1.
    #[error("{field} must be a number from 0 to 1, not {value}")]
    RateOutOfRange {
        /// The rate's name.
        field: &'static str,
        /// What was given.
        value: f64,
    },
    /// The rates add up to more than 1.
    #[error("error_rate + rate_limit_rate + hang_rate must not exceed 1, not {0}")]
    RatesAboveOne(f64),
    /// A delay is over [`MAX_DELAY_MS`].
    #[error("{field} must not exceed {MAX_DELAY_MS} ms")]
    DelayTooLong {
        /// The delay's name.
        field: &'static str,
    },
}

impl FaultsError {
    /// The field at fault, if one is.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            FaultsError::RateOutOfRange { field, .. } | FaultsError::DelayTooLong { field } => {
                Some(field)
            }
            FaultsError::RatesAboveOne(_) => None,
        }
    }
}

impl Faults {
    /// Checks every rate and delay.
    ///
    /// # Errors
    /// The first [`FaultsError`] found.
    pub fn check(&self) -> Result<(), FaultsError> {
        let rates = [
            ("error_rate", self.error_rate),
            ("rate_limit_rate", self.rate_limit_rate),
            ("hang_rate", self.hang_rate),
        ];
        for (field, value) in rates {
            if !(0.0..=1.0).contains(&value) {
                return Err(FaultsError::RateOutOfRange { field, value });
            }
        }
        let sum: f64 = rates.iter().map(|(_, rate)| rate).sum();
        if sum > 1.0 + f64::EPSILON {
            return Err(FaultsError::RatesAboveOne(sum));
        }
        for (field, ms) in [("latency_ms", self.latency_ms), ("hang_ms", self.hang_ms)] {
            if ms > MAX_DELAY_MS {
                return Err(FaultsError::DelayTooLong { field });
            }
        }
        Ok(())
    }

    /// The latency added to every answer.
    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms)
    }
}

/// What one request gets instead of being served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `503 service_unavailable`.
    Unavailable,
    /// `429 rate_limited` with `Retry-After` in seconds.
    RateLimited {
        /// Seconds the client should wait.
        retry_after_s: u64,
    },
    /// No answer; the connection is closed after this long.
    Hang(Duration),
}

/// The faults in force and the generator that draws them.
#[derive(Debug)]
pub struct FaultPicker {
    faults: Faults,
    rng: XorShift64Star,
}

impl FaultPicker {
    /// A picker for `faults`, seeded from `faults.seed` or unpredictably.
    pub fn new(faults: Faults) -> Self {
        let rng = faults
            .seed
            .map_or_else(XorShift64Star::from_entropy, XorShift64Star::seeded);
        FaultPicker { faults, rng }
    }

    /// The faults in force.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Draws the fault, if any, for one `POST /v1/shipments` or cancel.
    pub fn draw(&mut self) -> Option<Fault> {
        let u = self.rng.next_f64();
        let f = &self.faults;
        if u < f.error_rate {
            Some(Fault::Unavailable)
        } else if u < f.error_rate + f.rate_limit_rate {
            Some(Fault::RateLimited {
                retry_after_s: f.retry_after_s,
            })
        } else if u < f.error_rate + f.rate_limit_rate + f.hang_rate {
            Some(Fault::Hang(Duration::from_millis(f.hang_ms)))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faults(error_rate: f64, rate_limit_rate: f64, hang_rate: f64) -> Faults {
        Faults {
            error_rate,
            rate_limit_rate,
            hang_rate,
            seed: Some(1),
            ..Faults::default()
        }
    }

    #[test]
    fn no_fault_is_drawn_when_every_rate_is_zero() {
        let mut picker = FaultPicker::new(faults(0.0, 0.0, 0.0));
        assert!((0..1_000).all(|_| picker.draw().is_none()));
    }

    #[test]
    fn shares_follow_the_rates() {
        let mut picker = FaultPicker::new(faults(0.2, 0.3, 0.1));
        let draws: Vec<_> = (0..10_000).map(|_| picker.draw()).collect();
        let count = |wanted: fn(&Option<Fault>) -> bool| draws.iter().filter(|d| wanted(d)).count();
        assert!((1_800..2_200).contains(&count(|d| *d == Some(Fault::Unavailable))));
        assert!((2_700..3_300).contains(&count(|d| matches!(d, Some(Fault::RateLimited { .. })))));
        assert!((800..1_200).contains(&count(|d| matches!(d, Some(Fault::Hang(_))))));
    }

    #[test]
    fn rates_outside_zero_to_one_or_adding_up_to_more_than_one_are_refused() {
        assert_eq!(
            faults(1.5, 0.0, 0.0).check(),
            Err(FaultsError::RateOutOfRange {
                field: "error_rate",
                value: 1.5
            })
        );
        assert!(faults(0.0, f64::NAN, 0.0).check().is_err());
        assert!(matches!(
            faults(0.6, 0.5, 0.0).check(),
            Err(FaultsError::RatesAboveOne(_))
        ));
        assert_eq!(faults(0.5, 0.25, 0.25).check(), Ok(()));
    }
}
