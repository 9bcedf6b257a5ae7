//! Structured inputs for the `connection` target from a seed: sessions shaped as Postfix and
//! Sendmail send them, filters shaped as filters are written, and now and then something
//! out of place (a wait, garbage, a truncated frame, a shutdown, end of stream).

use super::input::{Blob, Input, NeedsChoice, Offer, Op, Refusal, Script, Settings, Step};

/// A small deterministic generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    /// True `percent` times in a hundred.
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Clone>(&mut self, choices: &[T]) -> T {
        let index = self.below(choices.len());
        choices[index].clone()
    }

    fn text(&mut self, choices: &[&[u8]]) -> Blob {
        Blob::from(self.pick(choices))
    }
}

const HEADER_NAMES: &[&[u8]] = &[
    b"X-Fuzz",
    b"Subject",
    b"Received",
    b"X-Spam-Flag",
    b"From",
    b"",
    b"Bad Name",
    b"X:Colon",
];
const HEADER_VALUES: &[&[u8]] = &[
    b"yes",
    b"hello world",
    b"folded\r\n\tline",
    b"",
    b"with\0nul",
    b"caf\xc3\xa9",
    b"bare\rcr",
    b" leading space",
];
const ADDRESSES: &[&[u8]] = &[
    b"<alice@example.com>",
    b"<bob@example.net>",
    b"<>",
    b"",
    b"*",
    b"<nul\0inside>",
];
const ARGS: &[Option<&[u8]>] = &[None, None, Some(b"NOTIFY=NEVER"), Some(b"")];

fn refusal(rng: &mut Rng) -> Refusal {
    rng.pick(&[
        Refusal::None,
        Refusal::None,
        Refusal::None,
        Refusal::Reject,
        Refusal::Tempfail,
        Refusal::Reply,
    ])
}

fn edit(rng: &mut Rng) -> Step {
    match rng.below(11) {
        0 | 1 => Step::AddHeader {
            name: rng.text(HEADER_NAMES),
            value: rng.text(HEADER_VALUES),
        },
        2 => Step::InsertHeader {
            at: rng.byte() % 4,
            header: rng.byte() % 4,
            name: rng.text(HEADER_NAMES),
            value: rng.text(HEADER_VALUES),
        },
        3 => Step::ChangeHeader {
            header: rng.byte() % 4,
            value: rng.text(HEADER_VALUES),
        },
        4 => Step::DeleteHeader {
            header: rng.byte() % 4,
        },
        5 => Step::ReplaceBody(rng.byte() % 8),
        6 => Step::AppendBody(rng.byte() % 8),
        7 => Step::ChangeSender {
            address: rng.text(ADDRESSES),
            args: rng.pick(ARGS).map(Blob::from),
        },
        8 => Step::AddRecipient {
            address: rng.text(ADDRESSES),
            args: rng.pick(ARGS).map(Blob::from),
        },
        9 => Step::RemoveRecipient(rng.text(ADDRESSES)),
        _ => Step::Quarantine(rng.text(&[b"suspicious", b""])),
    }
}

fn any_step(rng: &mut Rng) -> Step {
    match rng.below(16) {
        0 => Step::Helo,
        1 => Step::EnvelopeFrom,
        2 => Step::NextRecipient(refusal(rng)),
        3 => Step::AllRecipients(refusal(rng)),
        4 => Step::NextHeader,
        5 => Step::AllHeaders,
        6 => Step::NextBodyChunk,
        7 => Step::AllBody {
            append: rng.chance(30),
        },
        8 => Step::EndOfMessage,
        9 => Step::NextUnknown(refusal(rng)),
        10 => Step::Sleep(1 + rng.byte() % 8),
        11 => Step::Progress,
        12 => Step::Return(rng.byte() % 9),
        13 => rng.pick(&[Step::Fail, Step::Panic, Step::CountCalls]),
        _ => edit(rng),
    }
}

fn script(rng: &mut Rng) -> Script {
    let mut steps = Vec::new();
    match rng.below(5) {
        // Reads the whole message, edits at the end.
        0 | 1 => {
            steps.push(Step::EnvelopeFrom);
            steps.push(Step::AllRecipients(refusal(rng)));
            steps.push(Step::AllHeaders);
            steps.push(Step::AllBody {
                append: rng.chance(20),
            });
            steps.push(Step::EndOfMessage);
            if rng.chance(20) {
                steps.push(Step::Sleep(1 + rng.byte() % 8));
                steps.push(Step::Progress);
            }
            for _ in 0..rng.below(5) {
                steps.push(edit(rng));
            }
            steps.push(Step::Return(rng.pick(&[0, 1, 1, 2, 3, 4, 5, 7, 8])));
        }
        // Decides early.
        2 => {
            let first = refusal(rng);
            steps.push(rng.pick(&[Step::Helo, Step::EnvelopeFrom, Step::NextRecipient(first)]));
            for _ in 0..rng.below(3) {
                steps.push(edit(rng));
            }
            steps.push(Step::Return(rng.byte() % 9));
        }
        // Anything.
        _ => {
            for _ in 0..rng.below(12) {
                steps.push(any_step(rng));
            }
        }
    }
    Script {
        strict: rng.chance(50),
        steps,
    }
}

