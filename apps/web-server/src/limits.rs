//! In-process rate limits on the shop's paths, per client and per session (`governor`: GCRA, a
//! token bucket kept as one timestamp per key), with the quotas of `APP__LIMITS__…`
//! ([`settings::LimitSettings`]).
//!
//! | limit | counts | where it is checked |
//! | --- | --- | --- |
//! | `api` | every shopper API request per client (the backstop) | [`layer`], first |
//! | `cart_write`, `checkout`, `cancel` | those requests per session, then per client | [`layer`], by the matched route |
//! | `sign_in` | sign-in link requests per client (before the Redis limits of the e-mails) | [`layer`], by the matched route |
//! | `new_session` | sessions made for requests without a valid cookie, per client | `session::resolve`, just before it writes one |
//!
//! **Cheap refusals.** [`layer`] runs before the session layer, so a refused request costs no
//! Redis or PostgreSQL call: the per-session limits key on the SHA-256 of the session cookie the
//! request presents, not on a session looked up in Redis. A forged cookie therefore only buys a
//! fresh per-session bucket — and every request still passes the per-client limits, which a
//! client cannot escape (see [`crate::client`]). A request without a cookie has no session yet
//! and is limited per client only. The new-session limit is checked just before a session would
//! be written; a request that presented a well-formed but unknown cookie has by then cost one
//! Redis read (bounded by the `api` limit).
//!
//! A refusal is `429 rate_limited` with `Retry-After` (whole seconds, at least 1: when the
//! limiter will let the next request through) and counts in
//! [`crate::metrics::RATE_LIMITED_TOTAL`].
//!
//! **Bounded memory.** A limiter holds a state (a few dozen bytes) for each client or session
//! seen recently. [`clean_periodically`] runs `retain_recent` every [`CLEAN_EVERY`], dropping
//! every key whose bucket is full again, i.e. one that has sent nothing for `burst × interval`
//! (with the defaults at most 5 minutes); it stops at shutdown. So the keys held are the clients
//! and sessions of the last few minutes. Their number is bounded by what reaches the limiters:
//! one key per client address (IPv6 per /64 network), and per-session keys only for requests the
//! client's `api` limit let through.
//!
//! The limits are per process: with `n` web-servers behind a load balancer a client gets up to
//! `n` times each quota. The sign-in e-mails, which must hold across instances, keep their own
//! limits in Redis ([`crate::sign_in`]).

use std::{hash::Hash, num::NonZeroU32, sync::Arc, time::Duration};

use axum::{
    extract::{MatchedPath, Request, State},
    http::Method,
    middleware::Next,
    response::{IntoResponse, Response},
};
use governor::{DefaultKeyedRateLimiter, Quota, clock::Clock};
use settings::Settings;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::{
    client::{ClientAddr, ClientKey},
    error::ApiError,
    metrics, session,
};

/// How often the limiters forget the clients and sessions whose bucket is full again.
pub const CLEAN_EVERY: Duration = Duration::from_secs(30);

/// A session as the limiters count it: the SHA-256 of the session id its cookie presents.
type SessionKey = [u8; 32];

/// Every in-process limiter of the web-server, and what it needs to know a request's client and
/// session (so that [`layer`] holds this alone, not the whole `AppState`).
pub struct Limits {
    /// `http.trusted_proxies`.
    trusted_proxies: usize,
    /// The session cookie's name.
    cookie_name: &'static str,
    api: Limit<ClientKey>,
    new_session: Limit<ClientKey>,
    sign_in: Limit<ClientKey>,
    cart_write: SessionAndClient,
    checkout: SessionAndClient,
    cancel: SessionAndClient,
}

/// What a request does, for the limits beyond the `api` one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    CartWrite,
    Checkout,
    Cancel,
    SignIn,
}

