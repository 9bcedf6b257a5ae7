//! Shared by the protocol tests: one sample of every command and response (with the variants
//! the protocol reference describes), encoders that panic on error, and a tiny seeded PRNG.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use async_milter::proto::{
    Actions, Command, Connect, EnvelopeCommand, Family, Header, MacroStage, Macros, OptNeg,
    OptNegReply, ProtocolFlags, Response, WireStr,
};

const fn s(bytes: &'static [u8]) -> WireStr<'static> {
    WireStr::new(bytes)
}

static NO_ARGS: [WireStr<'static>; 0] = [];
static MAIL_ARGS: [WireStr<'static>; 2] = [s(b"SIZE=1234"), s(b"BODY=8BITMIME")];
static RCPT_ARGS: [WireStr<'static>; 2] = [s(b"NOTIFY=NEVER"), s(b"ORCPT=rfc822;bob@example.net")];
static NO_MACROS: [(WireStr<'static>, WireStr<'static>); 0] = [];
static CONNECT_MACROS: [(WireStr<'static>, WireStr<'static>); 3] = [
    (s(b"j"), s(b"mx.example.net")),
    (s(b"{daemon_name}"), s(b"smtpd")),
    (s(b"_"), s(b"client.example.com [192.0.2.1]")),
];
static QUEUE_ID: [(WireStr<'static>, WireStr<'static>); 1] = [(s(b"i"), s(b"4Xyz1234"))];
/// The OPTNEG reply tail libmilter produced for `smfi_setsymlist(SMFIM_ENVRCPT, "{rcpt_addr} i")`
/// and `smfi_setsymlist(SMFIM_EOM, "")` (protocol reference §7).
static MACRO_REQUESTS: [(MacroStage, WireStr<'static>); 2] = [
    (MacroStage::Rcpt, s(b"{rcpt_addr} i")),
    (MacroStage::EndOfMessage, s(b"")),
];
static NO_REQUESTS: [(MacroStage, WireStr<'static>); 0] = [];

/// One sample of every command, covering the cases the protocol reference lists.
pub(crate) fn commands() -> Vec<Command<'static>> {
    vec![
        Command::OptNeg(OptNeg::VERSION_6),
        Command::OptNeg(OptNeg {
            version: 2,
            actions: Actions::V6,
            protocol: ProtocolFlags::from_bits(0x7F),
        }),
        Command::Macro(Macros::new(b'C', &CONNECT_MACROS)),
        Command::Macro(Macros::new(b'H', &NO_MACROS)),
        // Postfix sends macros before HEADER, BODY and UNKNOWN too, often with no pairs.
        Command::Macro(Macros::new(b'L', &NO_MACROS)),
        Command::Macro(Macros::new(b'B', &QUEUE_ID)),
        Command::Macro(Macros::new(b'U', &NO_MACROS)),
        Command::Macro(Macros::new(b'E', &QUEUE_ID)),
        Command::Connect(Connect {
            hostname: s(b"unknown"),
            family: Family::Unknown,
            port: 0,
            address: s(b""),
        }),
        Command::Connect(Connect {
            hostname: s(b"localhost"),
            family: Family::Unix,
            port: 0,
            address: s(b"/var/run/smtp.sock"),
        }),
        Command::Connect(Connect {
            hostname: s(b"client.example.com"),
            family: Family::Inet,
            port: 50000,
            address: s(b"192.0.2.1"),
        }),
        Command::Connect(Connect {
            hostname: s(b"[2001:db8::1]"),
            family: Family::Inet6,
            port: 25,
            address: s(b"2001:db8::1"),
        }),
        Command::Helo(s(b"client.example.com")),
        Command::Mail(EnvelopeCommand::new(s(b"<alice@example.com>"), &MAIL_ARGS)),
        Command::Mail(EnvelopeCommand::new(s(b"<>"), &NO_ARGS)),
        Command::Rcpt(EnvelopeCommand::new(s(b"<bob@example.net>"), &RCPT_ARGS)),
        // Postfix's non-SMTP path sends the address without brackets.
        Command::Rcpt(EnvelopeCommand::new(s(b"bob@example.net"), &NO_ARGS)),
        Command::Data,
        Command::Header(Header {
            name: s(b"Subject"),
            value: s(b"Hi"),
        }),
        // A folded header: continuation joined with a bare LF, whitespace kept.
        Command::Header(Header {
            name: s(b"Received"),
            value: s(b"from a\n\tby b"),
        }),
        Command::EndOfHeaders,
        Command::Body(b"Hello\r\n"),
        Command::Body(b"binary \0 bytes\r"),
        Command::EndOfMessage(b""),
        Command::EndOfMessage(b"last chunk\r\n"),
        Command::Abort,
        Command::Quit,
        Command::QuitNewConnection,
        Command::Unknown(s(b"XFOO bar baz")),
    ]
}

/// One sample of every response, covering the cases the protocol reference lists.
pub(crate) fn responses() -> Vec<Response<'static>> {
    vec![
        Response::OptNeg(OptNegReply::new(
            OptNeg {
                version: 6,
                actions: Actions::ADD_HEADERS,
                protocol: ProtocolFlags::NO_UNKNOWN | ProtocolFlags::NO_DATA,
            },
            &NO_REQUESTS,
        )),
        Response::OptNeg(OptNegReply::new(
            OptNeg {
                version: 6,
                actions: Actions::ADD_HEADERS | Actions::SET_MACRO_LIST,
                protocol: ProtocolFlags::SKIP,
            },
            &MACRO_REQUESTS,
        )),
        Response::Continue,
        Response::Accept,
        Response::Reject,
        Response::Tempfail,
        Response::Discard,
        Response::Skip,
        Response::Progress,
        Response::Shutdown,
        Response::ReplyCode(s(b"550 5.7.1 go away")),
        // What smfi_setmlreply sends (protocol reference §7).
        Response::ReplyCode(s(b"550-5.7.1 line one\r\n550 5.7.1 line two 100%%")),
        Response::Quarantine(s(b"spam score 12")),
        Response::AddHeader {
            name: s(b"X-Filtered"),
            value: s(b"yes"),
        },
        Response::InsertHeader {
            index: 0,
            name: s(b"X-Top"),
            value: s(b"first"),
        },
        Response::ChangeHeader {
            index: 2,
            name: s(b"Received"),
            value: s(b"changed"),
        },
        // An empty value deletes the header.
        Response::ChangeHeader {
            index: 1,
            name: s(b"X-Spam"),
            value: s(b""),
        },
        Response::AddRcpt(s(b"<carol@example.org>")),
        Response::AddRcptWithArgs {
            rcpt: s(b"<dave@example.org>"),
            args: None,
        },
        Response::AddRcptWithArgs {
            rcpt: s(b"<dave@example.org>"),
            args: Some(s(b"NOTIFY=NEVER ORCPT=rfc822;dave@example.org")),
        },
        Response::DeleteRcpt(s(b"<bob@example.net>")),
        Response::ChangeFrom {
            sender: s(b"<bounce@example.com>"),
            args: None,
        },
        Response::ChangeFrom {
            sender: s(b"<>"),
            args: Some(s(b"RET=HDRS ENVID=abc")),
        },
        Response::ReplaceBody(b"New body\r\n"),
        Response::ReplaceBody(b""),
    ]
}

/// The frame of `command`.
pub(crate) fn encode_command(command: &Command<'_>) -> Vec<u8> {
    let mut wire = Vec::new();
    command.encode(&mut wire).expect("sample command encodes");
    wire
}

/// The frame of `response`.
pub(crate) fn encode_response(response: &Response<'_>) -> Vec<u8> {
    let mut wire = Vec::new();
    response.encode(&mut wire).expect("sample response encodes");
    wire
}

/// Every sample command and response, encoded.
pub(crate) fn all_frames() -> Vec<Vec<u8>> {
    let commands = commands().iter().map(encode_command).collect::<Vec<_>>();
    let responses = responses().iter().map(encode_response).collect::<Vec<_>>();
    [commands, responses].concat()
}

/// xorshift64*: small, seeded, good enough to pick splits and mutations.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator from `seed` (zero is replaced, xorshift cannot leave it).
    pub(crate) fn new(seed: u64) -> Self {
        Self(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `bound` (which must not be zero).
    pub(crate) fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound as u64) as usize
    }

    /// A random byte.
    pub(crate) fn byte(&mut self) -> u8 {
        (self.next_u64() >> 56) as u8
    }
}
