//! Anonymous shopper sessions kept in Redis, identified by an HttpOnly, SameSite=Lax cookie.
//!
//! A request without a valid session cookie gets a new session (and a `Set-Cookie`); an unknown
//! or expired id sent by the client is never adopted, so a session id cannot be planted. Only the
//! SHA-256 of the id is stored with orders.
//!
//! The session's life slides: every use renews its Redis TTL, and the cookie's `Max-Age` is sent
//! again when the last one sent is more than [`REFRESH_AFTER_S`] old (the session's Redis value is
//! when that was), so an active shopper's cookie never dies before the session does, without a
//! `Set-Cookie` on every answer. When the shop's public URL is `https` (or
//! `APP__HTTP__SECURE_COOKIES` is set) the cookie is `Secure` and named with the `__Host-` prefix,
//! which browsers accept only from a secure origin, for path `/` and without a `Domain`.
//!
//! A new session is counted against its client's `new_session` rate limit ([`crate::limits`])
//! before it is written: a client without cookies cannot fill Redis with sessions.

use axum::{
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::{AppState, client::ClientAddr, error::ApiError};

/// The cookie's name on a plain-http shop (local development).
pub const COOKIE: &str = "cf_session";
/// The cookie's name when it is `Secure`.
pub const SECURE_COOKIE: &str = "__Host-cf_session";
/// How long an idle session lives, in seconds (refreshed on use).
pub const TTL_S: u64 = 30 * 24 * 3600;
/// How old the last `Set-Cookie` of a session may get before it is sent again, in seconds.
pub const REFRESH_AFTER_S: u64 = 24 * 3600;

/// The session cookie's name and attributes, from the settings.
#[derive(Debug, Clone, Copy)]
struct CookieSpec {
    name: &'static str,
    secure: bool,
}

impl CookieSpec {
    fn of(settings: &settings::Settings) -> Self {
        let secure =
            settings.http.secure_cookies || settings.shop.public_url.starts_with("https://");
        CookieSpec {
            name: if secure { SECURE_COOKIE } else { COOKIE },
            secure,
        }
    }

    fn set_cookie(self, id: &str) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!(
            "{}={id}; Path=/; HttpOnly; SameSite=Lax; Max-Age={TTL_S}{secure}",
            self.name
        )
    }
}

/// What [`resolve`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cookie {
    /// The cookie the client sent is fresh enough.
    Keep,
    /// Send the cookie (again): a new session, or a refresh of the `Max-Age`.
    Send,
}

/// The current request's session.
#[derive(Debug, Clone)]
pub struct Session {
    id: String,
}

impl Session {
    /// The Redis key of this session's cart.
    pub fn cart_key(&self, prefix: &str) -> String {
        format!("{prefix}cart:{}", self.id)
    }

    /// SHA-256 (hex) of the session id: what orders store as their owner.
    pub fn owner(&self) -> String {
        hex::encode(Sha256::digest(self.id.as_bytes()))
    }
}

