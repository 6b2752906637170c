//! The rate limits of sign-in link requests, in Redis: fixed windows per address and per client.
//!
//! Each limit is one counter per window (`INCR`, and `EXPIRE` when it is new, in one Lua script
//! so a counter never outlives its window). Keys carry an HMAC of the address or the client's IP
//! with the link secret, never the address itself: Redis holds no e-mail addresses, and its keys
//! cannot be reversed by trying addresses without the secret.

use domain::EmailAddress;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{AppState, client::ClientAddr, error::ApiError, metrics};

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
    hit(state, &client_key, shop.sign_in_per_client, "client").await?;
    let address_key = key(state, "address", &email.as_str().to_lowercase());
    hit(state, &address_key, shop.sign_in_per_address, "address").await
}

/// One request against the counter `key` (of a client or an address: `per`), allowed `max`
/// times per window.
async fn hit(state: &AppState, key: &str, max: u32, per: &'static str) -> Result<(), ApiError> {
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
    metrics::rate_limited("sign_in_email", per);
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
