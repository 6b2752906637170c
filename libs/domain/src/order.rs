//! The order state machine: `placed → invoiced → paid → shipped → delivered`, with
//! `payment_failed`, `cancelled` (with a [`CancelReason`]) and `refunded` as the other ends.
//! Orders never skip a state and never move backwards.
//!
//! ```text
//! placed ──▶ invoiced ──▶ paid ──▶ shipped ──▶ delivered
//!   │           │  │        │
//!   │           │  │        └──▶ refunded        (shipment refused, or cancelled after payment)
//!   │           │  └──▶ payment_failed           (Stripe refused the payment)
//!   └───────────┴──▶ cancelled                   (shopper, operator, expiry)
//! ```

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Checked out, stock reserved.
    Placed,
    /// The invoice exists.
    Invoiced,
    /// The payment was captured.
    Paid,
    /// Handed to the shipping partner; waiting for the parcel to arrive.
    Shipped,
    /// The partner delivered the parcel. Terminal.
    Delivered,
    /// The payment was declined; stock released. Terminal.
    PaymentFailed,
    /// The payment was refunded (the partner refused the address, or the order was cancelled
    /// after payment); stock released. Terminal.
    Refunded,
    /// Cancelled before payment (by the shopper, an operator or the expiry); stock released.
    /// Terminal.
    Cancelled,
}

/// A transition the state machine does not allow.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
#[error("an order cannot move from `{from}` to `{to}`")]
pub struct TransitionError {
    /// The current status.
    pub from: OrderStatus,
    /// The status asked for.
    pub to: OrderStatus,
}

/// The error for a status name this version does not know.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown order status `{0}`")]
pub struct UnknownStatus(pub String);

impl OrderStatus {
    /// Every status.
    pub const ALL: [OrderStatus; 8] = [
        OrderStatus::Placed,
        OrderStatus::Invoiced,
        OrderStatus::Paid,
        OrderStatus::Shipped,
        OrderStatus::Delivered,
        OrderStatus::PaymentFailed,
        OrderStatus::Refunded,
        OrderStatus::Cancelled,
    ];

    /// The name stored in the database and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Placed => "placed",
            OrderStatus::Invoiced => "invoiced",
            OrderStatus::Paid => "paid",
            OrderStatus::Shipped => "shipped",
            OrderStatus::Delivered => "delivered",
            OrderStatus::PaymentFailed => "payment_failed",
            OrderStatus::Refunded => "refunded",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    /// Whether no further transition can happen.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            OrderStatus::Delivered
                | OrderStatus::PaymentFailed
                | OrderStatus::Refunded
                | OrderStatus::Cancelled
        )
    }

    /// Whether the order's money and stock are settled: a terminal state, or `shipped` (paid,
    /// and the parcel is with the carrier). An order that is not settled is waiting for the
    /// pipeline, and is stuck when it waits too long.
    pub fn is_settled(self) -> bool {
        self.is_terminal() || self == OrderStatus::Shipped
    }

    /// Whether the order may still be cancelled: until it is shipped.
    pub fn is_cancellable(self) -> bool {
        matches!(
            self,
            OrderStatus::Placed | OrderStatus::Invoiced | OrderStatus::Paid
        )
    }

    /// The status after moving to `to`.
    ///
    /// # Errors
    /// [`TransitionError`] when the move skips a state, goes backwards or leaves a terminal state.
    pub fn transition(self, to: OrderStatus) -> Result<OrderStatus, TransitionError> {
        use OrderStatus::*;
        let allowed = matches!(
            (self, to),
            (Placed, Invoiced)
                | (Placed, Cancelled)
                | (Invoiced, Paid)
                | (Invoiced, PaymentFailed)
                | (Invoiced, Cancelled)
                | (Paid, Shipped)
                | (Paid, Refunded)
                | (Shipped, Delivered)
        );
        if allowed {
            Ok(to)
        } else {
            Err(TransitionError { from: self, to })
        }
    }
}

/// Why an order was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// The shopper cancelled it (order page or signed link).
    Shopper,
    /// An operator cancelled it (`chargeflow-admin order cancel`).
    Operator,
    /// It was not paid within the expiry.
    Expired,
    /// The payment could not be taken for a reason the shopper cannot fix by waiting.
    PaymentUnusable,
}

