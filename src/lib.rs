#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod connection;
#[doc(hidden)]
pub mod fuzzing;
pub mod proto;
pub mod server;
pub mod session;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

pub use bytes::Bytes;
pub use proto::Needs;
pub use session::{Error, Filter, Session, Verdict};
