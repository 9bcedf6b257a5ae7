//! The connection driver: one MTA connection served over any `futures::io` stream.

mod answer;
mod config;
mod driver;
mod error;

pub use config::{
    ConnectionConfig, DEFAULT_MAX_HEADERS, DEFAULT_PROGRESS_INTERVAL, DEFAULT_READ_TIMEOUT,
    ShutdownSignal, Sleep,
};
pub use driver::serve_connection;
pub use error::ConnectionError;
