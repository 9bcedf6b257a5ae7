//! Per-connection settings.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::future::Shared;

use crate::proto::DEFAULT_MAX_FRAME_LEN;
use crate::session::Verdict;

/// libmilter's default read timeout (`smfi_settimeout`): two hours and ten seconds.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(7210);

/// How often a filter still working at end of message is reported as alive (PROGRESS), so
/// Sendmail's 10-second read timeout does not fire.
pub const DEFAULT_PROGRESS_INTERVAL: Duration = Duration::from_secs(5);

/// Default limit on headers per message: far above real mail, low enough that a flood of
/// tiny headers cannot make a filter store without bound.
pub const DEFAULT_MAX_HEADERS: usize = 10_000;

/// A timer: returns a future that completes after the duration. Supplied by the runtime
/// (async-std's `task::sleep` by default), so the driver itself needs none.
pub type Sleep = Arc<dyn Fn(Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Completes when the server shuts down; cloned into every connection.
pub type ShutdownSignal = Shared<Pin<Box<dyn Future<Output = ()> + Send>>>;

/// Settings for one connection.
#[derive(Clone)]
pub struct ConnectionConfig {
    /// Largest frame accepted from the MTA.
    pub max_frame_len: u32,
    /// Most headers one message may have; beyond it the filter's awaits fail with
    /// `Error::TooManyHeaders` and the message gets the error reply.
    pub max_headers: usize,
    /// `H` (header template) lines in the Sendmail configuration: Sendmail counts them
    /// when placing an inserted header. 9 for a `sendmail.cf` built from the stock cf.m4;
    /// raise it by one for each `H` line a site adds.
    pub sendmail_header_templates: u32,
    /// How long the MTA may stay silent while the filter waits for it; `None`: forever.
    pub read_timeout: Option<Duration>,
    /// How often to send PROGRESS while the filter is busy at end of message; `None`: never.
    pub progress_interval: Option<Duration>,
    /// The verdict a message gets when its filter fails or panics.
    pub error_verdict: Verdict,
    /// The timer; without one no timeout or progress report fires.
    pub sleep: Option<Sleep>,
    /// When it completes, the connection finishes the message in flight and closes.
    pub shutdown: Option<ShutdownSignal>,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            max_headers: DEFAULT_MAX_HEADERS,
            sendmail_header_templates: crate::session::SENDMAIL_HEADER_TEMPLATES,
            read_timeout: Some(DEFAULT_READ_TIMEOUT),
            progress_interval: Some(DEFAULT_PROGRESS_INTERVAL),
            error_verdict: Verdict::Tempfail,
            sleep: None,
            shutdown: None,
        }
    }
}

impl fmt::Debug for ConnectionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionConfig")
            .field("max_frame_len", &self.max_frame_len)
            .field("max_headers", &self.max_headers)
            .field("sendmail_header_templates", &self.sendmail_header_templates)
            .field("read_timeout", &self.read_timeout)
            .field("progress_interval", &self.progress_interval)
            .field("error_verdict", &self.error_verdict)
            .field("sleep", &self.sleep.as_ref().map(|_| "…"))
            .field("shutdown", &self.shutdown.as_ref().map(|_| "…"))
            .finish()
    }
}
