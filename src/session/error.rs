//! Errors a filter sees from the session, by whose doing: the message ended, the filter
//! called the session wrongly, or the MTA cannot give what was asked.

use std::fmt;

use super::phase::Phase;
use crate::proto::{Actions, EncodeError, ReplyCodeError};

/// Why a session call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The message was aborted (ABORT, a new MAIL, QUIT or the connection closed); queued
    /// edits were discarded. Return it with `?`.
    Aborted,
    /// The filter called the session wrongly: a bug in the filter.
    Misuse(Misuse),
    /// The MTA does not give this on this connection, or a limit was reached.
    Unavailable(Unavailable),
    /// The filter's own error, for filters that use this type as theirs.
    Filter(Box<dyn std::error::Error + Send + Sync>),
}

/// A session call the filter should not have made.
#[derive(Debug)]
#[non_exhaustive]
pub enum Misuse {
    /// The filter awaited a phase that has already passed.
    PhasePassed {
        /// What was awaited.
        wanted: Phase,
        /// Where the conversation is.
        current: Phase,
    },
    /// The filter answered an event it declared it does not answer (`Needs::answers`), so
    /// the MTA was told not to wait for a reply.
    Unanswerable(Phase),
    /// The filter answered an unknown SMTP command without declaring `UNKNOWN` in
    /// `Needs::answers`, so the MTA was told not to wait for a reply.
    UnknownUnanswerable,
    /// An edit or reply holds a value that cannot go on the wire.
    InvalidValue(EncodeError),
    /// `change_header` with an empty value (the protocol's way to delete; call
    /// `delete_header` to mean it).
    EmptyHeaderValue,
    /// A reply code was invalid.
    ReplyCode(ReplyCodeError),
    /// A recipient or header handle belongs to another message, or its moment has passed.
    StaleHandle,
    /// A [`FilterList`](crate::FilterList)'s `filter` method was called directly; a list
    /// is served by a connection, which runs each member on its own session.
    ListCalledDirectly,
}

/// Something the MTA does not give on this connection, or a limit reached.
#[derive(Debug)]
#[non_exhaustive]
pub enum Unavailable {
    /// The MTA never sends this event on this connection (negotiated away, or the protocol
    /// version lacks it).
    Absent(Phase),
    /// An edit needs an action that was not negotiated: the filter did not declare it in
    /// its `Needs`, or the MTA does not allow it.
    NotNegotiated(Actions),
    /// The message has more headers than the connection allows
    /// (`ConnectionConfig::max_headers`); the message gets the error reply.
    TooManyHeaders(usize),
    /// The message's headers (names and values) are larger than the connection allows
    /// (`ConnectionConfig::max_header_bytes`); the message gets the error reply.
    HeadersTooLarge(usize),
    /// The MTA does not send unknown SMTP commands on this connection: the filter did not
    /// declare `Events::UNKNOWN`, or the protocol version is below 3.
    UnknownNotSent,
    /// The MTA sends this event on this connection but went on to a later one without it
    /// (commands out of order, such as a header or RCPT before MAIL).
    Skipped(Phase),
}

impl Error {
    /// Whether the message was aborted (the filter should just return).
    #[must_use]
    pub fn is_aborted(&self) -> bool {
        matches!(self, Self::Aborted)
    }

    /// Wraps any error of the filter's own.
    pub fn filter(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Filter(error.into())
    }

    pub(crate) fn phase_passed(wanted: Phase, current: Phase) -> Self {
        Self::Misuse(Misuse::PhasePassed { wanted, current })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Aborted => f.write_str("message aborted"),
            Self::Misuse(misuse) => write!(f, "filter misuse: {misuse}"),
            Self::Unavailable(unavailable) => unavailable.fmt(f),
            Self::Filter(error) => write!(f, "filter error: {error}"),
        }
    }
}

impl fmt::Display for Misuse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PhasePassed { wanted, current } => {
                write!(f, "awaited {wanted} but the conversation is at {current}")
            }
            Self::Unanswerable(phase) => write!(f, "{phase} was negotiated as not answered"),
            Self::UnknownUnanswerable => {
                f.write_str("unknown commands were negotiated as not answered")
            }
            Self::InvalidValue(error) => write!(f, "invalid value: {error}"),
            Self::EmptyHeaderValue => f.write_str("empty header value (delete_header deletes)"),
            Self::ReplyCode(error) => write!(f, "invalid reply code: {error}"),
            Self::StaleHandle => f.write_str("handle no longer refers to the current message"),
            Self::ListCalledDirectly => {
                f.write_str("a filter list runs only when served on a connection")
            }
        }
    }
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Absent(phase) => write!(f, "the MTA does not send {phase} on this connection"),
            Self::NotNegotiated(actions) => {
                write!(f, "edit needs {actions:?}, which was not negotiated")
            }
            Self::TooManyHeaders(max) => write!(f, "message has more than {max} headers"),
            Self::HeadersTooLarge(max) => {
                write!(f, "message headers are larger than {max} bytes")
            }
            Self::UnknownNotSent => {
                f.write_str("the MTA does not send unknown commands on this connection")
            }
            Self::Skipped(phase) => write!(f, "the MTA went on without sending {phase}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Misuse(Misuse::InvalidValue(error)) => Some(error),
            Self::Misuse(Misuse::ReplyCode(error)) => Some(error),
            Self::Filter(error) => Some(error.as_ref()),
            _ => None,
        }
    }
}

impl From<Misuse> for Error {
    fn from(misuse: Misuse) -> Self {
        Self::Misuse(misuse)
    }
}

impl From<Unavailable> for Error {
    fn from(unavailable: Unavailable) -> Self {
        Self::Unavailable(unavailable)
    }
}

impl From<EncodeError> for Error {
    fn from(error: EncodeError) -> Self {
        Self::Misuse(Misuse::InvalidValue(error))
    }
}

impl From<ReplyCodeError> for Error {
    fn from(error: ReplyCodeError) -> Self {
        Self::Misuse(Misuse::ReplyCode(error))
    }
}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Self {
        Self::Filter(Box::new(error))
    }
}
