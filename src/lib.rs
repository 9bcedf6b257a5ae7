//! Async mail filters (milters) for Postfix and Sendmail.
#![forbid(unsafe_code)]

pub mod connection;
pub mod proto;
pub mod server;
pub mod session;

pub use proto::Needs;
pub use session::{Error, Filter, Session, Verdict};
