#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

use std::time::Duration;

use aws_config::BehaviorVersion;
use settings::{Process, Settings};

/// The environment variable naming the secret (its ARN or name).
pub const SECRETS_ARN_VAR: &str = "APP_SECRETS_ARN";

/// The error type of this library.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// Secrets Manager could not be reached or refused the request.
    #[error("could not read the secret `{secret}` from Secrets Manager")]
    Fetch {
        /// The secret's ARN or name.
        secret: String,
        /// What the SDK said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The secret has no string value (a binary secret).
    #[error("the secret `{0}` has no string value")]
    NotAString(String),
    /// The secret's value is not a JSON object of `APP__…` keys with string, number or boolean
    /// values.
    #[error("the secret's value is not a JSON object of APP__ settings: {0}")]
    Shape(String),
    /// The settings, with the secret laid over them, are invalid.
    #[error(transparent)]
    Settings(#[from] settings::SettingsError),
}

/// Loads the settings; with `APP_SECRETS_ARN` set, reads that secret first and lays its values
/// over the file and the environment.
///
/// # Errors
/// [`SecretsError`] when the secret cannot be read or parsed, or a setting is invalid.
pub async fn load_settings() -> Result<Settings, SecretsError> {
    let secret = std::env::var(SECRETS_ARN_VAR).unwrap_or_default();
    if secret.is_empty() {
        return Ok(Settings::load()?);
    }
    let overrides = fetch(&secret).await?;
    tracing::info!(keys = overrides.len(), "settings read from Secrets Manager");
    Ok(Settings::load_with(&overrides)?)
}

/// Loads the settings like [`load_settings`], then checks the ones `process` uses against the
/// profile ([`Settings::check_profile`]): under `production`, a missing or documented local
/// secret, an http shop or a public listener next to local endpoints is refused; and a worker's
/// messages in flight against its pool ([`Settings::check_capacity`]). Every process of the
/// pipeline starts with this, before it connects to anything.
///
/// # Errors
/// As [`load_settings`], and [`SecretsError::Settings`] with [`settings::SettingsError::Unsafe`]
/// or [`settings::SettingsError::Invalid`] naming the refused setting.
pub async fn load_settings_for(process: Process) -> Result<Settings, SecretsError> {
    let settings = load_settings().await?;
    settings.check_profile(process)?;
    let under_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    settings.check_capacity(process, under_lambda)?;
    Ok(settings)
}

/// Reads the secret `secret` (ARN or name) and returns its `APP__…` pairs.
///
/// # Errors
/// [`SecretsError::Fetch`], [`SecretsError::NotAString`] or [`SecretsError::Shape`].
pub async fn fetch(secret: &str) -> Result<Vec<(String, String)>, SecretsError> {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(10))
                .connect_timeout(Duration::from_secs(2))
                .build(),
        )
        .load()
        .await;
    let client = aws_sdk_secretsmanager::Client::new(&config);
    let out = client
        .get_secret_value()
        .secret_id(secret)
        .send()
        .await
        .map_err(|e| SecretsError::Fetch {
            secret: secret.to_owned(),
            source: Box::new(e),
        })?;
    let value = out
        .secret_string()
        .ok_or_else(|| SecretsError::NotAString(secret.to_owned()))?;
    parse(value)
}

/// Parses a secret's value: a JSON object whose keys all start with `APP__` and whose values are
/// strings, numbers or booleans. Returns the pairs sorted by key.
///
/// # Errors
/// [`SecretsError::Shape`] naming what is wrong (never the values).
pub fn parse(value: &str) -> Result<Vec<(String, String)>, SecretsError> {
    let json: serde_json::Value =
        serde_json::from_str(value).map_err(|_| SecretsError::Shape("not JSON".into()))?;
    let object = json
        .as_object()
        .ok_or_else(|| SecretsError::Shape("not an object".into()))?;
    let mut pairs = Vec::with_capacity(object.len());
    for (key, value) in object {
        if !key.starts_with("APP__") {
            return Err(SecretsError::Shape(format!(
                "key `{key}` does not start with APP__"
            )));
        }
        let value = match value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            _ => {
                return Err(SecretsError::Shape(format!(
                    "the value of `{key}` is not a scalar"
                )));
            }
        };
        pairs.push((key.clone(), value));
    }
    pairs.sort();
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_become_strings_and_keys_are_sorted() {
        let pairs = parse(r#"{"APP__SMTP__STARTTLS": true, "APP__DATABASE__URL": "postgres://x"}"#)
            .unwrap();
        assert_eq!(
            pairs,
            [
                ("APP__DATABASE__URL".to_owned(), "postgres://x".to_owned()),
                ("APP__SMTP__STARTTLS".to_owned(), "true".to_owned()),
            ]
        );
    }

    #[test]
    fn errors_name_the_key_but_never_a_value() {
        let error = parse(r#"{"APP__DATABASE__URL": {"password": "hunter2"}}"#).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("APP__DATABASE__URL"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(parse("[1]").is_err());
        assert!(parse("{not json").is_err());
        assert!(parse(r#"{"PATH": "/bin"}"#).is_err());
    }
}
