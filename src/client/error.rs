//! What can go wrong while the client drives a filter.

use std::fmt;
use std::time::Duration;

use crate::proto::{Actions, Byte, CommandKind, DecodeError, EncodeError, ProtocolFlags};
use crate::server::SpecError;

/// The filter answered the OPTNEG offer with something the simulated MTA refuses (§3.1).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NegotiationError {
    /// The reply names a protocol version above the one offered.
    VersionTooHigh {
        /// The version the client offered.
        offered: u32,
        /// The version the filter replied with.
        replied: u32,
    },
    /// The reply names a protocol version below 2, which neither MTA accepts.
    VersionTooLow(u32),
    /// The reply asks for action flags the client did not offer (both MTAs refuse this).
    ActionsNotOffered(Actions),
    /// The reply sets protocol flags the client did not offer (only Sendmail refuses this).
    ProtocolNotOffered(ProtocolFlags),
}

impl fmt::Display for NegotiationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::VersionTooHigh { offered, replied } => {
                write!(
                    f,
                    "filter replied with version {replied}, above the offered {offered}"
                )
            }
            Self::VersionTooLow(version) => {
                write!(
                    f,
                    "filter replied with version {version}, below the minimum of 2"
                )
            }
            Self::ActionsNotOffered(actions) => {
                write!(
                    f,
                    "filter asked for actions that were not offered: {actions:?}"
                )
            }
            Self::ProtocolNotOffered(flags) => {
                write!(
                    f,
                    "filter asked for protocol flags that were not offered: {flags:?}"
                )
            }
        }
    }
}

impl std::error::Error for NegotiationError {}

/// An error of the client: the filter misbehaved, the stream failed, or the caller used the
/// client wrongly.
///
/// Every variant that describes the filter's behaviour is something a real MTA would treat
/// as a filter failure (Postfix: `milter_default_action`; Sendmail: the `F=` flag).
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// Connecting, reading or writing the stream failed.
    Io(std::io::Error),
    /// The socket spec handed to [`connect`](super::connect) cannot be parsed.
    InvalidSpec(SpecError),
    /// The filter did not answer (or did not read) within the configured time.
    Timeout {
        /// The command whose answer was awaited, or which was being written.
        command: CommandKind,
        /// The configured limit.
        after: Duration,
    },
    /// Connecting to the filter took longer than the configured time.
    ConnectTimeout(Duration),
    /// The filter closed the connection while an answer was awaited.
    Closed {
        /// The command whose answer was awaited.
        command: CommandKind,
    },
    /// The filter sent bytes that are not a valid packet.
    Decode(DecodeError),
    /// A value handed to the client cannot be encoded (the caller's mistake).
    Encode(EncodeError),
    /// The OPTNEG reply was refused.
    Negotiation(NegotiationError),
    /// A command was sent before [`MilterClient::negotiate`](super::MilterClient::negotiate)
    /// succeeded.
    NotNegotiated,
    /// The session is over: the client quit, or a connection-level verdict or SHUTDOWN ended
    /// it. Real MTAs send nothing more on such a socket.
    SessionClosed,
    /// The filter sent a response that is not allowed in answer to this command (for example
    /// a modification before end of message, SKIP after anything but BODY, DISCARD at
    /// CONNECT, PROGRESS before end of message to Sendmail).
    UnexpectedResponse {
        /// The command being answered.
        command: CommandKind,
        /// The response byte received.
        response: u8,
    },
    /// The filter sent bytes while no answer was awaited (after a final response, or for a
    /// command covered by a no-reply flag).
    Unsolicited {
        /// The response byte, when a whole packet had arrived.
        response: Option<u8>,
    },
    /// A modification needs an action flag the filter did not negotiate.
    ActionNotNegotiated {
        /// The response byte of the modification.
        response: u8,
        /// The action flag it needs.
        needs: Actions,
    },
    /// REPLBODY packets did not form one contiguous run (Postfix refuses this).
    SplitBodyReplacement,
    /// A REPLYCODE string is not `[45]DD` followed by a space, `-` or nothing.
    InvalidReplyCode(String),
    /// A string the client must interpret (reply text, header, address, macro list) is not
    /// UTF-8.
    InvalidUtf8 {
        /// The field.
        field: &'static str,
    },
    /// A body chunk handed to [`MilterClient::body`](super::MilterClient::body) is larger than
    /// 65535 bytes.
    ChunkTooLarge(usize),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(error) => write!(f, "milter stream failed: {error}"),
            Self::Timeout { command, after } => {
                write!(f, "filter did not answer {command:?} within {after:?}")
            }
            Self::InvalidSpec(error) => write!(f, "cannot connect to the filter: {error}"),
            Self::ConnectTimeout(after) => {
                write!(f, "could not connect to the filter within {after:?}")
            }
            Self::Closed { command } => {
                write!(
                    f,
                    "filter closed the connection while {command:?} awaited an answer"
                )
            }
            Self::Decode(error) => write!(f, "filter sent an invalid packet: {error}"),
            Self::Encode(error) => write!(f, "cannot encode command: {error}"),
            Self::Negotiation(error) => write!(f, "negotiation refused: {error}"),
            Self::NotNegotiated => f.write_str("command sent before negotiation"),
            Self::SessionClosed => f.write_str("the milter session is already over"),
            Self::UnexpectedResponse { command, response } => {
                write!(
                    f,
                    "response {} is not allowed in answer to {command:?}",
                    Byte(*response)
                )
            }
            Self::Unsolicited {
                response: Some(response),
            } => {
                write!(f, "filter sent an unsolicited response {}", Byte(*response))
            }
            Self::Unsolicited { response: None } => f.write_str("filter sent unsolicited bytes"),
            Self::ActionNotNegotiated { response, needs } => write!(
                f,
                "modification {} needs action {needs:?}, which was not negotiated",
                Byte(*response)
            ),
            Self::SplitBodyReplacement => {
                f.write_str("REPLBODY packets were interrupted by another response")
            }
            Self::InvalidReplyCode(text) => write!(f, "malformed REPLYCODE {text:?}"),
            Self::InvalidUtf8 { field } => write!(f, "{field} is not UTF-8"),
            Self::ChunkTooLarge(len) => {
                write!(f, "body chunk of {len} bytes exceeds the maximum of 65535")
            }
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(error) => Some(error),
            Self::InvalidSpec(error) => Some(error),
            Self::Decode(error) => Some(error),
            Self::Encode(error) => Some(error),
            Self::Negotiation(error) => Some(error),
            _ => None,
        }
    }
}

impl From<std::io::Error> for ClientError {
    fn from(error: std::io::Error) -> Self {
        Self::Io(error)
    }
}

impl From<SpecError> for ClientError {
    fn from(error: SpecError) -> Self {
        Self::InvalidSpec(error)
    }
}

impl From<DecodeError> for ClientError {
    fn from(error: DecodeError) -> Self {
        Self::Decode(error)
    }
}

impl From<EncodeError> for ClientError {
    fn from(error: EncodeError) -> Self {
        Self::Encode(error)
    }
}

impl From<NegotiationError> for ClientError {
    fn from(error: NegotiationError) -> Self {
        Self::Negotiation(error)
    }
}
