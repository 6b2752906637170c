//! Signed links a shopper can open on any device: the order link in every e-mail, and the
//! one-time sign-in link of "find my orders".
//!
//! Both carry an HMAC-SHA256 made with the shop's link secret (`APP__SHOP__LINK_SECRET`, at
//! least 32 random bytes, checked by the settings), so nobody without the secret can make or
//! alter one:
//!
//! - **Order link token** (`?t=` on `/orders/{id}`): `"<expires_unix>.<mac>"`, the MAC over
//!   `order-link:v1:<order_id>:<expires_unix>`. It grants reading that one order (page, timeline,
//!   invoice) and cancelling it, until it expires. The order id is in the MAC, not in the token,
//!   so a token never opens another order.
//! - **Sign-in token** (`/sign-in?token=`): `"<request_id>.<mac>"`, the MAC over
//!   `sign-in:v1:<request_id>`. It names a stored sign-in request; expiry and single use are the
//!   request row's business, so the token itself never needs storing.
//!
//! The MAC is unpadded base64url. Checking decodes it strictly (non-canonical text is refused)
//! and compares in constant time; any malformed token is simply not valid. The text before the
//! dot must be in its canonical form too, so no two different strings are valid for the same
//! link. Both functions are pure: the caller passes the time.
//!
//! ```
//! use chrono::{Duration, Utc};
//! use domain::links;
//!
//! let secret = b"a test secret that is at least 32 bytes long";
//! let order_id = uuid::Uuid::new_v4();
//! let now = Utc::now();
//! let token = links::sign(secret, order_id, now + Duration::days(90));
//! assert!(links::verify(secret, order_id, &token, now));
//! assert!(!links::verify(secret, uuid::Uuid::new_v4(), &token, now));
//! assert!(!links::verify(secret, order_id, &token, now + Duration::days(91)));
//! ```

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

/// The token of a link to order `order_id` that works until `expires_at` (to the second).
pub fn sign(secret: &[u8], order_id: Uuid, expires_at: DateTime<Utc>) -> String {
    let expires = expires_at.timestamp();
    let tag = mac(secret, &order_message(order_id, expires)).finalize();
    format!("{expires}.{}", URL_SAFE_NO_PAD.encode(tag.into_bytes()))
}

/// Whether `token` is a link to order `order_id`, made with `secret`, that has not expired at
/// `now`. Malformed, altered, forged, expired and other orders' tokens are all just `false`.
pub fn verify(secret: &[u8], order_id: Uuid, token: &str, now: DateTime<Utc>) -> bool {
    let Some((expires_text, tag)) = token.split_once('.') else {
        return false;
    };
    let Ok(expires) = expires_text.parse::<i64>() else {
        return false;
    };
    if expires.to_string() != expires_text || expires <= now.timestamp() {
        return false;
    }
    matches(secret, &order_message(order_id, expires), tag)
}

/// The token of the sign-in link for stored sign-in request `request_id`. The same request
/// always gets the same token, so a re-sent e-mail is identical.
pub fn sign_in_token(secret: &[u8], request_id: Uuid) -> String {
    let tag = mac(secret, &sign_in_message(request_id)).finalize();
    format!(
        "{}.{}",
        request_id.hyphenated(),
        URL_SAFE_NO_PAD.encode(tag.into_bytes())
    )
}

/// The sign-in request a sign-in `token` names, if the token was made with `secret`. Whether
/// the request is still unused and unexpired is for its stored row to say.
pub fn verify_sign_in_token(secret: &[u8], token: &str) -> Option<Uuid> {
    let (id_text, tag) = token.split_once('.')?;
    let request_id = Uuid::try_parse(id_text).ok()?;
    let canonical = request_id.hyphenated().to_string() == id_text;
    (canonical && matches(secret, &sign_in_message(request_id), tag)).then_some(request_id)
}

fn order_message(order_id: Uuid, expires: i64) -> String {
    format!("order-link:v1:{}:{expires}", order_id.hyphenated())
}

fn sign_in_message(request_id: Uuid) -> String {
    format!("sign-in:v1:{}", request_id.hyphenated())
}

fn mac(secret: &[u8], message: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(message.as_bytes());
    mac
}

