//! Commands: the packets the MTA sends to the filter (`SMFIC_*`), decoded and encoded.
//!
//! Decoding borrows from the payload and allocates nothing; lists (ESMTP arguments, macro
//! pairs) are checked once and then iterated in place.

use std::fmt;

use super::cursor::{CStrs, Reader, count_cstrs, put_cstr};
use super::error::{DecodeError, EncodeError};
use super::frame::{Frame, write_frame};
use super::negotiate::OptNeg;
use super::wire_str::WireStr;

/// Commands carry no 64 KiB cap: Postfix sends headers larger than that.
const MAX_COMMAND_PAYLOAD: usize = u32::MAX as usize - 1;

/// The code byte of a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CommandKind {
    /// `A`: the current message ends without end of message.
    Abort,
    /// `B`: a chunk of the body.
    Body,
    /// `C`: the SMTP client connected.
    Connect,
    /// `D`: macros for the command that follows.
    Macro,
    /// `E`: end of message.
    EndOfMessage,
    /// `H`: HELO or EHLO.
    Helo,
    /// `K`: the session ends and a new one follows on the same connection.
    QuitNewConnection,
    /// `L`: one header.
    Header,
    /// `M`: MAIL FROM.
    Mail,
    /// `N`: end of headers.
    EndOfHeaders,
    /// `O`: option negotiation.
    OptNeg,
    /// `Q`: the connection ends.
    Quit,
    /// `R`: RCPT TO.
    Rcpt,
    /// `T`: DATA.
    Data,
    /// `U`: an SMTP command the MTA does not know.
    Unknown,
}

impl CommandKind {
    /// Every command kind, for tables and tests.
    pub const ALL: [Self; 15] = [
        Self::Abort,
        Self::Body,
        Self::Connect,
        Self::Macro,
        Self::EndOfMessage,
        Self::Helo,
        Self::QuitNewConnection,
        Self::Header,
        Self::Mail,
        Self::EndOfHeaders,
        Self::OptNeg,
        Self::Quit,
        Self::Rcpt,
        Self::Data,
        Self::Unknown,
    ];

    /// Whether the MTA waits for a reply to this command (unless a no-reply flag says otherwise).
    #[must_use]
    pub const fn expects_reply(self) -> bool {
        !matches!(
            self,
            Self::Abort | Self::Macro | Self::Quit | Self::QuitNewConnection
        )
    }
}

impl TryFrom<u8> for CommandKind {
    type Error = DecodeError;

    fn try_from(byte: u8) -> Result<Self, DecodeError> {
        Ok(match byte {
            b'A' => Self::Abort,
            b'B' => Self::Body,
            b'C' => Self::Connect,
            b'D' => Self::Macro,
            b'E' => Self::EndOfMessage,
            b'H' => Self::Helo,
            b'K' => Self::QuitNewConnection,
            b'L' => Self::Header,
            b'M' => Self::Mail,
            b'N' => Self::EndOfHeaders,
            b'O' => Self::OptNeg,
            b'Q' => Self::Quit,
            b'R' => Self::Rcpt,
            b'T' => Self::Data,
            b'U' => Self::Unknown,
            other => return Err(DecodeError::UnknownCommand(other)),
        })
    }
}

impl From<CommandKind> for u8 {
    fn from(kind: CommandKind) -> u8 {
        match kind {
            CommandKind::Abort => b'A',
            CommandKind::Body => b'B',
            CommandKind::Connect => b'C',
            CommandKind::Macro => b'D',
            CommandKind::EndOfMessage => b'E',
            CommandKind::Helo => b'H',
            CommandKind::QuitNewConnection => b'K',
            CommandKind::Header => b'L',
            CommandKind::Mail => b'M',
            CommandKind::EndOfHeaders => b'N',
            CommandKind::OptNeg => b'O',
            CommandKind::Quit => b'Q',
            CommandKind::Rcpt => b'R',
            CommandKind::Data => b'T',
            CommandKind::Unknown => b'U',
        }
    }
}

