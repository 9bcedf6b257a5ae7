//! Scripts of MTA packets, and sessions written the way Postfix and Sendmail send them
//! (protocol reference §5.7 and §6: which MACRO packets come before which command, the
//! ABORT pattern).

use super::runner::Packet;

/// A script: the packets an MTA sends, in order.
#[derive(Clone, Debug, Default)]
pub(crate) struct Script(pub(crate) Vec<Packet>);

/// `str` as the wire has it: the bytes and a NUL.
fn cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

impl Script {
    pub(crate) fn raw(mut self, code: u8, payload: &[u8]) -> Self {
        self.0.push((code, payload.to_vec()));
        self
    }

    pub(crate) fn optneg(self, offer: Offer) -> Self {
        let mut p = Vec::new();
        for v in [offer.version, offer.actions, offer.protocol] {
            p.extend_from_slice(&v.to_be_bytes());
        }
        self.raw(b'O', &p)
    }

    pub(crate) fn macros(self, code: u8, pairs: &[(&str, &str)]) -> Self {
        let mut p = vec![code];
        for (name, value) in pairs {
            cstr(&mut p, name);
            cstr(&mut p, value);
        }
        self.raw(b'D', &p)
    }

    pub(crate) fn connect(self, host: &str, family: u8, port: u16, addr: &str) -> Self {
        let mut p = Vec::new();
        cstr(&mut p, host);
        p.push(family);
        if family != b'U' {
            p.extend_from_slice(&port.to_be_bytes());
            cstr(&mut p, addr);
        }
        self.raw(b'C', &p)
    }

    pub(crate) fn strings(self, code: u8, parts: &[&str]) -> Self {
        let mut p = Vec::new();
        for part in parts {
            cstr(&mut p, part);
        }
        self.raw(code, &p)
    }

    pub(crate) fn quit(self) -> Self {
        self.raw(b'Q', b"")
    }
}

/// What an MTA offers in OPTNEG.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Offer {
    pub(crate) name: &'static str,
    pub(crate) version: u32,
    pub(crate) actions: u32,
    pub(crate) protocol: u32,
}

/// The offers of protocol reference §3.2, and some an MTA could make.
pub(crate) const OFFERS: [Offer; 12] = [
    Offer {
        name: "v6",
        version: 6,
        actions: 0x1FF,
        protocol: 0x1F_FFFF,
    },
    Offer {
        name: "postfix-v4",
        version: 4,
        actions: 0x1FF,
        protocol: 0x37F,
    },
    Offer {
        name: "postfix-v3",
        version: 3,
        actions: 0x1FF,
        protocol: 0x17F,
    },
    Offer {
        name: "postfix-v2",
        version: 2,
        actions: 0x1FF,
        protocol: 0x7F,
    },
    Offer {
        name: "postfix-v2-no-header-reply",
        version: 2,
        actions: 0x1FF,
        protocol: 0xFF,
    },
    Offer {
        name: "sendmail-8.13",
        version: 4,
        actions: 0x3F,
        protocol: 0x3FF,
    },
    Offer {
        name: "v2-v2-actions",
        version: 2,
        actions: 0x3F,
        protocol: 0x7F,
    },
    Offer {
        name: "v6-no-nr",
        version: 6,
        actions: 0x1FF,
        protocol: 0x77F,
    },
    Offer {
        name: "v6-few-actions",
        version: 6,
        actions: 0x01,
        protocol: 0x1F_FFFF,
    },
    Offer {
        name: "zero",
        version: 6,
        actions: 0,
        protocol: 0,
    },
    Offer {
        name: "future-v7",
        version: 7,
        actions: 0x1FF,
        protocol: 0x1F_FFFF,
    },
    Offer {
        name: "v1",
        version: 1,
        actions: 0x0F,
        protocol: 0x3F,
    },
];

pub(crate) const V6: Offer = OFFERS[0];

/// Which MTA's packet pattern a session follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mta {
    /// A MACRO packet before every command (empty ones too), macro `v` naming Postfix,
    /// ABORT after every message and again before QUIT.
    Postfix,
    /// Macros for CONNECT, HELO, MAIL, RCPT and end of message only; no ABORT after a
    /// message.
    Sendmail,
    /// No macros but the plan (as miltertest or a bare test harness).
    Plain,
}