/// Middleware: loads or creates the session and puts it in the request's extensions.
pub async fn layer(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let spec = CookieSpec::of(&state.settings);
    let presented = cookie_value(request.headers(), spec.name);
    let client = ClientAddr::of(
        request.extensions(),
        request.headers(),
        state.settings.http.trusted_proxies,
    );
    let (session, cookie) = match resolve(&state, presented, client).await {
        Ok(found) => found,
        Err(error) => return error.into_response(),
    };
    request.extensions_mut().insert(session.clone());
    let mut response = next.run(request).await;
    if cookie == Cookie::Send
        && let Ok(value) = HeaderValue::from_str(&spec.set_cookie(&session.id))
    {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// The session the client presented (its TTL renewed), or a new one if `client` may have one;
/// and whether to send the cookie.
async fn resolve(
    state: &AppState,
    presented: Option<String>,
    client: ClientAddr,
) -> Result<(Session, Cookie), ApiError> {
    let mut redis = state.redis.clone();
    let now = chrono::Utc::now().timestamp();
    if let Some(id) = presented.filter(|id| is_well_formed(id)) {
        let key = session_key(&state.key_prefix, &id);
        let alive: Option<String> = redis::cmd("GETEX")
            .arg(&key)
            .arg("EX")
            .arg(TTL_S)
            .query_async(&mut redis)
            .await?;
        if let Some(cookie_sent_at) = alive {
            if !needs_refresh(&cookie_sent_at, now) {
                return Ok((Session { id }, Cookie::Keep));
            }
            store(&mut redis, &key, now).await?;
            return Ok((Session { id }, Cookie::Send));
        }
    }
    state.limits.new_session(client)?;
    let id = new_id();
    store(&mut redis, &session_key(&state.key_prefix, &id), now).await?;
    Ok((Session { id }, Cookie::Send))
}

/// Writes the session with the time its cookie is sent, for [`TTL_S`].
async fn store(
    redis: &mut redis::aio::ConnectionManager,
    key: &str,
    cookie_sent_at: i64,
) -> Result<(), ApiError> {
    redis::cmd("SET")
        .arg(key)
        .arg(cookie_sent_at)
        .arg("EX")
        .arg(TTL_S)
        .query_async::<()>(redis)
        .await?;
    Ok(())
}

/// Whether the cookie last sent at `cookie_sent_at` (unix seconds; sessions written before this
/// was recorded hold `1`) is due to be sent again at `now`.
fn needs_refresh(cookie_sent_at: &str, now: i64) -> bool {
    let sent = cookie_sent_at.parse::<i64>().unwrap_or(0);
    now.saturating_sub(sent) > REFRESH_AFTER_S as i64
}

fn session_key(prefix: &str, id: &str) -> String {
    format!("{prefix}session:{id}")
}

fn new_id() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn is_well_formed(id: &str) -> bool {
    id.len() == 43
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The name of the session cookie with these settings ([`COOKIE`] or [`SECURE_COOKIE`]).
pub fn cookie_name(settings: &settings::Settings) -> &'static str {
    CookieSpec::of(settings).name
}

/// The session id the cookie `cookie_name` of a request presents, if it is well-formed (whether
/// such a session exists is not looked up): what the per-session rate limits key on.
pub fn presented_id(headers: &HeaderMap, cookie_name: &str) -> Option<String> {
    cookie_value(headers, cookie_name).filter(|id| is_well_formed(id))
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(found, _)| *found == name)
        .map(|(_, value)| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_session_ids_are_well_formed_and_distinct() {
        let (a, b) = (new_id(), new_id());
        assert!(is_well_formed(&a) && is_well_formed(&b));
        assert_ne!(a, b);
    }

    #[test]
    fn the_cookie_is_sent_again_once_the_last_one_is_a_day_old() {
        let now = 1_800_000_000;
        assert!(!needs_refresh(&now.to_string(), now));
        assert!(!needs_refresh(&(now - 3600).to_string(), now));
        assert!(needs_refresh(&(now - 24 * 3600 - 1).to_string(), now));
        assert!(needs_refresh("1", now), "sessions from before the refresh");
    }

    #[test]
    fn an_https_shop_gets_a_secure_host_only_cookie() {
        let settings = settings::Settings::from_sources(&[(
            "APP__SHOP__PUBLIC_URL",
            "https://shop.example.com",
        )])
        .unwrap();
        let cookie = CookieSpec::of(&settings).set_cookie("abc");
        assert!(
            cookie.starts_with("__Host-cf_session=abc; Path=/;"),
            "{cookie}"
        );
        assert!(
            cookie.ends_with("; Secure") && !cookie.contains("Domain"),
            "{cookie}"
        );
        let local = settings::Settings::from_sources(&[]).unwrap();
        assert!(
            CookieSpec::of(&local)
                .set_cookie("abc")
                .starts_with("cf_session=abc;")
        );
    }

    #[test]
    fn ids_of_the_wrong_shape_are_ignored() {
        assert!(!is_well_formed("short"));
        assert!(!is_well_formed(&"a".repeat(42)));
        assert!(!is_well_formed(&format!("{}!", "a".repeat(42))));
    }
}