impl CancelReason {
    /// Every reason.
    pub const ALL: [CancelReason; 4] = [
        CancelReason::Shopper,
        CancelReason::Operator,
        CancelReason::Expired,
        CancelReason::PaymentUnusable,
    ];

    /// The name stored in the database and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            CancelReason::Shopper => "shopper",
            CancelReason::Operator => "operator",
            CancelReason::Expired => "expired",
            CancelReason::PaymentUnusable => "payment_unusable",
        }
    }
}

impl FromStr for CancelReason {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CancelReason::ALL
            .into_iter()
            .find(|reason| reason.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

impl fmt::Display for CancelReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The one reference shoppers see for an order — on its page, in every e-mail, on the invoice
/// and in the operator's tools: ten Crockford base32 characters in two groups, such as
/// `K3M9Q-2XW7A`.
///
/// It is made of the order id's random bits (the last 50 of a UUIDv7's 62 random bits), never of
/// its timestamp, so orders placed in the same moment get different references: two of a
/// million orders share one with a probability of about 4 × 10⁻⁴, of a thousand about 4 × 10⁻¹⁰.
/// Crockford's alphabet leaves out I, L, O and U, so a reference read aloud or retyped is not
/// misread.
pub fn order_reference(order_id: uuid::Uuid) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let bits = order_id.as_u128() & ((1 << 50) - 1);
    let chars: Vec<char> = (0..10)
        .rev()
        .map(|i| ALPHABET[((bits >> (5 * i)) & 31) as usize] as char)
        .collect();
    let (head, tail) = chars.split_at(5);
    format!(
        "{}-{}",
        head.iter().collect::<String>(),
        tail.iter().collect::<String>()
    )
}

impl FromStr for OrderStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OrderStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::OrderStatus::*;
    use super::*;

    #[test]
    fn the_happy_path_is_allowed_one_step_at_a_time() {
        assert_eq!(Placed.transition(Invoiced), Ok(Invoiced));
        assert_eq!(Invoiced.transition(Paid), Ok(Paid));
        assert_eq!(Paid.transition(Shipped), Ok(Shipped));
        assert_eq!(Shipped.transition(Delivered), Ok(Delivered));
    }

    #[test]
    fn an_order_is_cancellable_until_it_is_shipped() {
        let cancellable: Vec<_> = OrderStatus::ALL
            .into_iter()
            .filter(|s| s.is_cancellable())
            .collect();
        assert_eq!(cancellable, [Placed, Invoiced, Paid]);
        assert!(
            Paid.transition(Cancelled).is_err(),
            "paid orders end refunded"
        );
    }

    #[test]
    fn shipped_is_settled_but_not_terminal() {
        assert!(Shipped.is_settled() && !Shipped.is_terminal());
        assert!(!Paid.is_settled());
    }

    #[test]
    fn a_thousand_orders_placed_at_once_have_a_thousand_references() {
        let references: std::collections::HashSet<String> = (0..1000)
            .map(|_| order_reference(uuid::Uuid::now_v7()))
            .collect();
        assert_eq!(references.len(), 1000);
    }

    #[test]
    fn a_reference_is_two_groups_of_five_unambiguous_characters_from_the_random_bits() {
        let id = uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);
        assert_eq!(order_reference(id), "00000-00001");
        let reference = order_reference(uuid::Uuid::now_v7());
        assert_eq!(reference.len(), 11);
        assert!(
            reference
                .chars()
                .all(|c| c == '-' || "0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(c)),
            "{reference}"
        );
    }

    #[test]
    fn cancel_reasons_round_trip_through_their_names() {
        for reason in CancelReason::ALL {
            assert_eq!(reason.as_str().parse::<CancelReason>(), Ok(reason));
        }
    }

    #[test]
    fn skipping_a_state_is_rejected() {
        assert!(Placed.transition(Paid).is_err());
        assert!(Placed.transition(Shipped).is_err());
        assert!(Invoiced.transition(Shipped).is_err());
    }

    #[test]
    fn moving_backwards_or_out_of_a_terminal_state_is_rejected() {
        assert!(Paid.transition(Invoiced).is_err());
        for terminal in OrderStatus::ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in OrderStatus::ALL {
                assert!(terminal.transition(to).is_err(), "{terminal} -> {to}");
            }
        }
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for status in OrderStatus::ALL {
            assert_eq!(status.as_str().parse::<OrderStatus>(), Ok(status));
        }
    }
}
