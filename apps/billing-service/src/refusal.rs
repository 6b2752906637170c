//! Stripe's refusals of a charge, sorted and put into words for the shopper.
//!
//! A 4xx answer to creating or confirming a PaymentIntent is either the shopper's payment that
//! cannot be taken — an unknown or expired payment method, a declined card, an amount the method
//! refuses, a card that needs an authentication step — which ends the order (`payment_failed`),
//! or a fault on the shop's side — a wrong key (401/403), a request Stripe does not understand,
//! an idempotency clash, an intent in an unexpected state — which the shopper cannot fix and an
//! operator must: those are retried and, if they persist, end in the dead-letter queue with the
//! order listed as stuck. [`is_the_shoppers`] tells them apart; [`reason`] gives the sentence the
//! shopper reads in the `payment.failed` e-mail. It never carries Stripe's internals, ids or card
//! data: Stripe's own message is used only for card declines, and only if it looks like a
//! sentence.

use stripe::ApiErrors;

/// The payment method does not exist (any more) or cannot be used.
pub const PAYMENT_METHOD_INVALID: &str = "the payment method is not valid or has expired";
/// Stripe refused the amount for this payment method.
pub const AMOUNT_REFUSED: &str = "the amount could not be charged to this payment method";
/// The card needs an authentication step that the payment could not ask for (a decline with
/// `authentication_required`).
pub const AUTHENTICATION_NEEDED: &str =
    "the card requires an authentication step that could not be completed";
/// The shopper's bank did not confirm the payment (3-D Secure failed or was refused).
pub const AUTHENTICATION_FAILED: &str = "the payment was not confirmed with your bank";
/// A card decline whose message from Stripe is not fit to show.
pub const CARD_DECLINED: &str = "the card was declined";
/// Any other refusal.
pub const GENERIC: &str = "the payment could not be taken with this payment method";

/// Codes of refusals that are the shop's fault (a bug, a wrong key, a race with itself), never
/// the shopper's: the payment is not failed for them.
const OPERATOR_CODES: &[&str] = &[
    "account_invalid",
    "api_key_expired",
    "idempotency_key_in_use",
    "livemode_mismatch",
    "lock_timeout",
    "parameter_invalid_empty",
    "parameter_invalid_integer",
    "parameter_invalid_string_blank",
    "parameter_invalid_string_empty",
    "parameter_missing",
    "parameter_unknown",
    "payment_intent_unexpected_state",
    "platform_api_key_expired",
    "rate_limit",
    "secret_key_required",
    "testmode_charges_only",
];

/// Codes Stripe gives to card declines (besides any error of type `card_error`).
const CARD_CODES: &[&str] = &[
    "card_declined",
    "card_decline_rate_limit_exceeded",
    "expired_card",
    "incorrect_cvc",
    "incorrect_number",
    "incorrect_zip",
    "insufficient_funds",
    "invalid_cvc",
    "invalid_expiry_month",
    "invalid_expiry_year",
    "invalid_number",
    "processing_error",
];

/// A Stripe error reduced to the fields that decide what it means for the shopper.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Refusal<'a> {
    /// `type`: `card_error`, `invalid_request_error`, `idempotency_error`, `api_error`.
    pub kind: &'a str,
    /// `code`, such as `resource_missing` or `card_declined`.
    pub code: Option<&'a str>,
    /// `decline_code`, for card declines.
    pub decline_code: Option<&'a str>,
    /// `param`: the request parameter the error is about.
    pub param: Option<&'a str>,
    /// Stripe's message (for developers, except for card errors).
    pub message: Option<&'a str>,
}

impl<'a> From<&'a ApiErrors> for Refusal<'a> {
    fn from(error: &'a ApiErrors) -> Self {
        Refusal {
            kind: error.type_.as_str(),
            code: error.code.as_ref().map(|c| c.as_str()),
            decline_code: error.decline_code.as_deref(),
            param: error.param.as_deref(),
            message: error.message.as_deref(),
        }
    }
}

/// Whether Stripe's `status` answer with `refusal` to a charge means the shopper's payment
/// cannot be taken (the order fails), rather than a fault the shop must fix (retried).
pub fn is_the_shoppers(status: u16, refusal: &Refusal<'_>) -> bool {
    let client_error = (400..500).contains(&status) && !matches!(status, 401 | 403 | 409 | 429);
    if !client_error || refusal.kind == "idempotency_error" {
        return false;
    }
    match refusal.code {
        // A missing object is the shopper's only when it is the payment method they chose.
        Some("resource_missing") => refusal.param == Some("payment_method"),
        Some(code) => !OPERATOR_CODES.contains(&code),
        None => true,
    }
}

/// The sentence shown to the shopper for `refusal`.
pub fn reason(refusal: &Refusal<'_>) -> String {
    let code = refusal.code.unwrap_or_default();
    let sentence = if refusal.code == Some("payment_intent_authentication_failure") {
        AUTHENTICATION_FAILED
    } else if needs_authentication(refusal) {
        AUTHENTICATION_NEEDED
    } else if refusal.kind == "card_error" || CARD_CODES.contains(&code) {
        return card_decline(refusal.message);
    } else if code == "resource_missing"
        || code == "expired_payment_method"
        || code.starts_with("payment_method_")
        || code == "payment_intent_incompatible_payment_method"
    {
        PAYMENT_METHOD_INVALID
    } else if matches!(
        code,
        "amount_too_small" | "amount_too_large" | "invalid_charge_amount"
    ) || refusal.param == Some("amount")
    {
        AMOUNT_REFUSED
    } else {
        GENERIC
    };
    sentence.to_owned()
}

