//! The shipping worker against the real PostgreSQL and LocalStack and the partner simulator
//! (in-process, with its fault switches).

mod helpers;
mod shipping;