impl Limits {
    /// The limiters with the quotas of `settings.limits` (validated: every value at least 1).
    pub fn new(settings: &Settings) -> Self {
        let s = &settings.limits;
        let pair = |name, what, session: (u32, u32), client: (u32, u32)| SessionAndClient {
            per_session: Limit::new(name, "session", what, session),
            per_client: Limit::new(name, "client", what, client),
        };
        Limits {
            trusted_proxies: settings.http.trusted_proxies,
            cookie_name: session::cookie_name(settings),
            api: Limit::new(
                "api",
                "client",
                "requests",
                (s.api_per_client_burst, s.api_per_client_per_minute),
            ),
            new_session: Limit::new(
                "new_session",
                "client",
                "new sessions",
                (
                    s.new_session_per_client_burst,
                    s.new_session_per_client_per_minute,
                ),
            ),
            sign_in: Limit::new(
                "sign_in",
                "client",
                "sign-in link requests",
                (s.sign_in_per_client_burst, s.sign_in_per_client_per_minute),
            ),
            cart_write: pair(
                "cart_write",
                "cart changes",
                (
                    s.cart_write_per_session_burst,
                    s.cart_write_per_session_per_minute,
                ),
                (
                    s.cart_write_per_client_burst,
                    s.cart_write_per_client_per_minute,
                ),
            ),
            checkout: pair(
                "checkout",
                "checkouts",
                (
                    s.checkout_per_session_burst,
                    s.checkout_per_session_per_minute,
                ),
                (
                    s.checkout_per_client_burst,
                    s.checkout_per_client_per_minute,
                ),
            ),
            cancel: pair(
                "cancel",
                "cancellations",
                (s.cancel_per_session_burst, s.cancel_per_session_per_minute),
                (s.cancel_per_client_burst, s.cancel_per_client_per_minute),
            ),
        }
    }

    /// Counts a new session for `client`.
    ///
    /// # Errors
    /// `429 rate_limited` when the client has made too many sessions lately.
    pub fn new_session(&self, client: ClientAddr) -> Result<(), ApiError> {
        self.new_session.check(&client.limit_key())
    }

    /// Forgets the clients and sessions whose bucket is full again (see the module doc).
    pub fn clean(&self) {
        self.api.clean();
        self.new_session.clean();
        self.sign_in.clean();
        for pair in [&self.cart_write, &self.checkout, &self.cancel] {
            pair.per_session.clean();
            pair.per_client.clean();
        }
    }

    /// The `api` limit of `client`, then those of `action`; `session` is asked for only when the
    /// action has a per-session limit.
    fn check(
        &self,
        client: &ClientKey,
        action: Option<Action>,
        session: impl FnOnce() -> Option<SessionKey>,
    ) -> Result<(), ApiError> {
        self.api.check(client)?;
        let pair = match action {
            None => return Ok(()),
            Some(Action::SignIn) => return self.sign_in.check(client),
            Some(Action::CartWrite) => &self.cart_write,
            Some(Action::Checkout) => &self.checkout,
            Some(Action::Cancel) => &self.cancel,
        };
        pair.check(client, session().as_ref())
    }
}

/// Middleware on the shopper API, before the session layer: the `api` limit of the client, then
/// the limits of what the matched route does.
pub async fn layer(State(limits): State<Arc<Limits>>, request: Request, next: Next) -> Response {
    let client = ClientAddr::of(
        request.extensions(),
        request.headers(),
        limits.trusted_proxies,
    );
    let action = request
        .extensions()
        .get::<MatchedPath>()
        .and_then(|path| action_of(request.method(), path.as_str()));
    let session = || {
        session::presented_id(request.headers(), limits.cookie_name)
            .map(|id| SessionKey::from(Sha256::digest(id.as_bytes())))
    };
    match limits.check(&client.limit_key(), action, session) {
        Ok(()) => next.run(request).await,
        Err(refused) => refused.into_response(),
    }
}

