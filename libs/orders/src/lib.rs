#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod cancel;
pub mod delivery;
pub mod expiry;
pub mod lifecycle;
pub mod payments;
pub mod read;
pub mod stuck;

pub use cancel::{Cancellation, Origin, cancel};
pub use lifecycle::{
    Locked, Transition, advance, advance_if, lock, lock_status, record_event, release_stock,
    transition,
};

/// The error type of this library.
#[derive(Debug, thiserror::Error)]
pub enum OrdersError {
    /// A statement failed.
    #[error("order statement failed")]
    Database(#[from] sqlx::Error),
    /// Writing an outbox row failed.
    #[error("outbox write failed")]
    Outbox(#[from] outbox::OutboxError),
    /// An event could not be encoded.
    #[error("the order event could not be encoded")]
    Encode(#[from] serde_json::Error),
    /// A stored status or cancel reason is one this version does not know.
    #[error("the stored order is not readable by this version")]
    Unreadable(#[from] domain::order::UnknownStatus),
}
