//! The input of the `connection` target: the MTA's offer, the filter's needs, the connection
//! settings, the filter's scripts and the MTA's commands, read from bytes.
//!
//! Every field reads as zero once the input runs out, so any byte string is an input; the
//! writer below is the reader's mirror, so generated inputs say what they mean.

/// Bytes of the input, shown as a byte string.
#[derive(Clone, Default, PartialEq, Eq)]
pub(super) struct Blob(pub(super) Vec<u8>);

impl std::ops::Deref for Blob {
    type Target = Vec<u8>;

    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl AsRef<[u8]> for Blob {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<&[u8]> for Blob {
    fn from(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }
}

impl std::fmt::Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

/// Reads fields off the front of the input.
pub(super) struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    pub(super) fn new(data: &'a [u8]) -> Self {
        Self(data)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&first, rest)) => {
                self.0 = rest;
                first
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    /// A length byte, then that many bytes (fewer when the input ends first).
    fn text(&mut self) -> Blob {
        let len = usize::from(self.byte()).min(self.0.len());
        let (text, rest) = self.0.split_at(len);
        self.0 = rest;
        Blob(text.to_vec())
    }

    /// A flag byte (odd: present), then the text.
    fn optional_text(&mut self) -> Option<Blob> {
        (self.byte() & 1 == 1).then(|| self.text())
    }
}

/// Writes fields as [`Reader`] reads them.
#[derive(Default)]
pub(super) struct Writer(pub(super) Vec<u8>);

impl Writer {
    fn byte(&mut self, value: u8) {
        self.0.push(value);
    }

    fn u16(&mut self, value: u16) {
        self.0.extend_from_slice(&value.to_be_bytes());
    }

    fn u32(&mut self, value: u32) {
        self.0.extend_from_slice(&value.to_be_bytes());
    }

    fn text(&mut self, text: &[u8]) {
        let len = text.len().min(255);
        self.byte(len as u8);
        self.0
            .extend_from_slice(text.get(..len).unwrap_or_default());
    }

    fn optional_text(&mut self, text: Option<&[u8]>) {
        match text {
            Some(text) => {
                self.byte(1);
                self.text(text);
            }
            None => self.byte(0),
        }
    }
}

// ===== the whole input =====

/// One run: how the connection is set up, what the filter does, what the MTA sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Input {
    pub(super) offer: Offer,
    pub(super) needs: NeedsChoice,
    pub(super) settings: Settings,
    /// Two filters in a `FilterList` instead of one.
    pub(super) list: bool,
    /// The filters' scripts; the first filter's call `n` plays script `n % len`, the
    /// second's script `(n + 1) % len`.
    pub(super) scripts: Vec<Script>,
    pub(super) ops: Vec<Op>,
}

impl Input {
    pub(super) fn read(data: &[u8]) -> Self {
        let mut r = Reader::new(data);
        let offer = Offer::read(&mut r);
        let needs = NeedsChoice::read(&mut r);
        let settings = Settings::read(&mut r);
        let head = r.byte();
        let list = head & 0x80 != 0;
        let scripts = (0..=head % 4).map(|_| Script::read(&mut r)).collect();
        let mut ops = Vec::new();
        while !r.is_empty() {
            ops.push(Op::read(&mut r));
        }
        Self {
            offer,
            needs,
            settings,
            list,
            scripts,
            ops,
        }
    }

    pub(super) fn write(&self) -> Vec<u8> {
        let mut w = Writer::default();
        self.offer.write(&mut w);
        self.needs.write(&mut w);
        self.settings.write(&mut w);
        let count = self.scripts.len().clamp(1, 4);
        w.byte((count - 1) as u8 | if self.list { 0x80 } else { 0 });
        for script in self.scripts.iter().take(count) {
            script.write(&mut w);
        }
        if self.scripts.is_empty() {
            Script::default().write(&mut w);
        }
        for op in &self.ops {
            op.write(&mut w);
        }
        w.0
    }
}

