//! The deployment profile (`APP__PROFILE`) and what `production` refuses at start-up.
//!
//! `local` is for the local stack and the tests (`scripts/services.sh` writes it into `env.sh`,
//! `scripts/start.sh`, `scripts/test.sh` and docker-compose set it); anything else, the default
//! included, is `production`. Under `production` every process checks, before it connects to
//! anything, the settings it uses ([`Settings::check_profile`]) and refuses to start, naming the
//! setting, when
//!
//! - a secret it uses is missing or still one of the documented local values
//!   ([`LOCAL_SECRETS`]: the defaults, docker-compose's and the tests' values),
//! - the database (or, for the web-server, Redis) URL is still the local default,
//! - the web-server's session cookie would not be `Secure` (the shop's public URL is not https;
//!   the links the e-mail worker sends are checked the same way),
//! - a listener of the process is on a public address while it talks to a local Stripe or SQS
//!   endpoint (a fake reachable from outside, or a configuration copied from the local stack),
//! - the web-server has no Stripe publishable key (`APP__STRIPE__PUBLISHABLE_KEY`): its checkout
//!   page could offer only Stripe's test payment methods, which a live account does not know, so
//!   no order could be paid. A `pk_test_` key passes, as an `sk_test_` secret key does for
//!   billing: a staging shop on Stripe's test mode is a production deployment too.
//!
//! The rules read the settings only: no secret value is ever part of a message.

use std::net::{IpAddr, SocketAddr};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::{DatabaseSettings, MIN_LINK_SECRET_LEN, RedisSettings, Settings, SettingsError};

/// Which rules the settings must pass at start-up (`APP__PROFILE`, default `production`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// The local stack and the tests: local defaults are fine.
    Local,
    /// Anything reachable by others: see the module documentation.
    #[default]
    Production,
}

/// A process of the pipeline, for the settings it uses ([`Settings::check_profile`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    /// The gateway: sessions, checkout, webhooks.
    WebServer,
    /// The outbox relay (and the expiry sweeper).
    Relay,
    /// The invoice worker.
    Invoice,
    /// The billing worker (Stripe).
    Billing,
    /// The shipping worker (the partner's API).
    Shipping,
    /// The e-mail worker.
    Email,
}

impl Process {
    /// The name [`crate::MetricsSettings::listen_addr`] knows the process by.
    pub fn metrics_name(self) -> &'static str {
        match self {
            Process::WebServer => "web-server",
            Process::Relay => "relay",
            Process::Invoice => "invoice",
            Process::Billing => "billing",
            Process::Shipping => "shipping",
            Process::Email => "email",
        }
    }
}

/// Secret values that are written down in this project (the settings' defaults, docker-compose,
/// the tests): never accepted under `production`.
pub const LOCAL_SECRETS: [&str; 5] = [
    "sk_test_local",
    "whsec_local",
    "partner_whsec_local",
    "local-compose-link-secret-change-me-0123456789",
    "chargeflow-test-link-secret-0123456789abcdef",
];

/// A `production` refusal: the environment variable and what to do about it.
type Refusal = (&'static str, &'static str);

impl Settings {
    /// Checks the settings `process` uses against its profile: nothing under `local`; under
    /// `production` the rules of this module.
    ///
    /// # Errors
    /// [`SettingsError::Unsafe`] naming the first setting that fails a rule.
    pub fn check_profile(&self, process: Process) -> Result<(), SettingsError> {
        if self.profile == Profile::Local {
            return Ok(());
        }
        match self.first_refusal(process) {
            Some((setting, reason)) => Err(SettingsError::Unsafe { setting, reason }),
            None => Ok(()),
        }
    }

    fn first_refusal(&self, process: Process) -> Option<Refusal> {
        let local = DatabaseSettings::default();
        if self.database.url.expose_secret() == local.url.expose_secret() {
            return Some((
                "APP__DATABASE__URL",
                "is the local default; set the production database's URL (with its password)",
            ));
        }
        let own = match process {
            Process::WebServer => self.web_server_refusal(),
            Process::Billing => secret_refusal(
                "APP__STRIPE__SECRET_KEY",
                &self.stripe.secret_key,
                "set the account's secret API key (from the secret store)",
            ),
            Process::Email => self
                .link_refusal()
                .or_else(|| self.public_url_refusal())
                .or_else(|| self.smtp_refusal()),
            Process::Relay | Process::Invoice | Process::Shipping => None,
        };
        own.or_else(|| self.endpoint_refusal(process))
    }

