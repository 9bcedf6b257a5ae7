//! Events: decoded commands in owned form, as the session receives them.

use bytes::Bytes;

use super::text::Text;
use crate::proto::{Command, Connect, EnvelopeCommand, Family, Frame, MacroStage};

/// The SMTP client, as the MTA describes it at connect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    /// Host name: the verified name, or `[address]` when there is none.
    pub hostname: Text,
    /// Address family.
    pub family: Family,
    /// TCP port (0 for unix sockets and unknown families).
    pub port: u16,
    /// Address as text (IPv6 without Sendmail's `IPv6:` prefix), or a socket path.
    pub address: Text,
}

impl Client {
    /// The address as an IP address, when it is one.
    #[must_use]
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        match self.family {
            Family::Inet | Family::Inet6 => self.address.to_str().ok()?.parse().ok(),
            Family::Unknown | Family::Unix => None,
        }
    }
}

/// An envelope address (MAIL FROM or RCPT TO) with its ESMTP arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    /// The address as the client wrote it, normally in angle brackets (`<>` for the null
    /// sender).
    pub address: Text,
    /// ESMTP arguments such as `SIZE=1234`, in order.
    pub args: Vec<Text>,
}

impl Address {
    /// The address without angle brackets, as UTF-8 when it is.
    #[must_use]
    pub fn bare(&self) -> Option<&str> {
        let text = self.address.to_str().ok()?;
        Some(
            text.strip_prefix('<')
                .and_then(|t| t.strip_suffix('>'))
                .unwrap_or(text),
        )
    }
}

/// One command, owned, ready to hand to a session.
#[derive(Clone, Debug)]
pub(crate) enum Event {
    Macro { stage: MacroStage, raw: Bytes },
    Connect(Client),
    Helo(Text),
    Mail(Address),
    Rcpt(Address),
    Data,
    Header { name: Text, value: Text },
    EndOfHeaders,
    Body(Bytes),
    EndOfMessage(Bytes),
    Unknown(Text),
}

impl Event {
    /// Builds the event for a decoded command; `frame` is the frame it was decoded from, so
    /// byte payloads are shared rather than copied. Commands that are not events (OPTNEG,
    /// ABORT, QUIT) and macros for commands that have no stage give `None`.
    pub(crate) fn from_command(command: &Command<'_>, frame: &Frame) -> Option<Self> {
        let share = |slice: &[u8]| frame.payload.slice_ref(slice);
        let text = |slice: &[u8]| Text::new(share(slice));
        Some(match command {
            Command::Macro(macros) => {
                let stage = MacroStage::for_command(macros.command_kind()?)?;
                // The pairs start after the command byte.
                Self::Macro {
                    stage,
                    raw: frame.payload.slice(1..),
                }
            }
            Command::Connect(connect) => Self::Connect(client(connect, text)),
            Command::Helo(name) => Self::Helo(text(name.as_bytes())),
            Command::Mail(envelope) => Self::Mail(address(envelope, text)),
            Command::Rcpt(envelope) => Self::Rcpt(address(envelope, text)),
            Command::Data => Self::Data,
            Command::Header(header) => Self::Header {
                name: text(header.name.as_bytes()),
                value: text(header.value.as_bytes()),
            },
            Command::EndOfHeaders => Self::EndOfHeaders,
            Command::Body(chunk) => Self::Body(share(chunk)),
            Command::EndOfMessage(chunk) => Self::EndOfMessage(share(chunk)),
            Command::Unknown(line) => Self::Unknown(text(line.as_bytes())),
            _ => return None,
        })
    }
}

fn client(connect: &Connect<'_>, text: impl Fn(&[u8]) -> Text) -> Client {
    Client {
        hostname: text(connect.hostname.as_bytes()),
        family: connect.family,
        port: connect.port,
        address: text(connect.address.as_bytes()),
    }
}

fn address(envelope: &EnvelopeCommand<'_>, text: impl Fn(&[u8]) -> Text) -> Address {
    Address {
        address: text(envelope.address.as_bytes()),
        args: envelope.args().map(|arg| text(arg.as_bytes())).collect(),
    }
}