/// The MTA's OPTNEG.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Offer {
    /// What Postfix and Sendmail offer: version 6, every action and option.
    Standard,
    /// Any values.
    Custom {
        version: u32,
        actions: u32,
        protocol: u32,
    },
    /// No OPTNEG at all: the first command is something else.
    Missing,
}

impl Offer {
    fn read(r: &mut Reader<'_>) -> Self {
        match r.byte() {
            0..=199 => Self::Standard,
            200..=239 => Self::Custom {
                version: r.u32(),
                actions: r.u32(),
                protocol: r.u32(),
            },
            _ => Self::Missing,
        }
    }

    fn write(&self, w: &mut Writer) {
        match *self {
            Self::Standard => w.byte(0),
            Self::Custom {
                version,
                actions,
                protocol,
            } => {
                w.byte(200);
                w.u32(version);
                w.u32(actions);
                w.u32(protocol);
            }
            Self::Missing => w.byte(255),
        }
    }
}

/// The filter's declared needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum NeedsChoice {
    /// `Needs::everything()`.
    Everything,
    /// Raw bit sets, as `Needs` takes them.
    Custom {
        events: u16,
        answers: u16,
        required: u16,
        optional: u16,
        options: u32,
        /// A macro list: stage (modulo 7) and names.
        macros: Option<(u8, Blob)>,
    },
}

impl NeedsChoice {
    fn read(r: &mut Reader<'_>) -> Self {
        if r.byte() < 128 {
            return Self::Everything;
        }
        Self::Custom {
            events: r.u16(),
            answers: r.u16(),
            required: r.u16(),
            optional: r.u16(),
            options: r.u32(),
            macros: (r.byte() & 1 == 1).then(|| (r.byte(), r.text())),
        }
    }

    fn write(&self, w: &mut Writer) {
        match self {
            Self::Everything => w.byte(0),
            Self::Custom {
                events,
                answers,
                required,
                optional,
                options,
                macros,
            } => {
                w.byte(128);
                w.u16(*events);
                w.u16(*answers);
                w.u16(*required);
                w.u16(*optional);
                w.u32(*options);
                match macros {
                    Some((stage, names)) => {
                        w.byte(1);
                        w.byte(*stage);
                        w.text(names);
                    }
                    None => w.byte(0),
                }
            }
        }
    }
}

/// Connection settings and stream behaviour, each byte an index into a list of choices
/// (see `Setup` in the harness).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Settings {
    pub(super) frame_len: u8,
    pub(super) timers: u8,
    pub(super) error_verdict: u8,
    pub(super) read_chunk: u8,
    pub(super) write_chunk: u8,
}

impl Settings {
    fn read(r: &mut Reader<'_>) -> Self {
        Self {
            frame_len: r.byte(),
            timers: r.byte(),
            error_verdict: r.byte(),
            read_chunk: r.byte(),
            write_chunk: r.byte(),
        }
    }

    fn write(self, w: &mut Writer) {
        for byte in [
            self.frame_len,
            self.timers,
            self.error_verdict,
            self.read_chunk,
            self.write_chunk,
        ] {
            w.byte(byte);
        }
    }
}

// ===== the filter's script =====

/// What one filter call does, step by step; a call that runs out of steps returns
/// `Verdict::Continue`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Script {
    /// A failed await ends the call with its error (`?`); otherwise the call goes on.
    pub(super) strict: bool,
    pub(super) steps: Vec<Step>,
}

impl Script {
    const MAX_STEPS: u8 = 24;

    fn read(r: &mut Reader<'_>) -> Self {
        let head = r.byte();
        let len = (head >> 1) % Self::MAX_STEPS;
        Self {
            strict: head & 1 == 1,
            steps: (0..len).map(|_| Step::read(r)).collect(),
        }
    }

