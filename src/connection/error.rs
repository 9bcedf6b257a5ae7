//! Why a connection ended other than by QUIT or end of stream.

use std::fmt;

use crate::proto::{Byte, DecodeError, EncodeError, NegotiateError};

/// A connection ended abnormally.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectionError {
    /// Reading or writing the stream failed.
    Io(std::io::Error),
    /// The MTA sent bytes that are not the milter protocol.
    Decode(DecodeError),
    /// The MTA cannot give what the filter needs.
    Negotiate(NegotiateError),
    /// The MTA sent a valid packet at a point where it makes no sense.
    Unexpected {
        /// The command byte.
        command: Byte,
        /// What was expected instead.
        expected: &'static str,
    },
    /// The MTA stayed silent longer than the read timeout.
    Timeout,
    /// The peer did not complete negotiation within the negotiation timeout.
    NegotiationTimeout,
    /// The MTA took no reply bytes for longer than the write timeout.
    WriteTimeout,
    /// A reply could not be encoded (a bug: values are checked when queued).
    Encode(EncodeError),
}

impl fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(error) => write!(f, "I/O error: {error}"),
            Self::Decode(error) => write!(f, "protocol error: {error}"),
            Self::Negotiate(error) => write!(f, "negotiation failed: {error}"),
            Self::Unexpected { command, expected } => {
                write!(f, "unexpected command {command}, expected {expected}")
            }
            Self::Timeout => f.write_str("MTA silent beyond the read timeout"),
            Self::NegotiationTimeout => {
                f.write_str("no negotiation within the negotiation timeout")
            }
            Self::WriteTimeout => f.write_str("MTA not reading replies beyond the write timeout"),
            Self::Encode(error) => write!(f, "cannot encode reply: {error}"),
        }
    }
}

impl std::error::Error for ConnectionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(error) => Some(error),
            Self::Decode(error) => Some(error),
            Self::Negotiate(error) => Some(error),
            Self::Encode(error) => Some(error),
            _ => None,
        }
    }
}

impl From<std::io::Error> for ConnectionError {
    fn from(error: std::io::Error) -> Self {
        Self::Io(error)
    }
}

impl From<DecodeError> for ConnectionError {
    fn from(error: DecodeError) -> Self {
        Self::Decode(error)
    }
}

impl From<EncodeError> for ConnectionError {
    fn from(error: EncodeError) -> Self {
        Self::Encode(error)
    }
}