/// The limited action of a route (its method and path pattern, as in `routes::router`).
fn action_of(method: &Method, path: &str) -> Option<Action> {
    match (method.as_str(), path) {
        ("PUT" | "DELETE", "/api/cart/items/{product_id}") => Some(Action::CartWrite),
        ("POST", "/api/orders") => Some(Action::Checkout),
        ("POST", "/api/orders/{order_id}/cancel") => Some(Action::Cancel),
        ("POST", "/api/sign-in/requests") => Some(Action::SignIn),
        _ => None,
    }
}

/// Runs [`Limits::clean`] every [`CLEAN_EVERY`] until `stop` is cancelled.
pub async fn clean_periodically(limits: Arc<Limits>, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(CLEAN_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => limits.clean(),
        }
    }
}

/// One keyed limiter with its names for the metrics and the message.
struct Limit<K: Hash + Eq + Clone> {
    /// The `limit` label.
    name: &'static str,
    /// The `per` label: `client` or `session`.
    per: &'static str,
    /// What it counts, for the message ("checkouts").
    what: &'static str,
    limiter: DefaultKeyedRateLimiter<K>,
}

impl<K: Hash + Eq + Clone> Limit<K> {
    /// `burst` requests at once, then `per_minute` a minute.
    fn new(
        name: &'static str,
        per: &'static str,
        what: &'static str,
        (burst, per_minute): (u32, u32),
    ) -> Self {
        Limit {
            name,
            per,
            what,
            limiter: DefaultKeyedRateLimiter::keyed(quota(burst, per_minute)),
        }
    }

    fn check(&self, key: &K) -> Result<(), ApiError> {
        let Err(not_until) = self.limiter.check_key(key) else {
            return Ok(());
        };
        let wait = not_until.wait_time_from(self.limiter.clock().now());
        metrics::rate_limited(self.name, self.per);
        Err(self.refusal(retry_after_s(wait)))
    }

    fn refusal(&self, retry_after_s: u64) -> ApiError {
        let from = match self.per {
            "session" => "in this session",
            _ => "from your network",
        };
        ApiError::TooManyRequests {
            code: "rate_limited",
            message: format!(
                "too many {} {from}; try again in {retry_after_s} s",
                self.what
            ),
            retry_after_s,
        }
    }

    fn clean(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
        ::metrics::gauge!(metrics::RATE_LIMIT_KEYS, "limit" => self.name, "per" => self.per)
            .set(self.limiter.len() as f64);
    }
}

/// A limit per session and the same action's limit per client.
struct SessionAndClient {
    per_session: Limit<SessionKey>,
    per_client: Limit<ClientKey>,
}

impl SessionAndClient {
    /// The session's limit first, so that one busy session spends its own budget before the
    /// one its client's other sessions share.
    fn check(&self, client: &ClientKey, session: Option<&SessionKey>) -> Result<(), ApiError> {
        if let Some(session) = session {
            self.per_session.check(session)?;
        }
        self.per_client.check(client)
    }
}

/// `burst` cells, one more every minute / `per_minute` (both at least 1; validated settings
/// are).
fn quota(burst: u32, per_minute: u32) -> Quota {
    let interval = Duration::from_secs(60) / per_minute.max(1);
    Quota::with_period(interval)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
        .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
}