    fn write(&self, w: &mut Writer) {
        let len = self.steps.len().min(usize::from(Self::MAX_STEPS) - 1);
        w.byte(((len as u8) << 1) | u8::from(self.strict));
        for step in self.steps.iter().take(len) {
            step.write(w);
        }
    }
}

/// How a filter answers one recipient or unknown command it is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    None,
    Reject,
    Tempfail,
    Reply,
}

impl Refusal {
    fn read(r: &mut Reader<'_>) -> Self {
        match r.byte() % 4 {
            0 => Self::None,
            1 => Self::Reject,
            2 => Self::Tempfail,
            _ => Self::Reply,
        }
    }

    fn write(self, w: &mut Writer) {
        w.byte(match self {
            Self::None => 0,
            Self::Reject => 1,
            Self::Tempfail => 2,
            Self::Reply => 3,
        });
    }
}

/// One step of a filter call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Step {
    Helo,
    EnvelopeFrom,
    NextRecipient(Refusal),
    /// Every recipient until the MTA moves on, each answered so.
    AllRecipients(Refusal),
    NextHeader,
    AllHeaders,
    NextBodyChunk,
    /// Every body chunk; `append` copies each into the replacement body.
    AllBody {
        append: bool,
    },
    EndOfMessage,
    NextUnknown(Refusal),
    /// Sleeps on the manual clock, 1 to 8 seconds.
    Sleep(u8),
    Progress,
    AddHeader {
        name: Blob,
        value: Blob,
    },
    /// `at` modulo 4: top, end, before or after header `header` of those seen.
    InsertHeader {
        at: u8,
        header: u8,
        name: Blob,
        value: Blob,
    },
    ChangeHeader {
        header: u8,
        value: Blob,
    },
    DeleteHeader {
        header: u8,
    },
    /// A body of `16 * len` bytes.
    ReplaceBody(u8),
    AppendBody(u8),
    ChangeSender {
        address: Blob,
        args: Option<Blob>,
    },
    AddRecipient {
        address: Blob,
        args: Option<Blob>,
    },
    RemoveRecipient(Blob),
    Quarantine(Blob),
    /// Returns a verdict (see `verdict` in the harness).
    Return(u8),
    /// Returns an error.
    Fail,
    /// Panics (only where the caller allows it; else as `Fail`).
    Panic,
    /// Counts calls in the connection state.
    CountCalls,
}

impl Step {
    fn read(r: &mut Reader<'_>) -> Self {
        match r.byte() % 26 {
            0 => Self::Helo,
            1 => Self::EnvelopeFrom,
            2 => Self::NextRecipient(Refusal::read(r)),
            3 => Self::AllRecipients(Refusal::read(r)),
            4 => Self::NextHeader,
            5 => Self::AllHeaders,
            6 => Self::NextBodyChunk,
            7 => Self::AllBody {
                append: r.byte() & 1 == 1,
            },
            8 => Self::EndOfMessage,
            9 => Self::NextUnknown(Refusal::read(r)),
            10 => Self::Sleep(1 + r.byte() % 8),
            11 => Self::Progress,
            12 => Self::AddHeader {
                name: r.text(),
                value: r.text(),
            },
            13 => Self::InsertHeader {
                at: r.byte() % 4,
                header: r.byte(),
                name: r.text(),
                value: r.text(),
            },
            14 => Self::ChangeHeader {
                header: r.byte(),
                value: r.text(),
            },
            15 => Self::DeleteHeader { header: r.byte() },
            16 => Self::ReplaceBody(r.byte()),
            17 => Self::AppendBody(r.byte()),
            18 => Self::ChangeSender {
                address: r.text(),
                args: r.optional_text(),
            },
            19 => Self::AddRecipient {
                address: r.text(),
                args: r.optional_text(),
            },
            20 => Self::RemoveRecipient(r.text()),
            21 => Self::Quarantine(r.text()),
            22 => Self::Return(r.byte()),
            23 => Self::Fail,
            24 => Self::Panic,
            _ => Self::CountCalls,
        }
    }