    fn web_server_refusal(&self) -> Option<Refusal> {
        if self.redis.url.expose_secret() == RedisSettings::default().url.expose_secret() {
            return Some((
                "APP__REDIS__URL",
                "is the local default; set the production Redis URL",
            ));
        }
        secret_refusal(
            "APP__STRIPE__WEBHOOK_SECRET",
            &self.stripe.webhook_secret,
            "set the webhook endpoint's signing secret from the Stripe dashboard; with a known \
             secret anyone can mark an order paid",
        )
        .or_else(|| {
            // The order page's 3-D Secure step reads the PaymentIntent (its client secret, its
            // end) from Stripe.
            secret_refusal(
                "APP__STRIPE__SECRET_KEY",
                &self.stripe.secret_key,
                "set the account's secret API key (from the secret store): the order page's \
                 3-D Secure step reads the payment from Stripe",
            )
        })
        .or_else(|| {
            secret_refusal(
                "APP__SHIPPING__CALLBACK_SECRET",
                &self.shipping.callback_secret,
                "set the secret the shipping partner signs its delivery notices with",
            )
        })
        .or_else(|| self.link_refusal())
        .or_else(|| self.public_url_refusal())
        .or_else(|| self.publishable_key_refusal())
    }

    fn publishable_key_refusal(&self) -> Option<Refusal> {
        self.stripe.publishable_key().is_none().then_some((
            "APP__STRIPE__PUBLISHABLE_KEY",
            "is missing; set the Stripe account's publishable key (pk_live_…): without it the \
             checkout page offers only Stripe's test payment methods and cannot collect a card",
        ))
    }

    fn link_refusal(&self) -> Option<Refusal> {
        let secret = &self.shop.link_secret;
        if secret.expose_secret().len() < MIN_LINK_SECRET_LEN {
            return Some((
                "APP__SHOP__LINK_SECRET",
                "is missing or shorter than 32 bytes; set a random value from the secret store",
            ));
        }
        secret_refusal(
            "APP__SHOP__LINK_SECRET",
            secret,
            "set a random value of at least 32 bytes from the secret store",
        )
    }

    /// The session cookie is `Secure` (and `__Host-`) only for an https shop, and the links in
    /// e-mails start with this address.
    fn public_url_refusal(&self) -> Option<Refusal> {
        (!self.shop.public_url.starts_with("https://")).then_some((
            "APP__SHOP__PUBLIC_URL",
            "must be an https:// address: over plain http the session cookie is not Secure and \
             the links in e-mails travel in clear text",
        ))
    }

    fn smtp_refusal(&self) -> Option<Refusal> {
        let without_password =
            !self.smtp.username.is_empty() && self.smtp.password.expose_secret().is_empty();
        without_password.then_some((
            "APP__SMTP__PASSWORD",
            "is missing while APP__SMTP__USERNAME is set",
        ))
    }

    /// A public listener next to a local Stripe or SQS endpoint.
    fn endpoint_refusal(&self, process: Process) -> Option<Refusal> {
        let public = self
            .listen_addrs(process)
            .iter()
            .any(|addr| is_public(addr));
        if !public {
            return None;
        }
        if is_local_endpoint(&self.sqs.endpoint_url) {
            return Some((
                "APP__SQS__ENDPOINT_URL",
                "points at a local queue service while the process listens on a public address; \
                 leave it empty for AWS",
            ));
        }
        is_local_endpoint(&self.stripe.api_base).then_some((
            "APP__STRIPE__API_BASE",
            "points at a local Stripe while the process listens on a public address; set \
             https://api.stripe.com",
        ))
    }

    fn listen_addrs(&self, process: Process) -> Vec<String> {
        let mut addrs: Vec<String> = self
            .metrics
            .listen_addr(process.metrics_name())
            .into_iter()
            .collect();
        if process == Process::WebServer {
            addrs.push(self.http.addr.clone());
        }
        addrs
    }
}

