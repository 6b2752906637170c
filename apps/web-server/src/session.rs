//! Anonymous shopper sessions kept in Redis, identified by an HttpOnly, SameSite=Lax cookie.
//!
//! A request without a valid session cookie gets a new session (and a `Set-Cookie`); an unknown
//! or expired id sent by the client is never adopted, so a session id cannot be planted. Only the
//! SHA-256 of the id is stored with orders.

use axum::{
    extract::{Request, State},
    http::{HeaderValue, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::{AppState, error::ApiError};

/// The cookie's name.
pub const COOKIE: &str = "cf_session";
/// How long an idle session lives, in seconds (refreshed on use).
pub const TTL_S: u64 = 30 * 24 * 3600;

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
    let presented = cookie_value(&request);
    let (session, created) = match resolve(&state, presented).await {
        Ok(found) => found,
        Err(error) => return error.into_response(),
    };
    request.extensions_mut().insert(session.clone());
    let mut response = next.run(request).await;
    if created {
        let secure = if state.settings.http.secure_cookies {
            "; Secure"
        } else {
            ""
        };
        let cookie = format!(
            "{COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={TTL_S}{secure}",
            session.id
        );
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

async fn resolve(state: &AppState, presented: Option<String>) -> Result<(Session, bool), ApiError> {
    let mut redis = state.redis.clone();
    if let Some(id) = presented.filter(|id| is_well_formed(id)) {
        let key = session_key(&state.key_prefix, &id);
        let alive: Option<String> = redis::cmd("GETEX")
            .arg(&key)
            .arg("EX")
            .arg(TTL_S)
            .query_async(&mut redis)
            .await?;
        if alive.is_some() {
            return Ok((Session { id }, false));
        }
    }
    let id = new_id();
    redis::cmd("SET")
        .arg(session_key(&state.key_prefix, &id))
        .arg("1")
        .arg("EX")
        .arg(TTL_S)
        .query_async::<()>(&mut redis)
        .await?;
    Ok((Session { id }, true))
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

fn cookie_value(request: &Request) -> Option<String> {
    request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
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
    fn ids_of_the_wrong_shape_are_ignored() {
        assert!(!is_well_formed("short"));
        assert!(!is_well_formed(&"a".repeat(42)));
        assert!(!is_well_formed(&format!("{}!", "a".repeat(42))));
    }
}