    fn write(&self, w: &mut Writer) {
        match self {
            Self::Helo => w.byte(0),
            Self::EnvelopeFrom => w.byte(1),
            Self::NextRecipient(refusal) => {
                w.byte(2);
                refusal.write(w);
            }
            Self::AllRecipients(refusal) => {
                w.byte(3);
                refusal.write(w);
            }
            Self::NextHeader => w.byte(4),
            Self::AllHeaders => w.byte(5),
            Self::NextBodyChunk => w.byte(6),
            Self::AllBody { append } => {
                w.byte(7);
                w.byte(u8::from(*append));
            }
            Self::EndOfMessage => w.byte(8),
            Self::NextUnknown(refusal) => {
                w.byte(9);
                refusal.write(w);
            }
            Self::Sleep(seconds) => {
                w.byte(10);
                w.byte(seconds.saturating_sub(1) % 8);
            }
            Self::Progress => w.byte(11),
            Self::AddHeader { name, value } => {
                w.byte(12);
                w.text(name);
                w.text(value);
            }
            Self::InsertHeader {
                at,
                header,
                name,
                value,
            } => {
                w.byte(13);
                w.byte(*at);
                w.byte(*header);
                w.text(name);
                w.text(value);
            }
            Self::ChangeHeader { header, value } => {
                w.byte(14);
                w.byte(*header);
                w.text(value);
            }
            Self::DeleteHeader { header } => {
                w.byte(15);
                w.byte(*header);
            }
            Self::ReplaceBody(len) => {
                w.byte(16);
                w.byte(*len);
            }
            Self::AppendBody(len) => {
                w.byte(17);
                w.byte(*len);
            }
            Self::ChangeSender { address, args } => {
                w.byte(18);
                w.text(address);
                w.optional_text(args.as_ref().map(|a| a.as_slice()));
            }
            Self::AddRecipient { address, args } => {
                w.byte(19);
                w.text(address);
                w.optional_text(args.as_ref().map(|a| a.as_slice()));
            }
            Self::RemoveRecipient(address) => {
                w.byte(20);
                w.text(address);
            }
            Self::Quarantine(reason) => {
                w.byte(21);
                w.text(reason);
            }
            Self::Return(verdict) => {
                w.byte(22);
                w.byte(*verdict);
            }
            Self::Fail => w.byte(23),
            Self::Panic => w.byte(24),
            Self::CountCalls => w.byte(25),
        }
    }
}

// ===== the MTA's side =====

/// One thing the MTA does: send a command (well-formed or not), wait, close.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Op {
    /// A MACRO packet for command byte `command`.
    Macro {
        command: u8,
        pairs: Vec<(Blob, Blob)>,
    },
    Connect {
        host: Blob,
        family: u8,
        port: u16,
        address: Blob,
    },
    Helo(Blob),
    Mail {
        address: Blob,
        args: Vec<Blob>,
    },
    Rcpt {
        address: Blob,
        args: Vec<Blob>,
    },
    Data,
    Header {
        name: Blob,
        value: Blob,
    },
    EndOfHeaders,
    /// A body chunk of `32 * len` bytes, tagged with its frame number (see the harness).
    Body(u8),
    /// A body chunk of up to 65535 bytes: over a small frame limit.
    BigBody(u16),
    EndOfMessage(Blob),
    Abort,
    Unknown(Blob),
    QuitNewConnection,
    Quit,
    /// OPTNEG again, after negotiation.
    OptNeg,
    /// Any bytes.
    Raw(Blob),
    /// A frame header promising `promised` bytes after the code byte, then `present` of them.
    Truncated {
        promised: u16,
        present: u8,
    },
    /// The MTA stays silent (index into the harness's list of durations).
    Wait(u8),
    /// The MTA closes its side.
    Close,
    /// The connection is asked to shut down gracefully.
    Shutdown,
    /// The next command that wants a reply is sent without waiting for it.
    NoSync,
}

