//! The Stripe publishable key (`APP__STRIPE__PUBLISHABLE_KEY`) and the mode of the keys.
//!
//! The checkout page collects cards with Stripe's Payment Element when the web-server has a
//! publishable key to give it; without one (the local stack) it offers Stripe's test payment
//! methods. A Stripe account has two modes with separate keys, objects and ids: a PaymentMethod
//! made with a `pk_live_` key cannot be charged with an `sk_test_` key and the other way round,
//! and each such order would fail only at billing, after its stock was held. So the two keys
//! must be of one mode, checked at start-up by every process, before anything is connected.
//!
//! The secret key is compared only when it is set: its built-in default (`sk_test_local`, the
//! local fake's) stands for "not configured" here. Under the production profile the web-server
//! (which reads PaymentIntents for the order page's 3-D Secure step) and billing must have a
//! real one anyway (`profile.rs`), so the default only ever meets a publishable key in local
//! use.

use secrecy::ExposeSecret;

use crate::{SettingsError, StripeSettings};

/// The secret key the settings default to (the local fake Stripe accepts any `sk_test_` key).
const DEFAULT_SECRET_KEY: &str = "sk_test_local";

/// Longest accepted publishable key (Stripe's are about 110 characters).
const MAX_KEY_LEN: usize = 255;

const KEY: &str = "stripe.publishable_key";

/// Which of a Stripe account's two modes a key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StripeMode {
    /// Test mode (`pk_test_…`, `sk_test_…`, `rk_test_…`): no money moves; Stripe's test
    /// PaymentMethod ids such as `pm_card_visa` exist.
    Test,
    /// Live mode (`pk_live_…`, `sk_live_…`, `rk_live_…`): real cards, real money.
    Live,
}

impl StripeMode {
    /// The mode of a key with one of `kinds` as its type prefix (`pk`, `sk`, `rk`), if any.
    fn of(key: &str, kinds: &[&str]) -> Option<StripeMode> {
        let (kind, rest) = key.split_once('_')?;
        if !kinds.contains(&kind) {
            return None;
        }
        if rest.starts_with("test_") {
            Some(StripeMode::Test)
        } else if rest.starts_with("live_") {
            Some(StripeMode::Live)
        } else {
            None
        }
    }
}

impl StripeSettings {
    /// The publishable key the checkout page is given, if one is configured (an empty value
    /// counts as none).
    pub fn publishable_key(&self) -> Option<&str> {
        self.publishable_key
            .as_deref()
            .filter(|key| !key.is_empty())
    }

    /// The mode of the configured publishable key; `None` without one (the local test methods).
    pub fn publishable_mode(&self) -> Option<StripeMode> {
        self.publishable_key()
            .and_then(|key| StripeMode::of(key, &["pk"]))
    }

    /// Checks the publishable key's form and that it is of the secret key's mode.
    ///
    /// # Errors
    /// [`SettingsError::Invalid`] naming `stripe.publishable_key` when it is a secret or
    /// restricted key, is not `pk_test_…`/`pk_live_…` with letters, digits and underscores, or
    /// is of the other mode than a configured secret key.
    pub(crate) fn validate(&self) -> Result<(), SettingsError> {
        let Some(key) = self.publishable_key() else {
            return Ok(());
        };
        let invalid = |reason| Err(SettingsError::Invalid { key: KEY, reason });
        if StripeMode::of(key, &["sk", "rk"]).is_some() {
            return invalid(
                "is a secret (or restricted) key, which must never reach a browser; set the \
                 account's publishable key (pk_test_… or pk_live_…) and rotate the secret key",
            );
        }
        let well_formed =
            key.len() <= MAX_KEY_LEN && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        let Some(mode) = self.publishable_mode().filter(|_| well_formed) else {
            return invalid("must be a Stripe publishable key: pk_test_… or pk_live_…");
        };
        match self.secret_mode() {
            Some(secret) if secret != mode => invalid(match mode {
                StripeMode::Live => {
                    "is a live key but APP__STRIPE__SECRET_KEY is a test key: both keys must \
                     come from the same mode of the Stripe account"
                }
                StripeMode::Test => {
                    "is a test key but APP__STRIPE__SECRET_KEY is a live key: both keys must \
                     come from the same mode of the Stripe account"
                }
            }),
            _ => Ok(()),
        }
    }