fn needs_authentication(refusal: &Refusal<'_>) -> bool {
    matches!(refusal.code, Some("authentication_required"))
        || refusal.decline_code == Some("authentication_required")
}

/// Stripe's message for a card decline (written for shoppers), or [`CARD_DECLINED`] when it is
/// missing or looks like it holds an id, a code or a number.
fn card_decline(message: Option<&str>) -> String {
    message
        .map(str::trim)
        .filter(|m| fit_for_shopper(m))
        .unwrap_or(CARD_DECLINED)
        .to_owned()
}

fn fit_for_shopper(message: &str) -> bool {
    let words_only = message
        .split(|c: char| c.is_whitespace() || matches!(c, '.' | ',' | ';' | ':' | '!' | '?'))
        .all(|word| !word.contains('_') && word.chars().filter(char::is_ascii_digit).count() < 4);
    !message.is_empty() && message.len() <= 200 && words_only
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(kind: &'static str, code: Option<&'static str>) -> Refusal<'static> {
        Refusal {
            kind,
            code,
            ..Refusal::default()
        }
    }

    #[test]
    fn an_unknown_payment_method_is_the_shoppers_and_said_in_plain_words() {
        let missing = Refusal {
            param: Some("payment_method"),
            message: Some("No such PaymentMethod: 'pm_does_not_exist'"),
            ..refusal("invalid_request_error", Some("resource_missing"))
        };
        assert!(is_the_shoppers(400, &missing));
        assert!(is_the_shoppers(404, &missing));
        assert_eq!(reason(&missing), PAYMENT_METHOD_INVALID);
    }

    #[test]
    fn a_missing_object_other_than_the_payment_method_is_the_shops_fault() {
        let intent = Refusal {
            param: Some("intent"),
            ..refusal("invalid_request_error", Some("resource_missing"))
        };
        assert!(!is_the_shoppers(404, &intent));
    }

    #[test]
    fn a_card_decline_keeps_stripes_message_when_it_is_a_plain_sentence() {
        let declined = Refusal {
            message: Some("Your card was declined."),
            decline_code: Some("generic_decline"),
            ..refusal("card_error", Some("card_declined"))
        };
        assert!(is_the_shoppers(402, &declined));
        assert_eq!(reason(&declined), "Your card was declined.");
    }

    #[test]
    fn a_card_decline_message_with_an_id_or_a_number_is_replaced() {
        for message in [
            "Card pm_123 was declined.",
            "The card 4000000000000002 was declined.",
            "",
        ] {
            let declined = Refusal {
                message: Some(message),
                ..refusal("card_error", Some("card_declined"))
            };
            assert_eq!(reason(&declined), CARD_DECLINED, "{message}");
        }
    }

    #[test]
    fn amounts_stripe_refuses_are_said_in_plain_words() {
        for code in [
            "amount_too_small",
            "amount_too_large",
            "invalid_charge_amount",
        ] {
            let refused = refusal("invalid_request_error", Some(code));
            assert!(is_the_shoppers(400, &refused));
            assert_eq!(reason(&refused), AMOUNT_REFUSED, "{code}");
        }
    }

    #[test]
    fn a_card_that_needs_authentication_is_said_in_plain_words() {
        let required = Refusal {
            decline_code: Some("authentication_required"),
            message: Some("Your card was declined. This transaction requires authentication."),
            ..refusal("card_error", Some("card_declined"))
        };
        assert_eq!(reason(&required), AUTHENTICATION_NEEDED);
    }

    #[test]
    fn a_failed_3d_secure_says_the_bank_did_not_confirm_the_payment() {
        let failed = Refusal {
            message: Some("The provided PaymentMethod has failed authentication."),
            ..refusal(
                "invalid_request_error",
                Some("payment_intent_authentication_failure"),
            )
        };
        assert_eq!(reason(&failed), AUTHENTICATION_FAILED);
    }

    #[test]
    fn a_refusal_without_a_code_gets_the_generic_sentence() {
        let bare = Refusal {
            message: Some("Bad request"),
            ..refusal("invalid_request_error", None)
        };
        assert!(is_the_shoppers(400, &bare));
        assert_eq!(reason(&bare), GENERIC);
    }

    #[test]
    fn a_wrong_key_or_a_bad_request_of_ours_is_never_the_shoppers() {
        let any = refusal("invalid_request_error", None);
        for status in [401, 403, 409, 429, 500, 503] {
            assert!(!is_the_shoppers(status, &any), "{status}");
        }
        for code in [
            "parameter_unknown",
            "payment_intent_unexpected_state",
            "api_key_expired",
        ] {
            assert!(
                !is_the_shoppers(400, &refusal("invalid_request_error", Some(code))),
                "{code}"
            );
        }
        assert!(!is_the_shoppers(400, &refusal("idempotency_error", None)));
    }
}
