//! The shipping worker against the real PostgreSQL and LocalStack and the partner simulator
//! (in-process, with its fault switches), in-process and as its binary under a stand-in Lambda
//! Runtime API.

mod cancel;
mod helpers;
mod lambda;
mod partner_trouble;
mod shipping;
