//! Async mail filters (milters) for Postfix and Sendmail.
#![forbid(unsafe_code)]

pub mod proto;
