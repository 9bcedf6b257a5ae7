//! Per-connection settings.

use std::time::Duration;

use crate::proto::DEFAULT_MAX_FRAME_LEN;
use crate::session::Verdict;

/// libmilter's default read timeout (`smfi_settimeout`): two hours and ten seconds.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(7210);

/// How often a filter still working at end of message is reported as alive (PROGRESS), so
/// Sendmail's 10-second read timeout does not fire.
pub const DEFAULT_PROGRESS_INTERVAL: Duration = Duration::from_secs(5);

/// How long a new connection may take to send its OPTNEG: MTAs send it at once, so a
/// connection silent this long is not an MTA and should not hold a slot for hours.
pub const DEFAULT_NEGOTIATION_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a write may wait for the MTA to take the bytes; an MTA reads every reply at
/// once, so one that stops reading this long is stuck and its output is let go.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// Default limit on header bytes per message (names and values): far above real mail
/// (Postfix keeps at most 100 KiB per header), so a flood of large headers cannot make a
/// connection hold more than this.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 1024 * 1024;

/// Default limit on headers per message: far above real mail, low enough that a flood of
/// tiny headers cannot make a filter store without bound.
pub const DEFAULT_MAX_HEADERS: usize = 10_000;

/// Settings for one connection; `Default` gives the documented defaults.
#[derive(Clone, Debug)]
pub struct ConnectionConfig {
    /// Largest frame accepted from the MTA.
    pub max_frame_len: u32,
    /// Most headers one message may have; beyond it the filter's awaits fail with
    /// `Error::TooManyHeaders` and the message gets the error reply.
    pub max_headers: usize,
    /// Most header bytes (names plus values) one message may have; beyond it the filter's
    /// awaits fail with `Error::TooManyHeaders` and the message gets the error reply.
    pub max_header_bytes: usize,
    /// `H` (header template) lines in the Sendmail configuration: Sendmail counts them
    /// when placing an inserted header. 9 for a `sendmail.cf` built from the stock cf.m4;
    /// raise it by one for each `H` line a site adds.
    pub sendmail_header_templates: u32,
    /// How long the MTA may stay silent while the filter waits for it; `None`: forever.
    pub read_timeout: Option<Duration>,
    /// How long a new connection may take to complete OPTNEG; `None`: the read timeout.
    pub negotiation_timeout: Option<Duration>,
    /// How long a reply may wait for the MTA to read it; `None`: forever.
    pub write_timeout: Option<Duration>,
    /// How often to send PROGRESS while the filter is busy at end of message; `None`: never.
    pub progress_interval: Option<Duration>,
    /// The verdict a message gets when its filter fails or panics.
    pub error_verdict: Verdict,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            max_headers: DEFAULT_MAX_HEADERS,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            sendmail_header_templates: crate::session::SENDMAIL_HEADER_TEMPLATES,
            read_timeout: Some(DEFAULT_READ_TIMEOUT),
            negotiation_timeout: Some(DEFAULT_NEGOTIATION_TIMEOUT),
            write_timeout: Some(DEFAULT_WRITE_TIMEOUT),
            progress_interval: Some(DEFAULT_PROGRESS_INTERVAL),
            error_verdict: Verdict::Tempfail,
        }
    }
}