fn secret_refusal(
    setting: &'static str,
    secret: &SecretString,
    what_to_do: &'static str,
) -> Option<Refusal> {
    let value = secret.expose_secret();
    if value.is_empty() || LOCAL_SECRETS.contains(&value) {
        Some((setting, what_to_do))
    } else {
        None
    }
}

/// Whether a listen address (`ip:port`) is reachable from other machines: anything but loopback.
/// An address that is not `ip:port` (a host name) counts as public.
fn is_public(addr: &str) -> bool {
    addr.parse::<SocketAddr>()
        .map_or(true, |socket| !socket.ip().is_loopback())
}

/// Whether an endpoint URL names this machine (loopback or `localhost`) or the local stack's
/// service name, or is not https; an empty URL (the service's own endpoint) is not local.
fn is_local_endpoint(url: &str) -> bool {
    if url.is_empty() {
        return false;
    }
    let Some(rest) = url.strip_prefix("https://") else {
        return true;
    };
    let host = rest.split(['/', '?']).next().unwrap_or_default();
    let host = host.rsplit_once('@').map_or(host, |(_, host)| host);
    let name = match host.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => host.split(':').next().unwrap_or_default(),
    };
    name.eq_ignore_ascii_case("localhost")
        || name.eq_ignore_ascii_case("localstack")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINK: &str = "a-production-link-secret-of-more-than-32-bytes";

    /// Settings a production web-server starts with: loopback listeners, real-looking secrets.
    fn safe() -> Vec<(&'static str, &'static str)> {
        vec![
            ("APP__PROFILE", "production"),
            (
                "APP__DATABASE__URL",
                "postgres://app:pw@db.internal:5432/shop",
            ),
            ("APP__REDIS__URL", "redis://cache.internal:6379"),
            ("APP__STRIPE__SECRET_KEY", "sk_live_abc"),
            ("APP__STRIPE__WEBHOOK_SECRET", "whsec_abc"),
            ("APP__SHIPPING__CALLBACK_SECRET", "partner_abc"),
            ("APP__SHOP__LINK_SECRET", LINK),
            ("APP__SHOP__PUBLIC_URL", "https://shop.example.com"),
            ("APP__STRIPE__PUBLISHABLE_KEY", "pk_live_abc"),
        ]
    }

    fn with(changes: &[(&'static str, &'static str)]) -> Settings {
        let mut pairs = safe();
        pairs.extend_from_slice(changes);
        Settings::from_sources(&pairs).expect("valid settings")
    }

    fn refused(settings: &Settings, process: Process) -> String {
        match settings.check_profile(process) {
            Err(SettingsError::Unsafe { setting, .. }) => setting.to_owned(),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn production_is_the_default_and_refuses_the_local_defaults() {
        let defaults = Settings::from_sources(&[]).unwrap();
        assert_eq!(defaults.profile, Profile::Production);
        for process in [Process::WebServer, Process::Relay, Process::Billing] {
            assert_eq!(refused(&defaults, process), "APP__DATABASE__URL");
        }
        let local = Settings::from_sources(&[("APP__PROFILE", "local")]).unwrap();
        assert!(local.check_profile(Process::WebServer).is_ok());
    }

    #[test]
    fn safe_settings_pass_for_every_process() {
        let settings = with(&[]);
        for process in [
            Process::WebServer,
            Process::Relay,
            Process::Invoice,
            Process::Billing,
            Process::Shipping,
            Process::Email,
        ] {
            assert!(settings.check_profile(process).is_ok(), "{process:?}");
        }
    }

    #[test]
    fn each_missing_or_documented_secret_is_named() {
        let cases: [(&str, &str, Process); 9] = [
            (
                "APP__STRIPE__WEBHOOK_SECRET",
                "whsec_local",
                Process::WebServer,
            ),
            ("APP__STRIPE__WEBHOOK_SECRET", "", Process::WebServer),
            (
                "APP__SHIPPING__CALLBACK_SECRET",
                "partner_whsec_local",
                Process::WebServer,
            ),
            ("APP__STRIPE__SECRET_KEY", "sk_test_local", Process::Billing),
            (
                "APP__STRIPE__SECRET_KEY",
                "sk_test_local",
                Process::WebServer,
            ),
            ("APP__STRIPE__SECRET_KEY", "", Process::Billing),
            ("APP__SHOP__LINK_SECRET", "short", Process::Email),
            (
                "APP__SHOP__LINK_SECRET",
                "local-compose-link-secret-change-me-0123456789",
                Process::WebServer,
            ),
            (
                "APP__REDIS__URL",
                "redis://127.0.0.1:6379",
                Process::WebServer,
            ),
        ];
        for (setting, value, process) in cases {
            assert_eq!(refused(&with(&[(setting, value)]), process), setting);
        }
    }

    #[test]
    fn an_http_shop_would_send_cookies_that_are_not_secure() {
        let settings = with(&[("APP__SHOP__PUBLIC_URL", "http://shop.example.com")]);
        assert_eq!(
            refused(&settings, Process::WebServer),
            "APP__SHOP__PUBLIC_URL"
        );
        assert_eq!(refused(&settings, Process::Email), "APP__SHOP__PUBLIC_URL");
        assert!(settings.check_profile(Process::Relay).is_ok());
    }

    #[test]
    fn a_production_web_server_needs_a_publishable_key_a_test_mode_one_will_do() {
        let without = with(&[("APP__STRIPE__PUBLISHABLE_KEY", "")]);
        assert_eq!(
            refused(&without, Process::WebServer),
            "APP__STRIPE__PUBLISHABLE_KEY"
        );
        // Only the web-server hands the key to the page; the workers do not need it.
        assert!(without.check_profile(Process::Billing).is_ok());
        assert!(without.check_profile(Process::Email).is_ok());
        let staging = with(&[
            ("APP__STRIPE__PUBLISHABLE_KEY", "pk_test_abc"),
            ("APP__STRIPE__SECRET_KEY", "sk_test_abc"),
        ]);
        assert!(staging.check_profile(Process::WebServer).is_ok());
        let local = Settings::from_sources(&[("APP__PROFILE", "local")]).unwrap();
        assert!(local.check_profile(Process::WebServer).is_ok());
    }

    #[test]
    fn a_public_listener_with_local_endpoints_is_refused_a_loopback_one_is_not() {
        // The defaults point at the local SQS and Stripe; loopback listeners are fine.
        assert!(with(&[]).check_profile(Process::WebServer).is_ok());
        let public = with(&[("APP__HTTP__ADDR", "0.0.0.0:3000")]);
        assert_eq!(
            refused(&public, Process::WebServer),
            "APP__SQS__ENDPOINT_URL"
        );
        let aws_sqs = with(&[
            ("APP__HTTP__ADDR", "0.0.0.0:3000"),
            ("APP__SQS__ENDPOINT_URL", ""),
        ]);
        assert_eq!(
            refused(&aws_sqs, Process::WebServer),
            "APP__STRIPE__API_BASE"
        );
        let real = with(&[
            ("APP__HTTP__ADDR", "0.0.0.0:3000"),
            ("APP__SQS__ENDPOINT_URL", ""),
            ("APP__STRIPE__API_BASE", "https://api.stripe.com"),
        ]);
        assert!(real.check_profile(Process::WebServer).is_ok());
        let public_metrics = with(&[("APP__METRICS__ADDR", "0.0.0.0:9103")]);
        assert_eq!(
            refused(&public_metrics, Process::Billing),
            "APP__SQS__ENDPOINT_URL"
        );
    }

    #[test]
    fn local_endpoints_are_recognised() {
        for url in [
            "http://127.0.0.1:4566",
            "https://localhost:4566",
            "https://[::1]:4566/",
            "http://sqs.us-east-1.amazonaws.com",
            "https://localstack:4566",
            "sqs.example.com",
        ] {
            assert!(is_local_endpoint(url), "{url}");
        }
        for url in [
            "",
            "https://api.stripe.com",
            "https://sqs.eu-west-1.amazonaws.com",
        ] {
            assert!(!is_local_endpoint(url), "{url}");
        }
    }

    #[test]
    fn the_refusal_names_the_setting_and_never_its_value() {
        let settings = with(&[("APP__STRIPE__WEBHOOK_SECRET", "whsec_local")]);
        let message = settings
            .check_profile(Process::WebServer)
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("APP__STRIPE__WEBHOOK_SECRET"),
            "{message}"
        );
        assert!(!message.contains("whsec_local"), "{message}");
    }
}