    /// The secret key's mode, when it is set (not the built-in default) and recognisable.
    fn secret_mode(&self) -> Option<StripeMode> {
        let secret = self.secret_key.expose_secret();
        (secret != DEFAULT_SECRET_KEY)
            .then(|| StripeMode::of(secret, &["sk", "rk"]))
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use crate::{Settings, SettingsError, StripeMode};

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let mut all = vec![("APP__PROFILE", "local")];
        all.extend_from_slice(pairs);
        Settings::from_sources(&all)
    }

    fn refusal(pairs: &[(&str, &str)]) -> String {
        match load(pairs) {
            Err(error @ SettingsError::Invalid { key, .. }) => {
                assert_eq!(key, "stripe.publishable_key");
                error.to_string()
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn without_a_publishable_key_the_page_gets_none() {
        for pairs in [vec![], vec![("APP__STRIPE__PUBLISHABLE_KEY", "")]] {
            let settings = load(&pairs).unwrap();
            assert_eq!(settings.stripe.publishable_key(), None);
            assert_eq!(settings.stripe.publishable_mode(), None);
        }
    }

    #[test]
    fn test_and_live_publishable_keys_are_accepted_with_a_secret_key_of_their_mode() {
        let test = load(&[("APP__STRIPE__PUBLISHABLE_KEY", "pk_test_51Abc")]).unwrap();
        assert_eq!(test.stripe.publishable_key(), Some("pk_test_51Abc"));
        assert_eq!(test.stripe.publishable_mode(), Some(StripeMode::Test));
        let live = load(&[
            ("APP__STRIPE__PUBLISHABLE_KEY", "pk_live_51Abc"),
            ("APP__STRIPE__SECRET_KEY", "rk_live_51Xyz"),
        ])
        .unwrap();
        assert_eq!(live.stripe.publishable_mode(), Some(StripeMode::Live));
    }

    #[test]
    fn a_secret_key_is_never_accepted_as_the_publishable_key() {
        for secret in ["sk_live_51Abc", "sk_test_51Abc", "rk_live_51Abc"] {
            let message = refusal(&[("APP__STRIPE__PUBLISHABLE_KEY", secret)]);
            assert!(message.contains("secret"), "{message}");
            assert!(
                !message.contains(secret),
                "the key is not repeated: {message}"
            );
        }
    }

    #[test]
    fn anything_but_a_pk_test_or_pk_live_key_is_refused() {
        let long = format!("pk_test_{}", "a".repeat(250));
        for bad in [
            "pk_51Abc",
            "pk_prod_51Abc",
            "whsec_abc",
            "pk_test_a b",
            "pk_live_ä",
            &long,
        ] {
            let message = refusal(&[("APP__STRIPE__PUBLISHABLE_KEY", bad)]);
            assert!(
                message.contains("pk_test_… or pk_live_…"),
                "{bad}: {message}"
            );
        }
    }

    #[test]
    fn keys_of_different_modes_are_refused_naming_the_publishable_key() {
        let live_with_test = refusal(&[
            ("APP__STRIPE__PUBLISHABLE_KEY", "pk_live_51Abc"),
            ("APP__STRIPE__SECRET_KEY", "sk_test_51Xyz"),
        ]);
        assert!(live_with_test.contains("is a live key"), "{live_with_test}");
        let test_with_live = refusal(&[
            ("APP__STRIPE__PUBLISHABLE_KEY", "pk_test_51Abc"),
            ("APP__STRIPE__SECRET_KEY", "sk_live_51Xyz"),
        ]);
        assert!(test_with_live.contains("is a test key"), "{test_with_live}");
    }

    #[test]
    fn the_default_secret_key_counts_as_not_configured() {
        // The mode check leaves the default secret key alone (the production profile refuses it).
        let settings = load(&[("APP__STRIPE__PUBLISHABLE_KEY", "pk_live_51Abc")]).unwrap();
        assert_eq!(settings.stripe.publishable_mode(), Some(StripeMode::Live));
    }
}
