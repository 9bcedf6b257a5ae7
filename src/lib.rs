#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod connection;
#[doc(hidden)]
pub mod fuzzing;
pub mod proto;
pub mod server;
pub mod session;
pub mod testing;

pub use bytes::Bytes;
pub use proto::Needs;
pub use session::{Error, Filter, Session, Verdict};