/// A decoded command.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command<'a> {
    /// `O`: the MTA's offer.
    OptNeg(OptNeg),
    /// `D`: macros for the command that follows.
    Macro(Macros<'a>),
    /// `C`: the SMTP client.
    Connect(Connect<'a>),
    /// `H`: the HELO or EHLO argument.
    Helo(WireStr<'a>),
    /// `M`: the envelope sender.
    Mail(EnvelopeCommand<'a>),
    /// `R`: one envelope recipient.
    Rcpt(EnvelopeCommand<'a>),
    /// `T`: the client sent DATA.
    Data,
    /// `L`: one header.
    Header(Header<'a>),
    /// `N`: end of headers.
    EndOfHeaders,
    /// `B`: a body chunk, CRLF line ends, at most 65535 bytes.
    Body(&'a [u8]),
    /// `E`: end of message. MTAs send no payload; libmilter treats one as a last body chunk.
    EndOfMessage(&'a [u8]),
    /// `A`: the message ends without end of message.
    Abort,
    /// `Q`: the connection ends.
    Quit,
    /// `K`: the session ends; a CONNECT for a new one follows on this connection.
    QuitNewConnection,
    /// `U`: an SMTP command the MTA does not know (Sendmail: the line; Postfix: the word).
    Unknown(WireStr<'a>),
}

impl<'a> Command<'a> {
    /// The code byte of this command.
    #[must_use]
    pub fn kind(&self) -> CommandKind {
        match self {
            Self::OptNeg(_) => CommandKind::OptNeg,
            Self::Macro(_) => CommandKind::Macro,
            Self::Connect(_) => CommandKind::Connect,
            Self::Helo(_) => CommandKind::Helo,
            Self::Mail(_) => CommandKind::Mail,
            Self::Rcpt(_) => CommandKind::Rcpt,
            Self::Data => CommandKind::Data,
            Self::Header(_) => CommandKind::Header,
            Self::EndOfHeaders => CommandKind::EndOfHeaders,
            Self::Body(_) => CommandKind::Body,
            Self::EndOfMessage(_) => CommandKind::EndOfMessage,
            Self::Abort => CommandKind::Abort,
            Self::Quit => CommandKind::Quit,
            Self::QuitNewConnection => CommandKind::QuitNewConnection,
            Self::Unknown(_) => CommandKind::Unknown,
        }
    }

    /// Decodes a frame's payload.
    pub fn decode_frame(frame: &'a Frame) -> Result<Self, DecodeError> {
        Self::decode(frame.kind, &frame.payload)
    }

    /// Decodes the payload of a packet whose code byte is `kind`.
    pub fn decode(kind: u8, payload: &'a [u8]) -> Result<Self, DecodeError> {
        let kind = CommandKind::try_from(kind)?;
        let empty = |command: Self, packet| {
            if payload.is_empty() {
                Ok(command)
            } else {
                Err(DecodeError::TrailingData { packet })
            }
        };
        match kind {
            CommandKind::OptNeg => OptNeg::decode(payload).map(Self::OptNeg),
            CommandKind::Macro => Macros::decode(payload).map(Self::Macro),
            CommandKind::Connect => Connect::decode(payload).map(Self::Connect),
            CommandKind::Helo => decode_single(payload, "HELO", "name").map(Self::Helo),
            CommandKind::Mail => EnvelopeCommand::decode(payload, "MAIL").map(Self::Mail),
            CommandKind::Rcpt => EnvelopeCommand::decode(payload, "RCPT").map(Self::Rcpt),
            CommandKind::Data => empty(Self::Data, "DATA"),
            CommandKind::Header => Header::decode(payload).map(Self::Header),
            CommandKind::EndOfHeaders => empty(Self::EndOfHeaders, "EOH"),
            CommandKind::Body => Ok(Self::Body(payload)),
            CommandKind::EndOfMessage => Ok(Self::EndOfMessage(payload)),
            CommandKind::Abort => empty(Self::Abort, "ABORT"),
            CommandKind::Quit => empty(Self::Quit, "QUIT"),
            CommandKind::QuitNewConnection => empty(Self::QuitNewConnection, "QUIT_NC"),
            CommandKind::Unknown => decode_single(payload, "UNKNOWN", "command").map(Self::Unknown),
        }
    }

    /// Appends this command as one frame to `dst`.
    pub fn encode(&self, dst: &mut Vec<u8>) -> Result<(), EncodeError> {
        write_frame(dst, self.kind().into(), MAX_COMMAND_PAYLOAD, |dst| {
            match self {
                Self::OptNeg(offer) => offer.encode_payload(dst),
                Self::Macro(macros) => macros.encode_payload(dst)?,
                Self::Connect(connect) => connect.encode_payload(dst)?,
                Self::Helo(name) => put_cstr(dst, *name, "HELO name")?,
                Self::Mail(envelope) | Self::Rcpt(envelope) => envelope.encode_payload(dst)?,
                Self::Header(header) => header.encode_payload(dst)?,
                Self::Body(bytes) | Self::EndOfMessage(bytes) => dst.extend_from_slice(bytes),
                Self::Unknown(line) => put_cstr(dst, *line, "UNKNOWN command")?,
                Self::Data
                | Self::EndOfHeaders
                | Self::Abort
                | Self::Quit
                | Self::QuitNewConnection => {}
            }
            Ok(())
        })
    }
}

fn decode_single<'a>(
    payload: &'a [u8],
    packet: &'static str,
    field: &'static str,
) -> Result<WireStr<'a>, DecodeError> {
    let mut reader = Reader::new(payload, packet);
    let value = reader.take_cstr(field)?;
    reader.finish()?;
    Ok(value)
}

// ===== Macros =====

/// The payload of a MACRO packet: the command the macros belong to, then name/value pairs.
#[derive(Clone, Copy)]
pub struct Macros<'a> {
    command: u8,
    pairs: PairsRepr<'a>,
}

#[derive(Clone, Copy)]
enum PairsRepr<'a> {
    /// Checked wire bytes: an even number of NUL-terminated strings.
    Wire(&'a [u8]),
    /// Pairs given by a caller who builds a packet.
    Slice(&'a [(WireStr<'a>, WireStr<'a>)]),
}

impl<'a> Macros<'a> {
    /// Macros for the command with code byte `command` (`C`, `H`, `M`, …).
    #[must_use]
    pub const fn new(command: u8, pairs: &'a [(WireStr<'a>, WireStr<'a>)]) -> Self {
        Self {
            command,
            pairs: PairsRepr::Slice(pairs),
        }
    }

    /// The code byte of the command these macros belong to; any byte is accepted.
    #[must_use]
    pub const fn command(&self) -> u8 {
        self.command
    }

    /// The command these macros belong to, when it is a known one.
    #[must_use]
    pub fn command_kind(&self) -> Option<CommandKind> {
        CommandKind::try_from(self.command).ok()
    }

    /// The name/value pairs, in packet order. Names are as sent (`j`, `{daemon_name}`).
    #[must_use]
    pub fn pairs(&self) -> MacroPairs<'a> {
        MacroPairs {
            inner: match self.pairs {
                PairsRepr::Wire(raw) => PairsIter::Wire(CStrs::new(raw)),
                PairsRepr::Slice(pairs) => PairsIter::Slice(pairs.iter()),
            },
        }
    }

    /// Whether the packet holds no pairs (both MTAs send such packets).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.pairs().next().is_none()
    }

    fn decode(payload: &'a [u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(payload, "MACRO");
        let command = reader.take_u8("command code")?;
        let raw = reader.rest();
        match count_cstrs(raw) {
            None => Err(DecodeError::Truncated {
                packet: "MACRO",
                field: "macro pair",
            }),
            Some(count) if count % 2 == 1 => Err(DecodeError::UnpairedMacro),
            Some(_) => Ok(Self {
                command,
                pairs: PairsRepr::Wire(raw),
            }),
        }
    }

    fn encode_payload(&self, dst: &mut Vec<u8>) -> Result<(), EncodeError> {
        dst.push(self.command);
        for (name, value) in self.pairs() {
            put_cstr(dst, name, "macro name")?;
            put_cstr(dst, value, "macro value")?;
        }
        Ok(())
    }
}

impl PartialEq for Macros<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.command == other.command && self.pairs().eq(other.pairs())
    }
}

impl Eq for Macros<'_> {}

impl fmt::Debug for Macros<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Macros")
            .field("command", &super::error::Byte(self.command))
            .field("pairs", &self.pairs().collect::<Vec<_>>())
            .finish()
    }
}

