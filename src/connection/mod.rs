//! One MTA connection, served over any `futures::io` stream.
//!
//! | file | concern |
//! |---|---|
//! | `core` | the protocol state: negotiation result, message boundaries, which MTA, queue id, verdict bookkeeping, what to answer and whether (no I/O, no runtime, no clock) |
//! | `answer` | one filter's answer to an event, and the merge of several filters' answers |
//! | `call` | the life of one filter call: start, poll, park, finish, panic capture, recycling |
//! | `driver` | the socket loop: frames in, answers out, timers |
//! | `builder` | serving a connection directly, with its graceful-shutdown handle |
//! | `shutdown` | the graceful-shutdown handle a connection and a server share |
//! | `config` | the settings and their defaults |
//! | `error` | why a connection ended abnormally |

mod answer;
mod builder;
mod call;
mod config;
mod core;
mod driver;
mod error;
mod shutdown;

pub use builder::{Builder, Connection};
pub use config::{
    ConnectionConfig, DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_HEADERS, DEFAULT_NEGOTIATION_TIMEOUT,
    DEFAULT_PROGRESS_INTERVAL, DEFAULT_READ_TIMEOUT, DEFAULT_WRITE_TIMEOUT,
};
pub use error::ConnectionError;
pub use shutdown::ShutdownHandle;
