//! The milter protocol as bytes: frames, commands, responses, negotiation and reply codes.
//!
//! This module performs no I/O, is not async and reads no clock. Bytes come in through
//! [`FrameDecoder::push`] (or [`FrameDecoder::spare`]), frames come out of
//! [`FrameDecoder::decode`], and encoders append to a caller's `Vec<u8>`:
//!
//! ```text
//!  socket bytes ──► FrameDecoder ──► Frame ──► Command::decode ──► Command<'_>
//!  Vec<u8> ◄── Response::encode ◄── Response<'_>
//! ```
//!
//! Both directions decode and encode, so the MTA side (tests, the test kit) is as cheap to
//! write as the filter side. Wire strings are [`WireStr`] bytes with UTF-8 accessors.
//!
//! ```
//! use async_milter::proto::{Command, FrameDecoder, Response};
//!
//! // The MTA says HELO; the filter answers CONTINUE.
//! let mut wire = Vec::new();
//! Command::Helo("client.example.com".into()).encode(&mut wire)?;
//!
//! let mut decoder = FrameDecoder::new();
//! decoder.push(&wire);
//! let frame = decoder.decode()?.expect("one whole frame");
//! assert_eq!(Command::decode_frame(&frame)?, Command::Helo("client.example.com".into()));
//!
//! let mut reply = Vec::new();
//! Response::Continue.encode(&mut reply)?;
//! assert_eq!(reply, [0, 0, 0, 1, b'c']);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// Peer input must never panic this layer: no indexing, no unwrap.
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]
#![cfg_attr(
    test,
    allow(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

mod command;
mod cursor;
mod error;
mod flags;
mod frame;
mod negotiate;
mod reply_code;
mod response;
mod wire_str;

pub use command::{
    Command, CommandKind, Connect, EnvelopeArgs, EnvelopeCommand, Family, Header, MacroPairs,
    Macros,
};
pub use error::{Byte, DecodeError, EncodeError};
pub use flags::{Actions, Events, ProtocolFlags};
pub use frame::{
    DEFAULT_MAX_FRAME_LEN, FRAME_HEADER_LEN, Frame, FrameDecoder, MAX_BODY_CHUNK,
    MAX_RESPONSE_PAYLOAD, Spare,
};
pub use negotiate::{
    Agreed, MIN_PROTOCOL_VERSION, MacroStage, Needs, NegotiateError, OptNeg, OptNegReply,
    PROTOCOL_VERSION, event_of, negotiate,
};
pub use reply_code::{MAX_REPLY_LINE, MAX_REPLY_LINES, ReplyCode, ReplyCodeError};
pub use response::{Response, ResponseKind, encode_replace_body};
pub use wire_str::WireStr;