impl Mta {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Postfix => "postfix",
            Self::Sendmail => "sendmail",
            Self::Plain => "plain",
        }
    }
}

/// One message of a session.
#[derive(Clone, Debug)]
pub(crate) struct Message {
    pub(crate) plan: String,
    pub(crate) from: Vec<String>,
    pub(crate) rcpts: Vec<Vec<String>>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<Vec<u8>>,
    /// Stop after this many commands of the message (MAIL counts as 1) and ABORT.
    pub(crate) abort_after: Option<usize>,
}

impl Message {
    /// The message most conversations use: two recipients (one with a parameter), five
    /// headers (two of them `Subject`), one body chunk.
    pub(crate) fn new(plan: &str) -> Self {
        Self {
            plan: plan.to_owned(),
            from: vec![
                "<alice@example.com>".into(),
                "SIZE=123".into(),
                "BODY=8BITMIME".into(),
            ],
            rcpts: vec![
                vec!["<bob@example.net>".into()],
                vec!["<carol@example.net>".into(), "NOTIFY=NEVER".into()],
            ],
            headers: [
                ("From", "Alice <alice@example.com>"),
                ("To", "bob@example.net"),
                ("Subject", "hello"),
                ("Received", "from a by b"),
                ("subject", "second"),
            ]
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect(),
            body: vec![b"line one\r\nline two\r\n".to_vec()],
            abort_after: None,
        }
    }

    pub(crate) fn body(mut self, chunks: Vec<Vec<u8>>) -> Self {
        self.body = chunks;
        self
    }

    pub(crate) fn headers(mut self, headers: &[(&str, &str)]) -> Self {
        self.headers = headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        self
    }

    pub(crate) fn rcpts(mut self, rcpts: &[&[&str]]) -> Self {
        self.rcpts = rcpts
            .iter()
            .map(|r| r.iter().map(|s| (*s).to_owned()).collect())
            .collect();
        self
    }

    pub(crate) fn from(mut self, from: &[&str]) -> Self {
        self.from = from.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    pub(crate) fn abort_after(mut self, commands: usize) -> Self {
        self.abort_after = Some(commands);
        self
    }
}

/// A session: negotiation, CONNECT, HELO, the messages, an UNKNOWN command where asked,
/// QUIT.
#[derive(Clone, Debug)]
pub(crate) struct Session {
    pub(crate) mta: Mta,
    pub(crate) offer: Offer,
    /// The plan for the connection (CONNECT macros).
    pub(crate) plan: String,
    pub(crate) messages: Vec<Message>,
    /// An UNKNOWN command after HELO.
    pub(crate) unknown: Option<String>,
    /// HELO again after every message (as a client that repeats EHLO).
    pub(crate) helo_again: bool,
}

impl Session {
    pub(crate) fn new(mta: Mta, plan: &str, messages: Vec<Message>) -> Self {
        Self {
            mta,
            offer: V6,
            plan: plan.to_owned(),
            messages,
            unknown: None,
            helo_again: false,
        }
    }

    pub(crate) fn offer(mut self, offer: Offer) -> Self {
        self.offer = offer;
        self
    }

    pub(crate) fn unknown(mut self, command: &str) -> Self {
        self.unknown = Some(command.to_owned());
        self
    }

    pub(crate) fn helo_again(mut self) -> Self {
        self.helo_again = true;
        self
    }