/// Whether `tag` (unpadded base64url) is the MAC of `message`, compared in constant time.
fn matches(secret: &[u8], message: &str, tag: &str) -> bool {
    let Ok(bytes) = URL_SAFE_NO_PAD.decode(tag) else {
        return false;
    };
    mac(secret, message).verify_slice(&bytes).is_ok()
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn at(unix: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(unix, 0).unwrap()
    }

    /// Every string that differs from `token` in exactly one character (from a set of likely
    /// replacements), plus the token with a character added or removed at each end.
    fn variants(token: &str) -> Vec<String> {
        let alphabet = "0123456789abcdefABCDEFxyzXYZ-_.+=/ ";
        let chars: Vec<char> = token.chars().collect();
        let mut out = Vec::new();
        for i in 0..chars.len() {
            for replacement in alphabet.chars().filter(|c| *c != chars[i]) {
                let mut changed = chars.clone();
                changed[i] = replacement;
                out.push(changed.into_iter().collect());
            }
        }
        out.extend([
            format!("{token}A"),
            format!("0{token}"),
            format!("+{token}"),
            token[1..].to_owned(),
            token[..token.len() - 1].to_owned(),
        ]);
        out
    }

    #[test]
    fn an_order_link_opens_its_order_until_it_expires() {
        let order_id = Uuid::new_v4();
        let token = sign(SECRET, order_id, at(2_000_000_000));
        assert!(token.starts_with("2000000000."), "{token}");
        assert!(verify(SECRET, order_id, &token, at(1_999_999_999)));
        assert!(!verify(SECRET, order_id, &token, at(2_000_000_000)));
        assert!(!verify(SECRET, order_id, &token, at(2_000_000_001)));
    }

    #[test]
    fn an_order_link_never_opens_another_order_nor_works_with_another_secret() {
        let (order_id, other) = (Uuid::new_v4(), Uuid::new_v4());
        let now = Utc::now();
        let token = sign(SECRET, order_id, now + Duration::days(90));
        assert!(!verify(SECRET, other, &token, now));
        assert!(!verify(
            b"another secret of thirty-two bytes",
            order_id,
            &token,
            now
        ));
    }

    #[test]
    fn an_order_link_with_any_one_character_changed_is_refused() {
        let order_id = Uuid::new_v4();
        let now = at(1_800_000_000);
        let token = sign(SECRET, order_id, at(1_900_000_000));
        for altered in variants(&token) {
            assert!(
                !verify(SECRET, order_id, &altered, now),
                "{altered} was accepted"
            );
        }
    }

    #[test]
    fn malformed_order_link_tokens_are_refused() {
        let order_id = Uuid::new_v4();
        let now = at(1_800_000_000);
        for token in [
            "",
            ".",
            "1900000000",
            "1900000000.",
            ".abc",
            "x.abc",
            "1900000000.!!!!",
            "-1.abc",
        ] {
            assert!(!verify(SECRET, order_id, token, now), "{token:?}");
        }
    }

    #[test]
    fn a_sign_in_token_names_its_request_and_is_the_same_every_time() {
        let request_id = Uuid::new_v4();
        let token = sign_in_token(SECRET, request_id);
        assert_eq!(token, sign_in_token(SECRET, request_id));
        assert!(token.starts_with(&format!("{request_id}.")));
        assert_eq!(verify_sign_in_token(SECRET, &token), Some(request_id));
        assert_eq!(verify_sign_in_token(b"not the shop's secret", &token), None);
    }

    #[test]
    fn a_sign_in_token_with_any_one_character_changed_is_refused() {
        let token = sign_in_token(SECRET, Uuid::new_v4());
        for altered in variants(&token) {
            assert_eq!(
                verify_sign_in_token(SECRET, &altered),
                None,
                "{altered} was accepted"
            );
        }
        let upper = token.to_uppercase();
        assert_eq!(verify_sign_in_token(SECRET, &upper), None);
    }

    #[test]
    fn the_two_kinds_of_token_are_not_interchangeable() {
        let id = Uuid::new_v4();
        let sign_in = sign_in_token(SECRET, id);
        assert!(!verify(SECRET, id, &sign_in, at(0)));
        let order_link = sign(SECRET, id, at(2_000_000_000));
        assert_eq!(verify_sign_in_token(SECRET, &order_link), None);
    }
}
