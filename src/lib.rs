//! Async mail filters (milters) for Postfix and Sendmail.
#![forbid(unsafe_code)]

#[doc(hidden)]
pub mod fuzzing;
pub mod proto;