    /// The packets, as the session's MTA sends them.
    pub(crate) fn script(&self) -> Script {
        let mta = self.mta;
        let postfix = mta == Mta::Postfix;
        let sendmail = mta == Mta::Sendmail;
        let mut s = Script::default().optneg(self.offer);
        let plan = self.plan.as_str();
        s = match mta {
            Mta::Postfix => s.macros(
                b'C',
                &[
                    ("j", "mx.example.org"),
                    ("{daemon_name}", "mx"),
                    ("{daemon_addr}", "192.0.2.25"),
                    ("v", "Postfix 3.7.11"),
                    ("_", "client.example.com [192.0.2.1]"),
                    ("{plan}", plan),
                ],
            ),
            Mta::Sendmail => s.macros(
                b'C',
                &[
                    ("j", "mx.example.org"),
                    ("_", "client.example.com [192.0.2.1]"),
                    ("{daemon_name}", "MTA"),
                    ("{if_addr}", "192.0.2.25"),
                    ("{plan}", plan),
                ],
            ),
            Mta::Plain if plan.is_empty() => s,
            Mta::Plain => s.macros(b'C', &[("{plan}", plan)]),
        };
        s = s.connect("client.example.com", b'4', 50000, "192.0.2.1");
        s = self.helo(s);
        if let Some(command) = &self.unknown {
            if postfix {
                s = s.macros(b'U', &[]);
            }
            s = s.strings(b'U', &[command]);
        }
        for message in &self.messages {
            s = message_packets(s, mta, message);
            if postfix {
                s = s.raw(b'A', b"");
            }
            if self.helo_again {
                s = self.helo(s);
                if postfix {
                    s = s.raw(b'A', b"");
                }
            }
        }
        if postfix {
            s = s.raw(b'A', b"");
        } else if sendmail {
            // Sendmail sends nothing between the last message and QUIT.
        }
        s.quit()
    }

    fn helo(&self, s: Script) -> Script {
        let s = match self.mta {
            Mta::Postfix | Mta::Sendmail => s.macros(b'H', &[("{tls_version}", "TLSv1.3")]),
            Mta::Plain => s,
        };
        s.strings(b'H', &["client.example.com"])
    }
}

/// One message's packets: MAIL to end of message (or ABORT).
fn message_packets(mut s: Script, mta: Mta, m: &Message) -> Script {
    let postfix = mta == Mta::Postfix;
    let sendmail = mta == Mta::Sendmail;
    let mut commands = Vec::<Script>::new();
    let from: Vec<&str> = m.from.iter().map(String::as_str).collect();
    let mut c = Script::default();
    c = match mta {
        Mta::Postfix | Mta::Sendmail => c.macros(
            b'M',
            &[("{mail_addr}", "alice@example.com"), ("{plan}", &m.plan)],
        ),
        Mta::Plain => c.macros(b'M', &[("{plan}", &m.plan)]),
    };
    commands.push(c.strings(b'M', &from));
    for rcpt in &m.rcpts {
        let args: Vec<&str> = rcpt.iter().map(String::as_str).collect();
        let bare = args[0].trim_start_matches('<').trim_end_matches('>');
        let c = if postfix || sendmail {
            Script::default().macros(b'R', &[("{rcpt_addr}", bare), ("{rcpt_mailer}", "smtp")])
        } else {
            Script::default()
        };
        commands.push(c.strings(b'R', &args));
    }
    let data = if postfix {
        Script::default().macros(b'T', &[("i", "4XyZ1")])
    } else {
        Script::default()
    };
    commands.push(data.raw(b'T', b""));
    for (name, value) in &m.headers {
        let c = if postfix {
            Script::default().macros(b'L', &[("i", "4XyZ1")])
        } else {
            Script::default()
        };
        commands.push(c.strings(b'L', &[name, value]));
    }
    let eoh = if postfix {
        Script::default().macros(b'N', &[("i", "4XyZ1")])
    } else {
        Script::default()
    };
    commands.push(eoh.raw(b'N', b""));
    for chunk in &m.body {
        let c = if postfix {
            Script::default().macros(b'B', &[("i", "4XyZ1")])
        } else {
            Script::default()
        };
        commands.push(c.raw(b'B', chunk));
    }
    let eom = match mta {
        Mta::Postfix => Script::default().macros(b'E', &[("i", "4XyZ1")]),
        Mta::Sendmail => Script::default().macros(b'E', &[("{msg_id}", "<1@example.com>")]),
        Mta::Plain => Script::default(),
    };
    commands.push(eom.raw(b'E', b""));
    let keep = m.abort_after.unwrap_or(commands.len());
    for command in commands.into_iter().take(keep) {
        s.0.extend(command.0);
    }
    if m.abort_after.is_some() && !postfix {
        // Postfix's ABORT after every message is added by the session.
        s = s.raw(b'A', b"");
    }
    s
}
