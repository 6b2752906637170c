//! Whether a worker's settings can run: every message it handles at once holds one database
//! connection while its handler's transaction is open, so a poller with more messages in flight
//! than its pool has connections would have them wait for each other — past the handler timeout
//! under load, and every wait a retry. Refused at start rather than found in production.

use crate::{Process, Settings, SettingsError};

impl Settings {
    /// Checks that `process`, if it is a worker run as the long-polling consumer (not under
    /// Lambda, which handles one record of a batch at a time), has at least one pool connection
    /// per message in flight: `APP__WORKER__IN_FLIGHT` ≤ `APP__DATABASE__MAX_CONNECTIONS`.
    ///
    /// # Errors
    /// [`SettingsError::Invalid`] naming `worker.in_flight`.
    pub fn check_capacity(
        &self,
        process: Process,
        under_lambda: bool,
    ) -> Result<(), SettingsError> {
        let worker = matches!(
            process,
            Process::Invoice | Process::Billing | Process::Shipping | Process::Email
        );
        let connections = usize::try_from(self.database.max_connections).unwrap_or(usize::MAX);
        if worker && !under_lambda && self.worker.in_flight > connections {
            return Err(SettingsError::Invalid {
                key: "worker.in_flight",
                reason: "must not exceed database.max_connections: each message in flight holds \
                         one connection (raise APP__DATABASE__MAX_CONNECTIONS or lower \
                         APP__WORKER__IN_FLIGHT)",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(in_flight: usize, max_connections: u32) -> Settings {
        let mut settings = Settings::from_sources(&[]).expect("defaults");
        settings.worker.in_flight = in_flight;
        settings.database.max_connections = max_connections;
        settings
    }

    #[test]
    fn a_worker_needs_a_connection_per_message_in_flight() {
        let workers = [
            Process::Invoice,
            Process::Billing,
            Process::Shipping,
            Process::Email,
        ];
        for process in workers {
            assert!(settings(10, 10).check_capacity(process, false).is_ok());
            let refused = settings(11, 10).check_capacity(process, false);
            assert!(
                matches!(
                    refused,
                    Err(SettingsError::Invalid {
                        key: "worker.in_flight",
                        ..
                    })
                ),
                "{process:?}: {refused:?}"
            );
            assert!(
                settings(10, 2).check_capacity(process, true).is_ok(),
                "{process:?} under Lambda handles one record at a time"
            );
        }
        for other in [Process::WebServer, Process::Relay] {
            assert!(settings(50, 2).check_capacity(other, false).is_ok());
        }
        let defaults = Settings::from_sources(&[]).expect("defaults");
        assert!(defaults.check_capacity(Process::Billing, false).is_ok());
    }
}
