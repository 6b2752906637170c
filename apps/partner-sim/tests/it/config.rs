use std::time::Duration;

use clap::Parser;
use partner_sim::{Config, ConfigError, Faults};

fn parse(args: &[&str]) -> Config {
    let argv = std::iter::once("partner-sim").chain(args.iter().copied());
    Config::try_parse_from(argv).expect("flags parse")
}

#[test]
fn by_default_it_listens_on_loopback_port_8430_without_faults() {
    let config = parse(&[]);

    assert_eq!(config.listen_addr().unwrap().to_string(), "127.0.0.1:8430");
    assert_eq!(config.faults, Faults::default());
}

#[test]
fn a_non_loopback_address_is_refused_without_allow_any_host() {
    let refused = parse(&["--addr", "0.0.0.0:8430"]).listen_addr();
    assert!(
        matches!(refused, Err(ConfigError::NotLoopback(_))),
        "{refused:?}"
    );

    let allowed = parse(&["--addr", "0.0.0.0:8430", "--allow-any-host"]).listen_addr();
    assert_eq!(allowed.unwrap().to_string(), "0.0.0.0:8430");
}

#[test]
fn faults_can_be_set_from_flags_and_bad_ones_are_refused() {
    let config = parse(&[
        "--latency-ms",
        "20",
        "--rate-limit-rate",
        "0.25",
        "--retry-after-s",
        "3",
        "--seed",
        "9",
    ]);

    assert_eq!(config.faults.latency_ms, 20);
    assert_eq!(config.faults.rate_limit_rate, 0.25);
    assert_eq!(config.faults.retry_after_s, 3);
    assert_eq!(config.faults.seed, Some(9));
    let bad = parse(&["--error-rate", "2"]).listen_addr();
    assert!(matches!(bad, Err(ConfigError::Faults(_))), "{bad:?}");
}

#[test]
fn a_callback_url_without_a_secret_refuses_to_start() {
    let refused = parse(&["--callback-url", "http://127.0.0.1:9000/hooks"]).delivery();
    assert!(
        matches!(refused, Err(ConfigError::CallbackSecretMissing)),
        "{refused:?}"
    );

    let empty = parse(&[
        "--callback-url",
        "http://127.0.0.1:9000/hooks",
        "--callback-secret",
        "",
    ]);
    assert!(matches!(
        empty.delivery(),
        Err(ConfigError::CallbackSecretMissing)
    ));
    let ftp = parse(&[
        "--callback-url",
        "ftp://127.0.0.1/hooks",
        "--callback-secret",
        "s",
    ]);
    assert!(matches!(ftp.delivery(), Err(ConfigError::Callback(_))));
}

#[test]
fn by_default_shipments_are_delivered_after_ten_seconds_without_callbacks() {
    let delivery = parse(&[]).delivery().unwrap();

    assert!(delivery.callback.is_none());
    assert_eq!(delivery.deliver_after, Duration::from_secs(10));
}

#[test]
fn callback_flags_give_the_callback_and_the_delay() {
    let config = parse(&[
        "--callback-url",
        "http://127.0.0.1:9000/hooks",
        "--callback-secret",
        "whsec_1",
        "--deliver-after-ms",
        "250",
    ]);

    let delivery = config.delivery().unwrap();

    let callback = delivery.callback.expect("a callback");
    assert_eq!(callback.url().as_str(), "http://127.0.0.1:9000/hooks");
    assert_eq!(delivery.deliver_after, Duration::from_millis(250));
    assert!(
        !format!("{config:?}").contains("whsec_1"),
        "the secret stays out of Debug"
    );
}
