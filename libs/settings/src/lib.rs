#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

/// The error type of this library.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A source could not be read or a value has the wrong type.
    #[error("configuration could not be loaded")]
    Load(#[from] config::ConfigError),
    /// A value is out of its allowed range.
    #[error("invalid setting `{key}`: {reason}")]
    Invalid {
        /// The setting, as `section.key`.
        key: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Every setting of every process; each process reads the sections it needs.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// PostgreSQL.
    #[serde(default)]
    pub database: DatabaseSettings,
    /// Redis (sessions, carts, catalogue cache).
    #[serde(default)]
    pub redis: RedisSettings,
    /// SQS (LocalStack locally).
    #[serde(default)]
    pub sqs: SqsSettings,
    /// The web-server's HTTP listener.
    #[serde(default)]
    pub http: HttpSettings,
    /// The outbox relay.
    #[serde(default)]
    pub relay: RelaySettings,
}

/// PostgreSQL settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DatabaseSettings {
    /// Connection URL (`APP__DATABASE__URL`).
    pub url: SecretString,
    /// Pool size (`APP__DATABASE__MAX_CONNECTIONS`).
    pub max_connections: u32,
    /// How long to wait for a pooled connection, in milliseconds.
    pub acquire_timeout_ms: u64,
}

/// Redis settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RedisSettings {
    /// Connection URL (`APP__REDIS__URL`).
    pub url: SecretString,
    /// Prefix of every key this deployment writes (`APP__REDIS__KEY_PREFIX`).
    pub key_prefix: String,
}

/// SQS settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SqsSettings {
    /// Endpoint override, for LocalStack (`APP__SQS__ENDPOINT_URL`); empty means AWS's own.
    pub endpoint_url: String,
    /// AWS region (`APP__SQS__REGION`).
    pub region: String,
    /// Queue names are `<prefix><consumer>.fifo` (`APP__SQS__QUEUE_PREFIX`).
    pub queue_prefix: String,
}

/// HTTP listener settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct HttpSettings {
    /// Address to listen on (`APP__HTTP__ADDR`).
    pub addr: String,
    /// Folder with the built front end, served at `/` (`APP__HTTP__STATIC_DIR`).
    pub static_dir: String,
    /// Whether the session cookie is marked `Secure` (`APP__HTTP__SECURE_COOKIES`).
    pub secure_cookies: bool,
    /// Seconds the catalogue stays cached in Redis (`APP__HTTP__CATALOGUE_CACHE_S`).
    pub catalogue_cache_s: u64,
}

/// Outbox relay settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RelaySettings {
    /// Rows claimed per transaction (`APP__RELAY__BATCH_SIZE`).
    pub batch_size: i64,
    /// Claim-and-publish loops running at once (`APP__RELAY__CONCURRENCY`).
    pub concurrency: usize,
    /// Poll interval when no notification arrives, in milliseconds.
    pub poll_interval_ms: u64,
    /// Delay after a first failed publish, in milliseconds; doubles per attempt.
    pub backoff_base_ms: u64,
    /// Longest delay between attempts, in milliseconds.
    pub backoff_max_ms: u64,
    /// How long published rows are kept before the purge, in seconds.
    pub retention_s: u64,
    /// How often the purge runs, in seconds.
    pub purge_interval_s: u64,
    /// Timeout of one SQS call, in milliseconds.
    pub sqs_timeout_ms: u64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings {
            url: SecretString::from("postgres://postgres@127.0.0.1:5432/chargeflow"),
            max_connections: 20,
            acquire_timeout_ms: 5_000,
        }
    }
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings {
            url: SecretString::from("redis://127.0.0.1:6379"),
            key_prefix: "cf:".into(),
        }
    }
}

impl Default for SqsSettings {
    fn default() -> Self {
        SqsSettings {
            endpoint_url: "http://127.0.0.1:4566".into(),
            region: "us-east-1".into(),
            queue_prefix: "chargeflow-".into(),
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            addr: "127.0.0.1:3000".into(),
            static_dir: "apps/frontend/dist".into(),
            secure_cookies: false,
            catalogue_cache_s: 30,
        }
    }
}

impl Default for RelaySettings {
    fn default() -> Self {
        RelaySettings {
            batch_size: 100,
            concurrency: 4,
            poll_interval_ms: 500,
            backoff_base_ms: 500,
            backoff_max_ms: 60_000,
            retention_s: 7 * 24 * 3600,
            purge_interval_s: 300,
            sqs_timeout_ms: 10_000,
        }
    }
}

impl Settings {
    /// Loads the settings from the defaults, the optional `APP_CONFIG_FILE` and the environment.
    ///
    /// # Errors
    /// [`SettingsError`] naming the first bad setting.
    pub fn load() -> Result<Self, SettingsError> {
        let mut builder = config::Config::builder();
        if let Ok(file) = std::env::var("APP_CONFIG_FILE") {
            builder = builder.add_source(config::File::with_name(&file));
        }
        let env = config::Environment::with_prefix("APP")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true);
        Self::build(builder.add_source(env))
    }

    /// Loads the settings from the defaults and the given `APP__…` pairs only (tests, tools).
    ///
    /// # Errors
    /// [`SettingsError`] naming the first bad setting.
    pub fn from_sources(pairs: &[(&str, &str)]) -> Result<Self, SettingsError> {
        let map = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let env = config::Environment::with_prefix("APP")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .source(Some(map));
        Self::build(config::Config::builder().add_source(env))
    }

    fn build(
        builder: config::ConfigBuilder<config::builder::DefaultState>,
    ) -> Result<Self, SettingsError> {
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        let invalid = |key, reason| Err(SettingsError::Invalid { key, reason });
        if self.database.max_connections == 0 {
            return invalid("database.max_connections", "must be at least 1");
        }
        if !(1..=1000).contains(&self.relay.batch_size) {
            return invalid("relay.batch_size", "must be between 1 and 1000");
        }
        if self.relay.concurrency == 0 {
            return invalid("relay.concurrency", "must be at least 1");
        }
        if self.relay.backoff_base_ms == 0 || self.relay.backoff_max_ms < self.relay.backoff_base_ms
        {
            return invalid(
                "relay.backoff_max_ms",
                "must be at least backoff_base_ms, which must be positive",
            );
        }
        if self.sqs.region.is_empty() {
            return invalid("sqs.region", "must not be empty");
        }
        Ok(())
    }
}

impl RelaySettings {
    /// [`RelaySettings::poll_interval_ms`] as a duration.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_point_at_the_local_stack() {
        let settings = Settings::from_sources(&[]).unwrap();
        assert_eq!(settings.http.addr, "127.0.0.1:3000");
        assert_eq!(settings.sqs.endpoint_url, "http://127.0.0.1:4566");
        assert_eq!(settings.relay.batch_size, 100);
    }

    #[test]
    fn environment_variables_override_nested_keys() {
        let settings = Settings::from_sources(&[
            ("APP__RELAY__BATCH_SIZE", "10"),
            ("APP__REDIS__KEY_PREFIX", "t1:"),
        ])
        .unwrap();
        assert_eq!(settings.relay.batch_size, 10);
        assert_eq!(settings.redis.key_prefix, "t1:");
    }

    #[test]
    fn an_out_of_range_value_names_its_setting() {
        let err = Settings::from_sources(&[("APP__RELAY__BATCH_SIZE", "0")]).unwrap_err();
        assert!(err.to_string().contains("relay.batch_size"), "{err}");
    }
}
