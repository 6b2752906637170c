//! Integration tests of the partner simulator, each against its own in-process server on a free
//! port of 127.0.0.1.

mod cancel;
mod config;
mod delivery;
mod faults;
mod helpers;
mod idempotency;
mod logs;
mod receiver;
mod shipments;
