//! Async mail filters (milters) for Postfix and Sendmail.
#![forbid(unsafe_code)]

pub mod proto;
/// The MTA side of the protocol as a library: drive and unit-test any milter over a stream.
pub mod testing;
