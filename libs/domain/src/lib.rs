#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod checkout;
pub mod events;
pub mod invoice;
pub mod links;
pub mod money;
pub mod order;
pub mod pricing;
pub mod redact;
pub mod routing;

pub use checkout::{Address, CheckoutError, CheckoutLine, Customer, EmailAddress, Quantity};
pub use events::{
    Aggregate, DecodeError, Event, EventBody, EventEnvelope, EventType, InvoiceGenerated,
    OrderCancelled, OrderPlaced, OrderPlacedLine, PaymentActionRequired, PaymentFailed,
    PaymentRefunded, PaymentSucceeded, ShipmentCreated, ShipmentDelivered, ShipmentFailed,
    SignInRequested, UnknownEventType,
};
pub use invoice::{
    BillTo, InvoiceDocument, InvoiceLine, InvoiceNumber, InvoiceTotals, Seller, TaxRate,
    compute_totals,
};
pub use money::{Currency, Money};
pub use order::{CancelReason, OrderStatus, TransitionError, order_reference};
pub use pricing::{PriceRules, Rates, quote};
pub use routing::{Consumer, route};