/// Iterator over the pairs of a [`Macros`] packet.
#[derive(Clone, Debug)]
pub struct MacroPairs<'a> {
    inner: PairsIter<'a>,
}

#[derive(Clone, Debug)]
enum PairsIter<'a> {
    Wire(CStrs<'a>),
    Slice(std::slice::Iter<'a, (WireStr<'a>, WireStr<'a>)>),
}

impl<'a> Iterator for MacroPairs<'a> {
    type Item = (WireStr<'a>, WireStr<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            PairsIter::Wire(strs) => Some((strs.next()?, strs.next()?)),
            PairsIter::Slice(pairs) => pairs.next().copied(),
        }
    }
}

// ===== Connect =====

/// The address family in a CONNECT packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// `U`: unknown; the packet carries no port and no address.
    Unknown,
    /// `L`: a local (unix) socket; the address is a path.
    Unix,
    /// `4`: IPv4.
    Inet,
    /// `6`: IPv6.
    Inet6,
}

impl TryFrom<u8> for Family {
    type Error = DecodeError;

    fn try_from(byte: u8) -> Result<Self, DecodeError> {
        match byte {
            b'U' => Ok(Self::Unknown),
            b'L' => Ok(Self::Unix),
            b'4' => Ok(Self::Inet),
            b'6' => Ok(Self::Inet6),
            other => Err(DecodeError::UnknownFamily(other)),
        }
    }
}

