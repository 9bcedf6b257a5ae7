//! Responses: the packets the filter sends to the MTA (`SMFIR_*` and the OPTNEG reply).

use super::cursor::{Reader, put_cstr, put_nonempty_cstr};
use super::error::{DecodeError, EncodeError};
use super::frame::{Frame, MAX_RESPONSE_PAYLOAD, write_frame};
use super::negotiate::OptNegReply;
use super::wire_str::WireStr;

/// The code byte of a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ResponseKind {
    /// `+` add a recipient.
    AddRcpt,
    /// `-` remove a recipient.
    DeleteRcpt,
    /// `2` add a recipient with ESMTP arguments.
    AddRcptWithArgs,
    /// `4` shut the SMTP session down (Postfix only).
    Shutdown,
    /// `a` accept.
    Accept,
    /// `b` a piece of the replacement body.
    ReplaceBody,
    /// `c` continue.
    Continue,
    /// `d` discard the message.
    Discard,
    /// `e` change the envelope sender.
    ChangeFrom,
    /// `h` add a header at the end.
    AddHeader,
    /// `i` insert a header at an index.
    InsertHeader,
    /// `m` change or delete a header.
    ChangeHeader,
    /// `O` the negotiation reply.
    OptNeg,
    /// `p` still working.
    Progress,
    /// `q` quarantine the message.
    Quarantine,
    /// `r` reject.
    Reject,
    /// `s` skip the rest of the body.
    Skip,
    /// `t` temporary failure.
    Tempfail,
    /// `y` a custom SMTP reply.
    ReplyCode,
}

impl ResponseKind {
    /// Every response kind.
    pub const ALL: [Self; 19] = [
        Self::AddRcpt,
        Self::DeleteRcpt,
        Self::AddRcptWithArgs,
        Self::Shutdown,
        Self::Accept,
        Self::ReplaceBody,
        Self::Continue,
        Self::Discard,
        Self::ChangeFrom,
        Self::AddHeader,
        Self::InsertHeader,
        Self::ChangeHeader,
        Self::OptNeg,
        Self::Progress,
        Self::Quarantine,
        Self::Reject,
        Self::Skip,
        Self::Tempfail,
        Self::ReplyCode,
    ];

    /// Whether this response ends the answer to a command (as opposed to a modification or
    /// progress report that comes before the final answer).
    #[must_use]
    pub const fn is_final(self) -> bool {
        matches!(
            self,
            Self::Accept
                | Self::Continue
                | Self::Discard
                | Self::Reject
                | Self::Tempfail
                | Self::ReplyCode
                | Self::Skip
                | Self::Shutdown
                | Self::OptNeg
        )
    }
}

impl TryFrom<u8> for ResponseKind {
    type Error = DecodeError;

    fn try_from(byte: u8) -> Result<Self, DecodeError> {
        Ok(match byte {
            b'+' => Self::AddRcpt,
            b'-' => Self::DeleteRcpt,
            b'2' => Self::AddRcptWithArgs,
            b'4' => Self::Shutdown,
            b'a' => Self::Accept,
            b'b' => Self::ReplaceBody,
            b'c' => Self::Continue,
            b'd' => Self::Discard,
            b'e' => Self::ChangeFrom,
            b'h' => Self::AddHeader,
            b'i' => Self::InsertHeader,
            b'm' => Self::ChangeHeader,
            b'O' => Self::OptNeg,
            b'p' => Self::Progress,
            b'q' => Self::Quarantine,
            b'r' => Self::Reject,
            b's' => Self::Skip,
            b't' => Self::Tempfail,
            b'y' => Self::ReplyCode,
            other => return Err(DecodeError::UnknownResponse(other)),
        })
    }
}

impl From<ResponseKind> for u8 {
    fn from(kind: ResponseKind) -> u8 {
        match kind {
            ResponseKind::AddRcpt => b'+',
            ResponseKind::DeleteRcpt => b'-',
            ResponseKind::AddRcptWithArgs => b'2',
            ResponseKind::Shutdown => b'4',
            ResponseKind::Accept => b'a',
            ResponseKind::ReplaceBody => b'b',
            ResponseKind::Continue => b'c',
            ResponseKind::Discard => b'd',
            ResponseKind::ChangeFrom => b'e',
            ResponseKind::AddHeader => b'h',
            ResponseKind::InsertHeader => b'i',
            ResponseKind::ChangeHeader => b'm',
            ResponseKind::OptNeg => b'O',
            ResponseKind::Progress => b'p',
            ResponseKind::Quarantine => b'q',
            ResponseKind::Reject => b'r',
            ResponseKind::Skip => b's',
            ResponseKind::Tempfail => b't',
            ResponseKind::ReplyCode => b'y',
        }
    }
}

