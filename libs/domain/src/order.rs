//! The order state machine: `placed → invoiced → paid → shipped`, with `payment_failed`,
//! `refunded` and `cancelled` as the failure ends. Orders never skip a state and never move
//! backwards.

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
    /// Handed to the shipping partner. Terminal.
    Shipped,
    /// The payment was declined; stock released. Terminal.
    PaymentFailed,
    /// Shipping failed and the payment was refunded; stock released. Terminal.
    Refunded,
    /// Cancelled before payment; stock released. Terminal.
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
    pub const ALL: [OrderStatus; 7] = [
        OrderStatus::Placed,
        OrderStatus::Invoiced,
        OrderStatus::Paid,
        OrderStatus::Shipped,
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
            OrderStatus::PaymentFailed => "payment_failed",
            OrderStatus::Refunded => "refunded",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    /// Whether no further transition can happen.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            OrderStatus::Shipped
                | OrderStatus::PaymentFailed
                | OrderStatus::Refunded
                | OrderStatus::Cancelled
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
        );
        if allowed {
            Ok(to)
        } else {
            Err(TransitionError { from: self, to })
        }
    }
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