impl From<Family> for u8 {
    fn from(family: Family) -> u8 {
        match family {
            Family::Unknown => b'U',
            Family::Unix => b'L',
            Family::Inet => b'4',
            Family::Inet6 => b'6',
        }
    }
}

/// The payload of a CONNECT packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Connect<'a> {
    /// The client's host name; `[192.0.2.1]` when it has no verified name.
    pub hostname: WireStr<'a>,
    /// The address family.
    pub family: Family,
    /// The client's port (0 for unix sockets and unknown families).
    pub port: u16,
    /// The client's address as text (empty for an unknown family). For family `6` a leading
    /// `IPv6:` (Sendmail's form, any case) is removed; other families keep their bytes.
    pub address: WireStr<'a>,
}

impl<'a> Connect<'a> {
    fn decode(payload: &'a [u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(payload, "CONNECT");
        let hostname = reader.take_cstr("hostname")?;
        let family = Family::try_from(reader.take_u8("family")?)?;
        let (port, address) = if family == Family::Unknown {
            (0, WireStr::default())
        } else {
            let port = reader.take_u16("port")?;
            let address = reader.take_cstr("address")?;
            let address = if family == Family::Inet6 {
                strip_ipv6_prefix(address)
            } else {
                address
            };
            (port, address)
        };
        reader.finish()?;
        Ok(Self {
            hostname,
            family,
            port,
            address,
        })
    }

    fn encode_payload(&self, dst: &mut Vec<u8>) -> Result<(), EncodeError> {
        put_cstr(dst, self.hostname, "hostname")?;
        dst.push(self.family.into());
        if self.family != Family::Unknown {
            dst.extend_from_slice(&self.port.to_be_bytes());
            put_cstr(dst, self.address, "address")?;
        }
        Ok(())
    }

    /// The address parsed as an IP address, when the family is IPv4 or IPv6 and it parses.
    #[must_use]
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        match self.family {
            Family::Inet | Family::Inet6 => self.address.to_str().ok()?.parse().ok(),
            Family::Unknown | Family::Unix => None,
        }
    }
}

/// Sendmail writes IPv6 addresses as `IPv6:2001:db8::1`; libmilter strips the prefix (only for
/// family `6`, in `mi_inet_pton`), and so do we. A unix socket path is never altered.
fn strip_ipv6_prefix(address: WireStr<'_>) -> WireStr<'_> {
    const PREFIX: &[u8] = b"IPv6:";
    let bytes = address.as_bytes();
    match bytes.get(..PREFIX.len()) {
        Some(head) if head.eq_ignore_ascii_case(PREFIX) => {
            WireStr::new(bytes.get(PREFIX.len()..).unwrap_or_default())
        }
        _ => address,
    }
}

// ===== EnvelopeCommand =====

/// The payload of MAIL and RCPT: the address, then ESMTP arguments, each its own string.
#[derive(Clone, Copy)]
pub struct EnvelopeCommand<'a> {
    /// The address as the client wrote it, normally with angle brackets (`<>` for the null
    /// sender); Postfix's non-SMTP path sends it bare.
    pub address: WireStr<'a>,
    args: ArgsRepr<'a>,
}

#[derive(Clone, Copy)]
enum ArgsRepr<'a> {
    Wire(&'a [u8]),
    Slice(&'a [WireStr<'a>]),
}

