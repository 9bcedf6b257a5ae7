//! Errors a filter sees from the session.

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
    /// The filter awaited a phase that has already passed.
    PhasePassed {
        /// What was awaited.
        wanted: Phase,
        /// Where the conversation is.
        current: Phase,
    },
    /// The MTA never sends this event on this connection (it was negotiated away, or the
    /// protocol version lacks it).
    Absent(Phase),
    /// The filter tried to answer an event the MTA was told gets no reply.
    Unanswerable(Phase),
    /// An edit needs an action the MTA did not agree to (or the filter did not declare).
    NotNegotiated(Actions),
    /// An edit or reply holds a value that cannot go on the wire.
    InvalidValue(EncodeError),
    /// A reply code was invalid.
    ReplyCode(ReplyCodeError),
    /// The message has more headers than the connection allows (see
    /// `ConnectionConfig::max_headers`); the message gets the error reply.
    TooManyHeaders(usize),
    /// A recipient or header handle belongs to another message, or its moment has passed.
    StaleHandle,
    /// The filter's own error, for filters that use this type as theirs.
    Filter(Box<dyn std::error::Error + Send + Sync>),
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
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Aborted => f.write_str("message aborted"),
            Self::PhasePassed { wanted, current } => {
                write!(f, "awaited {wanted} but the conversation is at {current}")
            }
            Self::Absent(phase) => write!(f, "the MTA does not send {phase} on this connection"),
            Self::Unanswerable(phase) => write!(f, "{phase} was negotiated as not answered"),
            Self::NotNegotiated(actions) => {
                write!(f, "edit needs {actions:?}, which was not negotiated")
            }
            Self::InvalidValue(error) => write!(f, "invalid value: {error}"),
            Self::ReplyCode(error) => write!(f, "invalid reply code: {error}"),
            Self::TooManyHeaders(max) => write!(f, "message has more than {max} headers"),
            Self::StaleHandle => f.write_str("handle no longer refers to the current message"),
            Self::Filter(error) => write!(f, "filter error: {error}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::InvalidValue(error) => Some(error),
            Self::ReplyCode(error) => Some(error),
            Self::Filter(error) => Some(error.as_ref()),
            _ => None,
        }
    }
}

impl From<EncodeError> for Error {
    fn from(error: EncodeError) -> Self {
        Self::InvalidValue(error)
    }
}

impl From<ReplyCodeError> for Error {
    fn from(error: ReplyCodeError) -> Self {
        Self::ReplyCode(error)
    }
}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Self {
        Self::Filter(Box::new(error))
    }
}
