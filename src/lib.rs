#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod connection;
#[doc(hidden)]
pub mod fuzzing;
pub mod proto;
pub mod rt;
pub mod server;
pub mod session;
pub mod testing;

pub use bytes::Bytes;
pub use proto::Needs;
pub use session::{Error, Filter, FnFilter, Session, Verdict, filter_fn};