/// A decoded response.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Response<'a> {
    /// `O`: the negotiation reply.
    OptNeg(OptNegReply<'a>),
    /// `c`: go on (at end of message: accept).
    Continue,
    /// `a`: accept; no more events for this message (or session, at CONNECT/HELO).
    Accept,
    /// `r`: reject (at RCPT: this recipient only).
    Reject,
    /// `t`: temporary failure (at RCPT: this recipient only).
    Tempfail,
    /// `d`: accept and drop the whole message.
    Discard,
    /// `s`: send no more body chunks.
    Skip,
    /// `p`: still working; the MTA restarts its read timeout.
    Progress,
    /// `4`: close the SMTP session with 421 (Postfix only; use a 421 reply code elsewhere).
    Shutdown,
    /// `y`: a custom SMTP reply such as `550 5.7.1 go away`, `%` already doubled.
    ReplyCode(WireStr<'a>),
    /// `q`: hold the message, with a reason.
    Quarantine(WireStr<'a>),
    /// `h`: add a header after the existing ones.
    AddHeader {
        /// Header name.
        name: WireStr<'a>,
        /// Header value.
        value: WireStr<'a>,
    },
    /// `i`: insert a header at a 0-based position.
    InsertHeader {
        /// 0 for the top; larger values put it after that many headers.
        index: u32,
        /// Header name.
        name: WireStr<'a>,
        /// Header value.
        value: WireStr<'a>,
    },
    /// `m`: change (or, with an empty value, delete) the `index`-th header of that name.
    ChangeHeader {
        /// 1-based index among headers of this name, case-insensitive.
        index: u32,
        /// Header name.
        name: WireStr<'a>,
        /// New value; empty deletes.
        value: WireStr<'a>,
    },
    /// `+`: add a recipient.
    AddRcpt(WireStr<'a>),
    /// `2`: add a recipient with ESMTP arguments (one space-separated string).
    AddRcptWithArgs {
        /// The recipient.
        rcpt: WireStr<'a>,
        /// ESMTP arguments such as `NOTIFY=NEVER`.
        args: Option<WireStr<'a>>,
    },
    /// `-`: remove a recipient.
    DeleteRcpt(WireStr<'a>),
    /// `e`: change the envelope sender, with optional ESMTP arguments in one string.
    ChangeFrom {
        /// The new sender.
        sender: WireStr<'a>,
        /// ESMTP arguments such as `RET=HDRS`.
        args: Option<WireStr<'a>>,
    },
    /// `b`: one piece of the replacement body (see [`encode_replace_body`] to split a body).
    ReplaceBody(&'a [u8]),
}

impl<'a> Response<'a> {
    /// The code byte of this response.
    #[must_use]
    pub fn kind(&self) -> ResponseKind {
        match self {
            Self::OptNeg(_) => ResponseKind::OptNeg,
            Self::Continue => ResponseKind::Continue,
            Self::Accept => ResponseKind::Accept,
            Self::Reject => ResponseKind::Reject,
            Self::Tempfail => ResponseKind::Tempfail,
            Self::Discard => ResponseKind::Discard,
            Self::Skip => ResponseKind::Skip,
            Self::Progress => ResponseKind::Progress,
            Self::Shutdown => ResponseKind::Shutdown,
            Self::ReplyCode(_) => ResponseKind::ReplyCode,
            Self::Quarantine(_) => ResponseKind::Quarantine,
            Self::AddHeader { .. } => ResponseKind::AddHeader,
            Self::InsertHeader { .. } => ResponseKind::InsertHeader,
            Self::ChangeHeader { .. } => ResponseKind::ChangeHeader,
            Self::AddRcpt(_) => ResponseKind::AddRcpt,
            Self::AddRcptWithArgs { .. } => ResponseKind::AddRcptWithArgs,
            Self::DeleteRcpt(_) => ResponseKind::DeleteRcpt,
            Self::ChangeFrom { .. } => ResponseKind::ChangeFrom,
            Self::ReplaceBody(_) => ResponseKind::ReplaceBody,
        }
    }

    /// Decodes a frame's payload.
    pub fn decode_frame(frame: &'a Frame) -> Result<Self, DecodeError> {
        Self::decode(frame.kind, &frame.payload)
    }

    /// Decodes the payload of a packet whose code byte is `kind`.
    pub fn decode(kind: u8, payload: &'a [u8]) -> Result<Self, DecodeError> {
        let kind = ResponseKind::try_from(kind)?;
        let mut reader = Reader::new(payload, packet_name(kind));
        let response = match kind {
            ResponseKind::OptNeg => return OptNegReply::decode(payload).map(Self::OptNeg),
            ResponseKind::ReplaceBody => return Ok(Self::ReplaceBody(payload)),
            ResponseKind::Continue => Self::Continue,
            ResponseKind::Accept => Self::Accept,
            ResponseKind::Reject => Self::Reject,
            ResponseKind::Tempfail => Self::Tempfail,
            ResponseKind::Discard => Self::Discard,
            ResponseKind::Skip => Self::Skip,
            ResponseKind::Progress => Self::Progress,
            ResponseKind::Shutdown => Self::Shutdown,
            ResponseKind::ReplyCode => Self::ReplyCode(reader.take_cstr("reply")?),
            ResponseKind::Quarantine => Self::Quarantine(reader.take_cstr("reason")?),
            ResponseKind::AddHeader => Self::AddHeader {
                name: reader.take_cstr("name")?,
                value: reader.take_cstr("value")?,
            },
            ResponseKind::InsertHeader => Self::InsertHeader {
                index: reader.take_u32("index")?,
                name: reader.take_cstr("name")?,
                value: reader.take_cstr("value")?,
            },
            ResponseKind::ChangeHeader => Self::ChangeHeader {
                index: reader.take_u32("index")?,
                name: reader.take_cstr("name")?,
                value: reader.take_cstr("value")?,
            },
            ResponseKind::AddRcpt => Self::AddRcpt(reader.take_cstr("recipient")?),
            ResponseKind::AddRcptWithArgs => Self::AddRcptWithArgs {
                rcpt: reader.take_cstr("recipient")?,
                args: reader.take_optional_cstr("arguments")?,
            },
            ResponseKind::DeleteRcpt => Self::DeleteRcpt(reader.take_cstr("recipient")?),
            ResponseKind::ChangeFrom => Self::ChangeFrom {
                sender: reader.take_cstr("sender")?,
                args: reader.take_optional_cstr("arguments")?,
            },
        };
        reader.finish()?;
        Ok(response)
    }

    /// Appends this response as one frame to `dst`.
    ///
    /// Payloads over 65535 bytes are refused: an MTA without negotiated larger sizes treats
    /// them as an error.
    pub fn encode(&self, dst: &mut Vec<u8>) -> Result<(), EncodeError> {
        write_frame(dst, self.kind().into(), MAX_RESPONSE_PAYLOAD, |dst| {
            match self {
                Self::OptNeg(reply) => reply.encode_payload(dst)?,
                Self::Continue
                | Self::Accept
                | Self::Reject
                | Self::Tempfail
                | Self::Discard
                | Self::Skip
                | Self::Progress
                | Self::Shutdown => {}
                Self::ReplyCode(text) => put_nonempty_cstr(dst, *text, "reply")?,
                Self::Quarantine(reason) => put_nonempty_cstr(dst, *reason, "quarantine reason")?,
                Self::AddHeader { name, value } => {
                    put_nonempty_cstr(dst, *name, "header name")?;
                    put_cstr(dst, *value, "header value")?;
                }
                Self::InsertHeader { index, name, value }
                | Self::ChangeHeader { index, name, value } => {
                    dst.extend_from_slice(&index.to_be_bytes());
                    put_nonempty_cstr(dst, *name, "header name")?;
                    put_cstr(dst, *value, "header value")?;
                }
                Self::AddRcpt(rcpt) | Self::DeleteRcpt(rcpt) => {
                    put_nonempty_cstr(dst, *rcpt, "recipient")?;
                }
                Self::AddRcptWithArgs { rcpt, args } => {
                    put_nonempty_cstr(dst, *rcpt, "recipient")?;
                    if let Some(args) = args {
                        put_cstr(dst, *args, "ESMTP arguments")?;
                    }
                }
                Self::ChangeFrom { sender, args } => {
                    put_cstr(dst, *sender, "sender")?;
                    if let Some(args) = args {
                        put_cstr(dst, *args, "ESMTP arguments")?;
                    }
                }
                Self::ReplaceBody(bytes) => dst.extend_from_slice(bytes),
            }
            Ok(())
        })
    }
}

fn packet_name(kind: ResponseKind) -> &'static str {
    match kind {
        ResponseKind::AddRcpt => "ADDRCPT",
        ResponseKind::DeleteRcpt => "DELRCPT",
        ResponseKind::AddRcptWithArgs => "ADDRCPT_PAR",
        ResponseKind::Shutdown => "SHUTDOWN",
        ResponseKind::Accept => "ACCEPT",
        ResponseKind::ReplaceBody => "REPLBODY",
        ResponseKind::Continue => "CONTINUE",
        ResponseKind::Discard => "DISCARD",
        ResponseKind::ChangeFrom => "CHGFROM",
        ResponseKind::AddHeader => "ADDHEADER",
        ResponseKind::InsertHeader => "INSHEADER",
        ResponseKind::ChangeHeader => "CHGHEADER",
        ResponseKind::OptNeg => "OPTNEG reply",
        ResponseKind::Progress => "PROGRESS",
        ResponseKind::Quarantine => "QUARANTINE",
        ResponseKind::Reject => "REJECT",
        ResponseKind::Skip => "SKIP",
        ResponseKind::Tempfail => "TEMPFAIL",
        ResponseKind::ReplyCode => "REPLYCODE",
    }
}

/// Appends `body` as REPLBODY frames of at most `max_chunk` bytes each (65535 unless a larger
/// size was negotiated). An empty body becomes one empty frame, which empties the message.
pub fn encode_replace_body(
    body: &[u8],
    max_chunk: usize,
    dst: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let max_chunk = max_chunk.clamp(1, MAX_RESPONSE_PAYLOAD);
    if body.is_empty() {
        return Response::ReplaceBody(body).encode(dst);
    }
    for chunk in body.chunks(max_chunk) {
        Response::ReplaceBody(chunk).encode(dst)?;
    }
    Ok(())
}
