//! The invoice worker against the real PostgreSQL and LocalStack: poison parking, a crash in the
//! middle of a message, numbering apart from rendering, and the binary under a stand-in Lambda
//! Runtime API. The whole pipeline (checkout → invoice → e-mails) is tested in `tests/e2e`.

mod crash;
mod helpers;
mod lambda;
mod numbering;
mod poison;
mod quote;