/// A wait as `Retry-After`: whole seconds, rounded up, at least 1.
fn retry_after_s(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        Settings::from_sources(pairs).unwrap()
    }

    fn client(ip: &str) -> ClientKey {
        ClientAddr(ip.parse::<IpAddr>().ok()).limit_key()
    }

    fn code_and_retry(result: Result<(), ApiError>) -> (&'static str, u64) {
        match result {
            Err(ApiError::TooManyRequests {
                code,
                retry_after_s,
                ..
            }) => (code, retry_after_s),
            other => panic!("expected a 429, got {other:?}"),
        }
    }

    #[test]
    fn a_burst_passes_then_the_next_request_is_refused_with_the_wait() {
        let limits = Limits::new(&settings(&[
            ("APP__LIMITS__CHECKOUT_PER_CLIENT_BURST", "3"),
            ("APP__LIMITS__CHECKOUT_PER_CLIENT_PER_MINUTE", "2"),
        ]));
        let me = client("192.0.2.1");
        for _ in 0..3 {
            limits.check(&me, Some(Action::Checkout), || None).unwrap();
        }
        let (code, retry) = code_and_retry(limits.check(&me, Some(Action::Checkout), || None));
        assert_eq!(code, "rate_limited");
        assert!((29..=30).contains(&retry), "one every 30 s: {retry}");
        let other = client("192.0.2.2");
        limits
            .check(&other, Some(Action::Checkout), || None)
            .unwrap();
        limits
            .check(&me, Some(Action::CartWrite), || None)
            .expect("other actions keep their own budget");
    }

    #[test]
    fn a_session_over_its_limit_is_refused_while_its_clients_other_sessions_go_on() {
        let limits = Limits::new(&settings(&[(
            "APP__LIMITS__CART_WRITE_PER_SESSION_BURST",
            "2",
        )]));
        let me = client("192.0.2.1");
        let (a, b) = ([1u8; 32], [2u8; 32]);
        for _ in 0..2 {
            limits
                .check(&me, Some(Action::CartWrite), || Some(a))
                .unwrap();
        }
        assert!(
            limits
                .check(&me, Some(Action::CartWrite), || Some(a))
                .is_err()
        );
        let elsewhere = client("198.51.100.1");
        assert!(
            limits
                .check(&elsewhere, Some(Action::CartWrite), || Some(a))
                .is_err(),
            "another address does not reset a session's budget"
        );
        limits
            .check(&me, Some(Action::CartWrite), || Some(b))
            .unwrap();
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_and_at_least_one() {
        assert_eq!(retry_after_s(Duration::ZERO), 1);
        assert_eq!(retry_after_s(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_s(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_s(Duration::from_secs(30)), 30);
    }

    #[test]
    fn the_limited_routes_are_the_write_paths() {
        let action = |m: Method, p| action_of(&m, p);
        assert_eq!(
            action(Method::PUT, "/api/cart/items/{product_id}"),
            Some(Action::CartWrite)
        );
        assert_eq!(
            action(Method::DELETE, "/api/cart/items/{product_id}"),
            Some(Action::CartWrite)
        );
        assert_eq!(action(Method::POST, "/api/orders"), Some(Action::Checkout));
        assert_eq!(action(Method::GET, "/api/orders"), None);
        assert_eq!(
            action(Method::POST, "/api/orders/{order_id}/cancel"),
            Some(Action::Cancel)
        );
        assert_eq!(
            action(Method::POST, "/api/sign-in/requests"),
            Some(Action::SignIn)
        );
        assert_eq!(action(Method::GET, "/api/products"), None);
    }

    #[test]
    fn the_clean_up_forgets_keys_whose_bucket_is_full_again() {
        let limits = Limits::new(&settings(&[
            ("APP__LIMITS__API_PER_CLIENT_BURST", "1"),
            ("APP__LIMITS__API_PER_CLIENT_PER_MINUTE", "60000000"),
        ]));
        for i in 0..100u8 {
            limits
                .check(&client(&format!("192.0.2.{i}")), None, || None)
                .unwrap();
        }
        assert_eq!(limits.api.limiter.len(), 100);
        // One cell a microsecond: every bucket is full again a microsecond later.
        std::thread::sleep(Duration::from_millis(2));
        limits.clean();
        assert_eq!(limits.api.limiter.len(), 0);
    }

    #[test]
    fn quotas_are_a_burst_and_an_even_rate() {
        let q = quota(30, 60);
        assert_eq!(q.burst_size().get(), 30);
        assert_eq!(q.replenish_interval(), Duration::from_secs(1));
        assert_eq!(
            quota(1, 60_000_000).replenish_interval(),
            Duration::from_micros(1)
        );
    }
}