/// Takes a body chunk, sleeps over it, then reads the rest.
fn slow_body_reader(rng: &mut Rng) -> Script {
    Script {
        strict: false,
        steps: vec![
            Step::NextBodyChunk,
            Step::Sleep(1 + rng.byte() % 8),
            Step::NextBodyChunk,
            Step::Sleep(1 + rng.byte() % 8),
            Step::AllBody {
                append: rng.chance(30),
            },
            Step::EndOfMessage,
            Step::Return(rng.byte() % 9),
        ],
    }
}

fn offer(rng: &mut Rng) -> Offer {
    match rng.below(100) {
        0..=84 => Offer::Standard,
        85..=97 => {
            let (any_actions, any_protocol) = (rng.next() as u32, rng.next() as u32);
            Offer::Custom {
                version: rng.pick(&[2, 3, 4, 5, 6, 6, 1, 7]),
                actions: rng.pick(&[0x1FF, 0x3F, 0x0F, 0, 0x3FF, any_actions & 0x1FF]),
                protocol: rng.pick(&[
                    0x1F_FFFF,
                    0x7F,
                    0x3F,
                    0,
                    0x101F_FFFF,
                    any_protocol & 0x1F_FFFF,
                ]),
            }
        }
        _ => Offer::Missing,
    }
}

fn needs(rng: &mut Rng) -> NeedsChoice {
    if rng.chance(60) {
        return NeedsChoice::Everything;
    }
    let all: u16 = 0x1FF;
    NeedsChoice::Custom {
        events: if rng.chance(50) {
            all
        } else {
            rng.next() as u16 & all
        },
        answers: if rng.chance(30) {
            all
        } else {
            rng.next() as u16 & all
        },
        required: u16::from(rng.chance(10)),
        optional: if rng.chance(70) {
            0x0FF
        } else {
            rng.next() as u16 & 0x1FF
        },
        options: rng.pick(&[0, 0x400, 0x10_0400, 0x800, 0x10_0000]),
        macros: rng.chance(20).then(|| {
            (
                rng.byte() % 7,
                Blob::from(&b"{auth_authen} {rcpt_addr}"[..]),
            )
        }),
    }
}

/// Something out of place, now and then.
fn surprise(rng: &mut Rng) -> Op {
    match rng.below(20) {
        0..=4 => Op::Wait(rng.byte() % 12),
        5 | 6 => Op::Unknown(rng.text(&[b"XFOO", b"XFOO bar", b""])),
        7 | 8 => Op::NoSync,
        9 => Op::Shutdown,
        10 => Op::Raw(rng.text(&[
            b"\0\0\0\0",
            b"\xff\xff\xff\xff",
            b"\0\0\0\x01Z",
            b"\0\0\0\x02H",
            b"\0\0\0",
        ])),
        11 => Op::Truncated {
            promised: rng.next() as u16 % 600,
            present: rng.byte() % 50,
        },
        12 => Op::Close,
        13 => Op::BigBody(rng.pick(&[70, 300, 5000, 65_000])),
        14 => Op::OptNeg,
        15 => Op::Abort,
        16 => Op::QuitNewConnection,
        17 => Op::Macro {
            command: rng.pick(b"QAxM"),
            pairs: vec![(Blob::from(&b"i"[..]), Blob::from(&b"Q1"[..]))],
        },
        18 => Op::EndOfMessage(rng.text(&[b"last piece", b""])),
        _ => Op::Helo(rng.text(&[b"again.example", b""])),
    }
}

/// The MTA side being written: each command may be preceded by a surprise.
struct MtaScript<'a> {
    rng: &'a mut Rng,
    ops: &'a mut Vec<Op>,
}

impl MtaScript<'_> {
    fn push(&mut self, op: Op) {
        if self.rng.chance(6) {
            let surprise = surprise(self.rng);
            self.ops.push(surprise);
        }
        self.ops.push(op);
    }

    fn macros(&mut self, command: u8, pairs: Vec<(Blob, Blob)>) {
        self.push(Op::Macro { command, pairs });
    }
}

