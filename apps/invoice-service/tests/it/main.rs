//! The invoice worker against the real PostgreSQL and LocalStack: poison parking, and a crash in
//! the middle of a message. The whole pipeline (checkout → invoice → e-mails) is tested in
//! `tests/e2e`.

mod crash;
mod helpers;
mod poison;
