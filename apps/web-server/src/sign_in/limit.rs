//! The rate limits of sign-in link requests, in Redis: fixed windows per address and per client.
//!
//! Each limit is one counter per window (`INCR`, and `EXPIRE` when it is new, in one Lua script
//! so a counter never outlives its window). Keys carry an HMAC of the address or the client's IP
//! with the link secret, never the address itself: Redis holds no e-mail addresses, and its keys
//! cannot be reversed by trying addresses without the secret.

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{HeaderMap, request::Parts},
};
use domain::EmailAddress;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{AppState, error::ApiError};

/// `INCR`s `KEYS[1]`, starts its window of `ARGV[1]` seconds when new (or when it somehow has no
/// expiry), and returns the count and the seconds left in the window.
const HIT: &str = r"
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('TTL', KEYS[1])
if n == 1 or ttl < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
";

/// The client a request comes from, for its rate limit: the connection's peer address, or the
/// address `http.trusted_proxies` proxies put into `X-Forwarded-For`.
#[derive(Debug, Clone)]
pub struct ClientAddr(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        let proxies = state.settings.http.trusted_proxies;
        Ok(ClientAddr(client_ip(peer, &parts.headers, proxies)))
    }
}

/// The client's address: `peer` without trusted proxies; else the `proxies`-th entry from the
/// end of `X-Forwarded-For` (each proxy appends the address it was reached from), or `peer` when
/// the header has fewer entries than that or the entry is not an IP address.
fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, proxies: usize) -> Option<IpAddr> {
    if proxies == 0 {
        return peer;
    }
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    forwarded
        .len()
        .checked_sub(proxies)
        .and_then(|i| forwarded[i].parse().ok())
        .or(peer)
}

/// Counts one sign-in link request of `client` for `email`.
///
/// # Errors
/// `429 rate_limited` (with `Retry-After`) when the client or the address is over its limit;
/// `503` when Redis fails.
pub async fn check(
    state: &AppState,
    client: &ClientAddr,
    email: &EmailAddress,
) -> Result<(), ApiError> {
    let shop = &state.settings.shop;
    let client_id = client
        .0
        .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    let client_key = key(state, "client", &client_id);
    hit(state, &client_key, shop.sign_in_per_client).await?;
    let address_key = key(state, "address", &email.as_str().to_lowercase());
    hit(state, &address_key, shop.sign_in_per_address).await
}

/// One request against the counter `key`, allowed `max` times per window.
async fn hit(state: &AppState, key: &str, max: u32) -> Result<(), ApiError> {
    let window_s = state.settings.shop.sign_in_window_s;
    let mut redis = state.redis.clone();
    let (count, ttl): (u64, i64) = redis::Script::new(HIT)
        .key(key)
        .arg(window_s)
        .invoke_async(&mut redis)
        .await?;
    if count <= u64::from(max) {
        return Ok(());
    }
    let retry_after_s = u64::try_from(ttl).unwrap_or(window_s).max(1);
    tracing::info!(retry_after_s, "sign-in link request over its rate limit");
    Err(ApiError::TooManyRequests {
        code: "rate_limited",
        message: format!(
            "too many sign-in links were asked for; try again in {} minutes",
            retry_after_s.div_ceil(60)
        ),
        retry_after_s,
    })
}

/// `<prefix>sign_in:<kind>:<hex HMAC-SHA256(link secret, "sign-in-rate:v1:<kind>:<value>")>`.
fn key(state: &AppState, kind: &str, value: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(state.link_key()).expect("HMAC takes any key length");
    mac.update(format!("sign-in-rate:v1:{kind}:{value}").as_bytes());
    let digest = hex::encode(mac.finalize().into_bytes());
    format!("{}sign_in:{kind}:{digest}", state.key_prefix)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(forwarded: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in forwarded {
            headers.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn without_trusted_proxies_the_client_is_the_peer_whatever_the_header_says() {
        let peer = "192.0.2.1".parse().ok();
        assert_eq!(client_ip(peer, &headers(&["203.0.113.9"]), 0), peer);
    }

    #[test]
    fn behind_proxies_the_client_is_the_entry_the_nearest_trusted_proxy_added() {
        let peer = "10.0.0.5".parse().ok();
        let forwarded = headers(&["198.51.100.7, 203.0.113.9", "10.0.0.4"]);
        let client = |n| client_ip(peer, &forwarded, n).map(|ip| ip.to_string());
        assert_eq!(client(1).as_deref(), Some("10.0.0.4"));
        assert_eq!(client(2).as_deref(), Some("203.0.113.9"));
        assert_eq!(client(4).as_deref(), Some("10.0.0.5"), "too few entries");
        let garbage = headers(&["not-an-ip"]);
        assert_eq!(client_ip(peer, &garbage, 1), peer);
    }
}
