//! Errors of the protocol layer: what the peer sent wrong apart from what the caller asked wrong.

use std::fmt;

/// The peer sent bytes that are not a valid milter packet.
///
/// Every variant means the stream can no longer be trusted: the connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// A frame announced a length of zero; even an empty packet carries its code byte.
    EmptyFrame,
    /// A frame announced more bytes than the configured maximum.
    FrameTooLong {
        /// The announced length (code byte plus payload).
        len: u32,
        /// The configured maximum.
        max: u32,
    },
    /// A command byte this library does not know.
    UnknownCommand(u8),
    /// A response byte this library does not know.
    UnknownResponse(u8),
    /// The payload ended before a field was complete.
    Truncated {
        /// The packet being decoded.
        packet: &'static str,
        /// The field that was cut short.
        field: &'static str,
    },
    /// Bytes were left over after the last field.
    TrailingData {
        /// The packet being decoded.
        packet: &'static str,
    },
    /// A CONNECT packet named an address family other than `U`, `L`, `4` or `6`.
    UnknownFamily(u8),
    /// A MAIL or RCPT packet held no address.
    MissingAddress {
        /// The packet being decoded.
        packet: &'static str,
    },
    /// A MACRO packet held a name without a value.
    UnpairedMacro,
    /// An OPTNEG reply requested macros for a stage number that does not exist.
    UnknownMacroStage(u32),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyFrame => f.write_str("frame length is zero"),
            Self::FrameTooLong { len, max } => {
                write!(f, "frame length {len} exceeds the maximum of {max}")
            }
            Self::UnknownCommand(byte) => write!(f, "unknown command byte {}", Byte(*byte)),
            Self::UnknownResponse(byte) => write!(f, "unknown response byte {}", Byte(*byte)),
            Self::Truncated { packet, field } => write!(f, "{packet} packet ends inside {field}"),
            Self::TrailingData { packet } => write!(f, "{packet} packet has trailing bytes"),
            Self::UnknownFamily(byte) => write!(f, "unknown address family {}", Byte(*byte)),
            Self::MissingAddress { packet } => write!(f, "{packet} packet holds no address"),
            Self::UnpairedMacro => f.write_str("macro packet has a name without a value"),
            Self::UnknownMacroStage(stage) => write!(f, "unknown macro stage {stage}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// A value handed to an encoder cannot be put on the wire.
///
/// This is the caller's mistake, never the peer's.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// A string field contains a NUL byte, which would end it early on the wire.
    InteriorNul {
        /// The field.
        field: &'static str,
    },
    /// A field that must not be empty is empty (a header name, a quarantine reason).
    Empty {
        /// The field.
        field: &'static str,
    },
    /// A field holds a byte it must not (a colon or space in a header name, a line break
    /// that would start a new header).
    InvalidByte {
        /// The field.
        field: &'static str,
    },
    /// The packet would be longer than the length field or the agreed maximum allows.
    TooLong {
        /// The payload length that was asked for.
        len: usize,
        /// The maximum allowed.
        max: usize,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InteriorNul { field } => write!(f, "{field} contains a NUL byte"),
            Self::Empty { field } => write!(f, "{field} must not be empty"),
            Self::InvalidByte { field } => write!(f, "{field} contains a byte it must not"),
            Self::TooLong { len, max } => {
                write!(f, "payload of {len} bytes exceeds the maximum of {max}")
            }
        }
    }
}

impl std::error::Error for EncodeError {}

/// Prints a wire byte as a character where it is printable, so logs show `b'L'`, not `76`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Byte(pub u8);

impl fmt::Display for Byte {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_ascii_graphic() {
            write!(f, "b'{}'", char::from(self.0))
        } else {
            write!(f, "0x{:02x}", self.0)
        }
    }
}

impl fmt::Debug for Byte {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