impl Op {
    fn read(r: &mut Reader<'_>) -> Self {
        match r.byte() % 24 {
            0 => {
                let command = r.byte();
                let count = r.byte() % 4;
                let pairs = (0..count).map(|_| (r.text(), r.text())).collect();
                Self::Macro { command, pairs }
            }
            1 => Self::Connect {
                host: r.text(),
                family: r.byte(),
                port: r.u16(),
                address: r.text(),
            },
            2 => Self::Helo(r.text()),
            3 => Self::Mail {
                address: r.text(),
                args: (0..r.byte() % 3).map(|_| r.text()).collect(),
            },
            4 => Self::Rcpt {
                address: r.text(),
                args: (0..r.byte() % 3).map(|_| r.text()).collect(),
            },
            5 => Self::Data,
            7 => Self::EndOfHeaders,
            // Body chunks and headers come up twice as often: messages have many.
            8 | 22 => Self::Body(r.byte()),
            9 => Self::BigBody(r.u16()),
            10 => Self::EndOfMessage(r.text()),
            11 => Self::Abort,
            12 => Self::Unknown(r.text()),
            13 => Self::QuitNewConnection,
            14 => Self::Quit,
            15 => Self::OptNeg,
            16 => Self::Raw(r.text()),
            17 => Self::Truncated {
                promised: r.u16(),
                present: r.byte(),
            },
            18 => Self::Wait(r.byte()),
            19 => Self::Close,
            20 => Self::Shutdown,
            21 => Self::NoSync,
            _ => Self::Header {
                name: r.text(),
                value: r.text(),
            },
        }
    }

    fn write(&self, w: &mut Writer) {
        match self {
            Self::Macro { command, pairs } => {
                w.byte(0);
                w.byte(*command);
                let count = pairs.len().min(3);
                w.byte(count as u8);
                for (name, value) in pairs.iter().take(count) {
                    w.text(name);
                    w.text(value);
                }
            }
            Self::Connect {
                host,
                family,
                port,
                address,
            } => {
                w.byte(1);
                w.text(host);
                w.byte(*family);
                w.u16(*port);
                w.text(address);
            }
            Self::Helo(name) => {
                w.byte(2);
                w.text(name);
            }
            Self::Mail { address, args } | Self::Rcpt { address, args } => {
                w.byte(if matches!(self, Self::Mail { .. }) {
                    3
                } else {
                    4
                });
                w.text(address);
                let count = args.len().min(2);
                w.byte(count as u8);
                for arg in args.iter().take(count) {
                    w.text(arg);
                }
            }
            Self::Data => w.byte(5),
            Self::Header { name, value } => {
                w.byte(6);
                w.text(name);
                w.text(value);
            }
            Self::EndOfHeaders => w.byte(7),
            Self::Body(len) => {
                w.byte(8);
                w.byte(*len);
            }
            Self::BigBody(len) => {
                w.byte(9);
                w.u16(*len);
            }
            Self::EndOfMessage(data) => {
                w.byte(10);
                w.text(data);
            }
            Self::Abort => w.byte(11),
            Self::Unknown(line) => {
                w.byte(12);
                w.text(line);
            }
            Self::QuitNewConnection => w.byte(13),
            Self::Quit => w.byte(14),
            Self::OptNeg => w.byte(15),
            Self::Raw(bytes) => {
                w.byte(16);
                w.text(bytes);
            }
            Self::Truncated { promised, present } => {
                w.byte(17);
                w.u16(*promised);
                w.byte(*present);
            }
            Self::Wait(choice) => {
                w.byte(18);
                w.byte(*choice);
            }
            Self::Close => w.byte(19),
            Self::Shutdown => w.byte(20),
            Self::NoSync => w.byte(21),
        }
    }
}
