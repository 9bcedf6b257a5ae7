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
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

// The everyday types, so a filter needs one `use` line.
pub use bytes::Bytes;
pub use connection::ConnectionConfig;
pub use proto::{Actions, Events, MacroStage, Needs, ProtocolFlags, ReplyCode};
pub use server::{Server, ServerConfig};
pub use session::{
    Address, Client, Error, Filter, FnFilter, HeaderField, HeaderHandle, HeaderPosition, Phase,
    Recipient, Session, Text, Verdict, filter_fn,
};
