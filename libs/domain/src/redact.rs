//! Error texts without the values they quote.
//!
//! serde's messages quote what they found (`invalid type: string "ada@example.com", expected
//! u32`), and a message body or a payload can hold an e-mail address, a name or a street. Such a
//! text is logged and becomes a parked message's `parked_reason`, where personal data must never
//! go. [`SchemaMismatch`] keeps what an operator needs — what was wrong, which field, where —
//! and replaces every quoted value with `…`. It has no `source`: the serde error it was made from
//! would print the value again, so it is dropped on purpose.

use std::fmt;

/// Why a JSON document does not match its schema, with the values it quoted removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaMismatch {
    message: String,
}

impl SchemaMismatch {
    /// The redacted text of `error` (see the module documentation).
    pub fn of(error: &serde_json::Error) -> Self {
        SchemaMismatch {
            message: redact(&error.to_string()),
        }
    }
}

impl fmt::Display for SchemaMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SchemaMismatch {}

impl From<serde_json::Error> for SchemaMismatch {
    fn from(error: serde_json::Error) -> Self {
        SchemaMismatch::of(&error)
    }
}

/// Replaces the contents of every `"…"` and `` `…` `` in `text` with `…`, except a field name
/// (`` field `name` ``: the schema's, not the sender's). Hand-written because no crate redacts
/// serde's message format; it is a few lines over its two quote characters.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(['"', '`']) {
        let quote = rest[start..].chars().next().unwrap_or('"');
        let (before, after) = rest.split_at(start + 1);
        out.push_str(before);
        let Some(end) = after.find(quote) else {
            out.push('…');
            return out;
        };
        let keep = quote == '`' && before[..start].ends_with("field ");
        out.push_str(if keep { &after[..end] } else { "…" });
        out.push(quote);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Payload {
        quantity: u32,
        email: String,
    }

    #[test]
    fn quoted_values_go_and_field_names_stay() {
        let wrong_type =
            serde_json::from_str::<Payload>(r#"{"quantity": "ada@example.com", "email": "x"}"#)
                .unwrap_err();
        let text = SchemaMismatch::of(&wrong_type).to_string();
        assert!(!text.contains("ada@example.com"), "{text}");
        assert!(
            text.starts_with("invalid type: string \"…\", expected u32"),
            "{text}"
        );
        assert!(text.contains("line 1 column"), "{text}");

        let missing = serde_json::from_str::<Payload>(r#"{"quantity": 1}"#).unwrap_err();
        assert!(
            SchemaMismatch::of(&missing)
                .to_string()
                .starts_with("missing field `email`")
        );
    }

    #[test]
    fn every_quote_is_redacted_and_an_unclosed_one_ends_the_text() {
        assert_eq!(
            redact("unknown variant `Grace Hopper`, expected one of `a`, `b`"),
            "unknown variant `…`, expected one of `…`, `…`"
        );
        assert_eq!(redact(r#"bad "12 Analytical Row"#), r#"bad "…"#);
        assert_eq!(redact("unknown field `street`"), "unknown field `street`");
        assert_eq!(redact("no quotes"), "no quotes");
    }
}