impl<'a> EnvelopeCommand<'a> {
    /// An envelope address with ESMTP arguments such as `SIZE=1234`.
    #[must_use]
    pub const fn new(address: WireStr<'a>, args: &'a [WireStr<'a>]) -> Self {
        Self {
            address,
            args: ArgsRepr::Slice(args),
        }
    }

    /// The ESMTP arguments in order (`SIZE=1234`, `BODY=8BITMIME`).
    #[must_use]
    pub fn args(&self) -> EnvelopeArgs<'a> {
        EnvelopeArgs {
            inner: match self.args {
                ArgsRepr::Wire(raw) => ArgsIter::Wire(CStrs::new(raw)),
                ArgsRepr::Slice(args) => ArgsIter::Slice(args.iter()),
            },
        }
    }

    fn decode(payload: &'a [u8], packet: &'static str) -> Result<Self, DecodeError> {
        if payload.is_empty() {
            return Err(DecodeError::MissingAddress { packet });
        }
        let mut reader = Reader::new(payload, packet);
        let address = reader.take_cstr("address")?;
        let raw = reader.rest();
        if count_cstrs(raw).is_none() {
            return Err(DecodeError::Truncated {
                packet,
                field: "ESMTP argument",
            });
        }
        Ok(Self {
            address,
            args: ArgsRepr::Wire(raw),
        })
    }

    fn encode_payload(&self, dst: &mut Vec<u8>) -> Result<(), EncodeError> {
        put_cstr(dst, self.address, "address")?;
        for arg in self.args() {
            put_cstr(dst, arg, "ESMTP argument")?;
        }
        Ok(())
    }
}

impl PartialEq for EnvelopeCommand<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.address == other.address && self.args().eq(other.args())
    }
}

impl Eq for EnvelopeCommand<'_> {}

impl fmt::Debug for EnvelopeCommand<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvelopeCommand")
            .field("address", &self.address)
            .field("args", &self.args().collect::<Vec<_>>())
            .finish()
    }
}

/// Iterator over the ESMTP arguments of an [`EnvelopeCommand`].
#[derive(Clone, Debug)]
pub struct EnvelopeArgs<'a> {
    inner: ArgsIter<'a>,
}

#[derive(Clone, Debug)]
enum ArgsIter<'a> {
    Wire(CStrs<'a>),
    Slice(std::slice::Iter<'a, WireStr<'a>>),
}

impl<'a> Iterator for EnvelopeArgs<'a> {
    type Item = WireStr<'a>;

    fn next(&mut self) -> Option<WireStr<'a>> {
        match &mut self.inner {
            ArgsIter::Wire(strs) => strs.next(),
            ArgsIter::Slice(args) => args.next().copied(),
        }
    }
}

// ===== Header =====

/// The payload of a HEADER packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    /// The name as in the message, without the colon.
    pub name: WireStr<'a>,
    /// The value: one leading space removed unless leading space was negotiated; folded lines
    /// joined by a bare LF followed by their original whitespace.
    pub value: WireStr<'a>,
}

impl<'a> Header<'a> {
    fn decode(payload: &'a [u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(payload, "HEADER");
        let name = reader.take_cstr("name")?;
        let value = reader.take_cstr("value")?;
        reader.finish()?;
        Ok(Self { name, value })
    }

    fn encode_payload(&self, dst: &mut Vec<u8>) -> Result<(), EncodeError> {
        put_cstr(dst, self.name, "header name")?;
        put_cstr(dst, self.value, "header value")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect_payload(family: u8, address: &[u8]) -> Vec<u8> {
        let mut payload = b"host\0".to_vec();
        payload.push(family);
        payload.extend_from_slice(&25u16.to_be_bytes());
        payload.extend_from_slice(address);
        payload.push(0);
        payload
    }

    #[test]
    fn ipv6_prefix_is_stripped_for_family_6_only() {
        let v6 = connect_payload(b'6', b"ipv6:2001:db8::1");
        let Command::Connect(connect) = Command::decode(b'C', &v6).unwrap() else {
            panic!("not a CONNECT");
        };
        assert_eq!(connect.address, "2001:db8::1");

        // A unix socket path that happens to start with the prefix is a path, not an address.
        let unix = connect_payload(b'L', b"IPv6:/run/sock");
        let Command::Connect(connect) = Command::decode(b'C', &unix).unwrap() else {
            panic!("not a CONNECT");
        };
        assert_eq!(connect.address, "IPv6:/run/sock");
        let mut wire = Vec::new();
        Command::Connect(connect).encode(&mut wire).unwrap();
        assert_eq!(wire.get(5..), Some(&unix[..]));
    }
}
