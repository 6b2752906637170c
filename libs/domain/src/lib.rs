#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod checkout;
pub mod events;
pub mod money;
pub mod order;
pub mod routing;

pub use checkout::{Address, CheckoutError, CheckoutLine, Customer, EmailAddress, Quantity};
pub use events::{EventEnvelope, EventType, OrderPlaced, OrderPlacedLine, UnknownEventType};
pub use money::{Currency, Money};
pub use order::{OrderStatus, TransitionError};
pub use routing::{Consumer, route};