/// A Postfix- or Sendmail-shaped session, with surprises.
///
/// A `streaming` MTA sends many body chunks without waiting for replies, as it would under
/// `NR_BODY`, so a filter that sleeps over a chunk finds the next ones queued behind it.
fn session(rng: &mut Rng, ops: &mut Vec<Op>, streaming: bool) {
    let postfix = rng.chance(50);
    let mut mta = MtaScript { rng, ops };
    let mut connect_macros = vec![(Blob::from(&b"j"[..]), Blob::from(&b"mx.example"[..]))];
    if postfix {
        connect_macros.push((Blob::from(&b"v"[..]), Blob::from(&b"Postfix 3.7"[..])));
    }
    mta.macros(b'C', connect_macros);
    let connect = Op::Connect {
        host: mta.rng.text(&[b"client.example", b"[192.0.2.1]", b""]),
        family: mta.rng.byte() % 5,
        port: 4000,
        address: mta
            .rng
            .text(&[b"192.0.2.1", b"IPv6:2001:db8::1", b"/run/sock"]),
    };
    mta.push(connect);
    if mta.rng.chance(85) {
        let helo = Op::Helo(mta.rng.text(&[b"client.example", b""]));
        mta.push(helo);
    }
    for message in 0..=mta.rng.below(2) {
        mta.macros(
            b'M',
            vec![(
                Blob::from(&b"i"[..]),
                Blob(format!("Q{message}").into_bytes()),
            )],
        );
        let mail = Op::Mail {
            address: mta.rng.text(ADDRESSES),
            args: if mta.rng.chance(20) {
                vec![Blob::from(&b"SIZE=100"[..])]
            } else {
                Vec::new()
            },
        };
        mta.push(mail);
        for _ in 0..=mta.rng.below(2) {
            let mut pairs = vec![(
                Blob::from(&b"{rcpt_addr}"[..]),
                Blob::from(&b"bob@example.net"[..]),
            )];
            if mta.rng.chance(10) {
                pairs.push((Blob::from(&b"{rcpt_mailer}"[..]), Blob::from(&b"error"[..])));
            }
            mta.macros(b'R', pairs);
            let rcpt = Op::Rcpt {
                address: mta.rng.text(ADDRESSES),
                args: Vec::new(),
            };
            mta.push(rcpt);
        }
        if mta.rng.chance(5) {
            mta.push(Op::Abort);
            continue;
        }
        mta.push(Op::Data);
        for _ in 0..mta.rng.below(5) {
            if postfix {
                mta.macros(b'L', Vec::new());
            }
            let header = Op::Header {
                name: mta.rng.text(HEADER_NAMES),
                value: mta.rng.text(HEADER_VALUES),
            };
            mta.push(header);
        }
        mta.push(Op::EndOfHeaders);
        let chunks = if streaming {
            20 + mta.rng.below(40)
        } else {
            mta.rng.below(4)
        };
        for _ in 0..chunks {
            if streaming {
                mta.ops.push(Op::NoSync);
            }
            let body = Op::Body(mta.rng.byte() % 64);
            mta.push(body);
        }
        mta.macros(
            b'E',
            vec![(
                Blob::from(&b"{msg_id}"[..]),
                Blob::from(&b"<m@example>"[..]),
            )],
        );
        mta.push(Op::EndOfMessage(Blob::default()));
        if postfix {
            mta.push(Op::Abort);
        }
    }
    match mta.rng.below(10) {
        0 => mta.ops.push(Op::Close),
        1 => mta.ops.push(Op::QuitNewConnection),
        _ => mta.ops.push(Op::Quit),
    }
}

/// A structured input for [`connection`](super::connection), the same for the same seed.
#[must_use]
pub fn connection_input(seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    let offer = offer(&mut rng);
    let needs = needs(&mut rng);
    // One input in ten streams the body to a filter that sleeps over a chunk, under a
    // 4096-byte frame limit: the read-ahead bound is then small enough to reach.
    let streaming = rng.chance(10);
    let settings = Settings {
        frame_len: if streaming {
            2
        } else if rng.chance(70) {
            0
        } else {
            rng.byte()
        },
        timers: rng.byte(),
        error_verdict: rng.byte(),
        read_chunk: rng.byte(),
        write_chunk: rng.byte(),
    };
    let list = rng.chance(15);
    let mut scripts: Vec<Script> = (0..=rng.below(3)).map(|_| script(&mut rng)).collect();
    if streaming {
        scripts.insert(0, slow_body_reader(&mut rng));
    }
    let mut ops = Vec::new();
    session(&mut rng, &mut ops, streaming);
    if matches!(ops.last(), Some(Op::QuitNewConnection)) {
        session(&mut rng, &mut ops, streaming);
    }
    Input {
        offer,
        needs,
        settings,
        list,
        scripts,
        ops,
    }
    .write()
}
