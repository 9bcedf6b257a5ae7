//! The conversations played against both filters: every stage with every verdict, every
//! edit, negotiation with the offers of Postfix and Sendmail, multi-message connections,
//! aborts, macro scoping, unknown commands and malformed input.

use super::ours::Config;
use super::script::{Message, Mta, OFFERS, Script, Session, V6};

/// A named script and the filter configuration it runs against.
pub(crate) struct Conversation {
    pub(crate) name: String,
    pub(crate) config: Config,
    pub(crate) script: Script,
}

impl Conversation {
    /// Whether libmilter is known to stay silent in it, so the wait for an answer is short.
    pub(crate) fn libmilter_silent(&self) -> bool {
        matches!(
            self.name.as_str(),
            "malformed/helo-no-nul" | "malformed/rcpt-before-mail"
        )
    }
}

fn conv(name: String, config: Config, script: Script) -> Conversation {
    Conversation {
        name,
        config,
        script,
    }
}

/// Every conversation, in a stable order (names are unique).
pub(crate) fn all() -> Vec<Conversation> {
    let mut out = Vec::new();
    negotiation(&mut out);
    verdicts(&mut out);
    edits(&mut out);
    options(&mut out);
    multi_message(&mut out);
    macro_scopes(&mut out);
    unknown_commands(&mut out);
    aborts(&mut out);
    connect_events(&mut out);
    envelope_events(&mut out);
    content_events(&mut out);
    malformed(&mut out);
    out
}

/// Every configuration against every offer, with one message that tries a header, a sender
/// change (a version 6 action) and a recipient with parameters.
fn negotiation(out: &mut Vec<Conversation>) {
    // In the order this crate sends edits, and no ADDHEADER (whose Sendmail form differs), so
    // that only the negotiation can make a difference.
    let plan = "edits=chgfrom/<new@example.com>|addrcptpar/<dave@example.net>/NOTIFY=NEVER|ins/top/X-Top/t|quar/held";
    for config in Config::ALL {
        for offer in OFFERS {
            let session = Session::new(Mta::Postfix, "", vec![Message::new(plan)])
                .offer(offer)
                .unknown("XFOO");
            out.push(conv(
                format!("negotiate/{}/{}", config.name(), offer.name),
                config,
                session.script(),
            ));
        }
        let session = Session::new(Mta::Sendmail, "", vec![Message::new(plan)]).unknown("XFOO a b");
        out.push(conv(
            format!("negotiate/{}/sendmail-v6", config.name()),
            config,
            session.script(),
        ));
    }
}

/// The answers a filter can give at an event, as plan actions.
const ACTIONS: [(&str, &str); 14] = [
    ("cont", "cont"),
    ("acc", "acc"),
    ("rej", "rej"),
    ("tf", "tf"),
    ("disc", "disc"),
    ("skip", "skip"),
    ("reply550", "reply/550/5.7.1/go away"),
    ("reply451", "reply/451/4.7.1/try later"),
    ("reply421", "reply/421/4.7.0/closing"),
    ("reply-no-enhanced", "reply/554/-/no enhanced code"),
    ("multiline", "ml/550/5.7.1/line one/line two/line three"),
    ("class-mismatch", "setreply/451/4.7.1/temporary text/rej"),
    ("reply-with-accept", "setreply/550/5.7.1/ignored/acc"),
    ("echo", "echo"),
];

/// Every counted or uncounted event with every answer, on Postfix's and Sendmail's packet
/// patterns.
fn verdicts(out: &mut Vec<Conversation>) {
    let keys = [
        "conn", "helo", "mail", "rcpt1", "rcpt2", "rcpt", "data", "hdr1", "hdr3", "eoh", "body1",
        "body2", "eom", "unknown",
    ];
    for mta in [Mta::Postfix, Mta::Sendmail] {
        for key in keys {
            for (label, action) in ACTIONS {
                let item = format!("{key}={action}");
                let connection_level = matches!(key, "conn" | "helo" | "unknown");
                let (conn_plan, msg_plan) = if connection_level {
                    (item.clone(), String::new())
                } else {
                    (String::new(), item.clone())
                };
                let message = Message::new(&msg_plan).body(vec![
                    b"first chunk\r\n".to_vec(),
                    b"second chunk\r\n".to_vec(),
                    b"third chunk\r\n".to_vec(),
                ]);
                let mut session = Session::new(mta, &conn_plan, vec![message, Message::new("")]);
                if key == "unknown" {
                    session = session.unknown(if mta == Mta::Postfix {
                        "XFOO"
                    } else {
                        "XFOO bar"
                    });
                }
                out.push(conv(
                    format!("verdict/{}/{key}/{label}", mta.name()),
                    Config::Full,
                    session.script(),
                ));
            }
        }
    }
}

/// Edit lists for end of message.
const EDITS: [(&str, &str); 33] = [
    ("addhdr", "addhdr/X-Added/one"),
    ("addhdr-folded", "addhdr/X-Folded/line one\n\tline two"),
    ("addhdr-existing-name", "addhdr/Subject/third"),
    ("ins-top", "ins/top/X-Top/t"),
    ("ins-before-0", "ins/before/0/X-B0/v"),
    ("ins-before-2", "ins/before/2/X-B2/v"),
    ("ins-after-4", "ins/after/4/X-A4/v"),
    ("ins-past-end", "ins/before/9/X-Far/v"),
    ("chghdr", "chghdr/Subject/1/changed"),
    ("chghdr-second", "chghdr/Subject/2/changed two"),
    ("chghdr-index-0", "chghdr/Subject/0/zero"),
    ("delhdr", "delhdr/Subject/2"),
    ("delhdr-both-ascending", "delhdr/Subject/1|delhdr/Subject/2"),
    (
        "delhdr-both-descending",
        "delhdr/Subject/2|delhdr/Subject/1",
    ),
    ("body", "body/new body~line two~"),
    ("body-65535", "bigbody/65535"),
    ("body-70000", "bigbody/70000"),
    ("body-140000", "bigbody/140000"),
    ("body-empty", "emptybody"),
    ("chgfrom", "chgfrom/<new@example.com>"),
    ("chgfrom-args", "chgfrom/<new@example.com>/SIZE=10 RET=HDRS"),
    ("addrcpt", "addrcpt/<dave@example.net>"),
    (
        "addrcpt-par",
        "addrcptpar/<dave@example.net>/NOTIFY=SUCCESS",
    ),
    ("delrcpt", "delrcpt/<bob@example.net>"),
    ("quarantine", "quar/held for review"),
    ("progress", "progress"),
    (
        "all-in-send-order",
        "progress|chgfrom/<new@example.com>|delrcpt/<bob@example.net>|addrcpt/<dave@example.net>|ins/top/X-Top/t|chghdr/Subject/1/changed|addhdr/X-Added/one|body/new~|quar/held",
    ),
    (
        "all-in-other-order",
        "quar/held|body/new~|addhdr/X-Added/one|chghdr/Subject/1/changed|ins/top/X-Top/t|addrcpt/<dave@example.net>|delrcpt/<bob@example.net>|chgfrom/<new@example.com>",
    ),
    ("progress-after-edit", "addhdr/X-Added/one|progress"),
    ("two-bodies", "body/first~|body/second~"),
    ("same-header-twice", "chghdr/Subject/1/a|chghdr/Subject/1/b"),
    ("change-then-delete", "chghdr/Subject/1/a|delhdr/Subject/1"),
    ("two-inserts-top", "ins/top/X-One/1|ins/top/X-Two/2"),
];

/// Every edit alone and in combination, on the three header numberings (Postfix, Sendmail,
/// a bare harness), with continue and accept; some with a refusal or no action offered.
fn edits(out: &mut Vec<Conversation>) {
    for mta in [Mta::Postfix, Mta::Sendmail, Mta::Plain] {
        for (label, edits) in EDITS {
            for verdict in ["cont", "acc"] {
                let plan = format!("edits={edits};eom={verdict}");
                let session = Session::new(mta, "", vec![Message::new(&plan)]);
                out.push(conv(
                    format!("edit/{}/{label}/{verdict}", mta.name()),
                    Config::Full,
                    session.script(),
                ));
            }
        }
    }
    let all = EDITS
        .iter()
        .find(|(label, _)| *label == "all-in-send-order")
        .map_or("", |(_, edits)| edits);
    for verdict in ["rej", "tf", "disc", "reply/550/5.7.1/no"] {
        let plan = format!("edits={all};eom={verdict}");
        let session = Session::new(Mta::Postfix, "", vec![Message::new(&plan)]);
        out.push(conv(
            format!(
                "edit/postfix/all-then-{}",
                verdict.split('/').next().unwrap_or(verdict)
            ),
            Config::Full,
            session.script(),
        ));
    }
    for offer in [OFFERS[8], OFFERS[3], OFFERS[6]] {
        let plan = format!("edits={all}");
        let session = Session::new(Mta::Postfix, "", vec![Message::new(&plan)]).offer(offer);
        out.push(conv(
            format!("edit/postfix/all-offered-{}", offer.name),
            Config::Full,
            session.script(),
        ));
    }
    let plan = format!("edits={all}");
    let session = Session::new(Mta::Postfix, "", vec![Message::new(&plan)]);
    out.push(conv(
        "edit/postfix/all-minimal-filter".to_owned(),
        Config::Minimal,
        session.script(),
    ));
}

/// `HDR_LEADSPC` and `RCPT_REJ` negotiated, macro lists requested.
fn options(out: &mut Vec<Conversation>) {
    let headers: [(&str, &str); 4] = [
        ("Subject", " spaced"),
        ("X-Tab", "\tvalue"),
        ("X-Two", "  two"),
        ("X-Empty", ""),
    ];
    for n in 1..=4 {
        let message = Message::new(&format!("hdr{n}=echo")).headers(&headers);
        let session = Session::new(Mta::Postfix, "", vec![message]);
        out.push(conv(
            format!("options/leadspc-echo-hdr{n}"),
            Config::Options,
            session.script(),
        ));
    }
    for (label, edit) in [
        ("addhdr", "addhdr/X-Added/one"),
        ("chghdr", "chghdr/Subject/1/changed"),
        ("ins", "ins/top/X-Top/t"),
        ("addhdr-leading-space", "addhdr/X-Added/ already spaced"),
    ] {
        let message = Message::new(&format!("edits={edit}")).headers(&headers);
        let session = Session::new(Mta::Postfix, "", vec![message]);
        out.push(conv(
            format!("options/leadspc-{label}"),
            Config::Options,
            session.script(),
        ));
    }
    for offer in [V6, OFFERS[3], OFFERS[7]] {
        let session = Session::new(Mta::Sendmail, "", vec![Message::new("")]).offer(offer);
        out.push(conv(
            format!("options/negotiate-{}", offer.name),
            Config::Options,
            session.script(),
        ));
    }
}

/// Several messages on one connection, each with its own plan.
fn multi_message(out: &mut Vec<Conversation>) {
    let sets: [(&str, &[&str]); 6] = [
        (
            "rcpt-reject-then-edits-then-abort",
            &["rcpt1=rej", "edits=addhdr/X-Second/2;eom=acc", "ABORT3"],
        ),
        (
            "mail-reject-then-continue",
            &["mail=rej", "edits=addhdr/X-A/1"],
        ),
        (
            "data-tempfail-discard-accept",
            &["data=tf", "eom=disc", "mail=acc", ""],
        ),
        (
            "skip-then-normal",
            &["body1=skip;edits=body/x~", "edits=addhdr/X-A/1"],
        ),
        (
            "hdr-reply-then-eoh-reject",
            &["hdr2=reply/550/5.7.1/bad header", "eoh=rej", ""],
        ),
        (
            "rcpt-accept-then-rcpt-discard",
            &["rcpt1=acc", "rcpt2=disc", ""],
        ),
    ];
    for mta in [Mta::Postfix, Mta::Sendmail, Mta::Plain] {
        for (label, plans) in sets {
            let messages = plans
                .iter()
                .map(|plan| match plan.strip_prefix("ABORT") {
                    Some(n) => Message::new("").abort_after(n.parse().unwrap_or(1)),
                    None => Message::new(plan),
                })
                .collect();
            let session = Session::new(mta, "", messages);
            out.push(conv(
                format!("multi/{}/{label}", mta.name()),
                Config::Full,
                session.script(),
            ));
            if mta != Mta::Plain {
                let messages = plans.iter().map(|plan| Message::new(plan)).collect();
                let session = Session::new(mta, "", messages).helo_again();
                out.push(conv(
                    format!("multi/{}/{label}/helo-between", mta.name()),
                    Config::Full,
                    session.script(),
                ));
            }
        }
    }
    for config in [Config::NoReply, Config::NrAll, Config::Minimal] {
        let messages = vec![
            Message::new("rcpt1=rej"),
            Message::new("edits=addhdr/X-A/1"),
            Message::new("").abort_after(4),
            Message::new("eom=tf"),
        ];
        for mta in [Mta::Postfix, Mta::Sendmail] {
            let session = Session::new(mta, "", messages.clone());
            out.push(conv(
                format!("multi/{}/{}", mta.name(), config.name()),
                config,
                session.script(),
            ));
        }
    }
    // A new MAIL inside a transaction, without ABORT.
    let s = Script::default()
        .optneg(V6)
        .connect("client.example.com", b'4', 50000, "192.0.2.1")
        .strings(b'H', &["client.example.com"])
        .macros(b'M', &[("{plan}", "")])
        .strings(b'M', &["<alice@example.com>"])
        .strings(b'R', &["<bob@example.net>"])
        .macros(b'M', &[("{plan}", "rcpt1=echo")])
        .strings(b'M', &["<second@example.com>"])
        .strings(b'R', &["<carol@example.net>"])
        .quit();
    out.push(conv("multi/mail-without-abort".to_owned(), Config::Full, s));
    // QUIT_NC after a message answered with continue (libmilter accepts it there only).
    let s = Session::new(Mta::Sendmail, "", vec![Message::new("eom=cont")]).script();
    let mut packets = s.0;
    packets.pop(); // QUIT
    let s = Script(packets)
        .raw(b'K', b"")
        .macros(b'C', &[("{plan}", "conn=echo")])
        .connect("second.example.com", b'4', 50001, "192.0.2.2")
        .quit();
    out.push(conv(
        "multi/quit-nc-after-continue".to_owned(),
        Config::Full,
        s,
    ));
}

/// Which macros a filter sees where: each recipient echoes one macro.
fn macro_scopes(out: &mut Vec<Conversation>) {
    let names = [
        "{x}",
        "{y}",
        "{z}",
        "x",
        "j",
        "{j}",
        "daemon_name",
        "{rcpt_addr}",
        "i",
        "{w}",
    ];
    for name in names {
        for stage in ["rcpt1", "data", "eoh", "eom"] {
            let plan = format!("{stage}=macro/{name}");
            let plan = plan.as_str();
            let label = stage;
            let s = Script::default()
                .optneg(V6)
                .macros(
                    b'C',
                    &[
                        ("{x}", "conn"),
                        ("j", "mx.example.org"),
                        ("{daemon_name}", "mx"),
                    ],
                )
                .connect("client.example.com", b'4', 50000, "192.0.2.1")
                .macros(b'H', &[("{y}", "helo")])
                .strings(b'H', &["client.example.com"])
                .macros(b'M', &[("{z}", "mail"), ("{plan}", plan)])
                .strings(b'M', &["<alice@example.com>"])
                .macros(b'R', &[("{rcpt_addr}", "bob@example.net"), ("{w}", "rcpt")])
                .strings(b'R', &["<bob@example.net>"])
                .macros(b'T', &[("i", "4XyZ1")])
                .raw(b'T', b"")
                .strings(b'L', &["Subject", "x"])
                .raw(b'N', b"")
                .macros(b'E', &[("{msg_id}", "<1@example.com>")])
                .raw(b'E', b"")
                // A second message after a new HELO: MAIL-stage and later macros cleared.
                .macros(b'H', &[("{y}", "helo2")])
                .strings(b'H', &["client.example.com"])
                .macros(b'M', &[("{plan}", plan)])
                .strings(b'M', &["<alice@example.com>"])
                .strings(b'R', &["<bob@example.net>"])
                .raw(b'T', b"")
                .raw(b'N', b"")
                .raw(b'E', b"")
                .quit();
            out.push(conv(format!("macros/{label}/{name}"), Config::Full, s));
        }
    }
    // Macro packets for commands that have no stage, and empty ones.
    let s = Script::default()
        .optneg(V6)
        .macros(b'X', &[("{plan}", "mail=rej")])
        .macros(b'C', &[])
        .connect("client.example.com", b'4', 50000, "192.0.2.1")
        .macros(b'L', &[("{plan}", "mail=rej")])
        .strings(b'H', &["client.example.com"])
        .macros(b'M', &[("{plan}", "mail=macro/{plan}")])
        .strings(b'M', &["<alice@example.com>"])
        .quit();
    out.push(conv("macros/odd-packets".to_owned(), Config::Full, s));
    for config in [Config::Options, Config::Macros] {
        let session = Session::new(
            Mta::Postfix,
            "",
            vec![Message::new("rcpt1=macro/{rcpt_addr};eom=macro/{msg_id}")],
        );
        out.push(conv(
            format!("macros/lists-{}", config.name()),
            config,
            session.script(),
        ));
    }
}

/// UNKNOWN commands in every place an MTA sends them.
fn unknown_commands(out: &mut Vec<Conversation>) {
    for (label, action) in [
        ("cont", "cont"),
        ("rej", "rej"),
        ("reply", "reply/502/5.5.2/no"),
        ("echo", "echo"),
        ("acc", "acc"),
        ("disc", "disc"),
    ] {
        let plan = format!("unknown={action}");
        let base = Script::default()
            .optneg(V6)
            .macros(b'C', &[("{plan}", &plan)])
            .connect("client.example.com", b'4', 50000, "192.0.2.1");
        let before_helo = base
            .clone()
            .strings(b'U', &["XFOO before helo"])
            .strings(b'H', &["client.example.com"])
            .strings(b'M', &["<alice@example.com>"])
            .quit();
        out.push(conv(
            format!("unknown/before-helo/{label}"),
            Config::Full,
            before_helo,
        ));
        let in_transaction = base
            .clone()
            .strings(b'H', &["client.example.com"])
            .strings(b'M', &["<alice@example.com>"])
            .strings(b'U', &["XFOO after mail"])
            .strings(b'R', &["<bob@example.net>"])
            .strings(b'U', &["XFOO after rcpt"])
            .strings(b'R', &["<carol@example.net>"])
            .raw(b'T', b"")
            .strings(b'L', &["Subject", "x"])
            .raw(b'N', b"")
            .raw(b'E', b"")
            .quit();
        out.push(conv(
            format!("unknown/in-transaction/{label}"),
            Config::Full,
            in_transaction,
        ));
        let after_message = base
            .strings(b'H', &["client.example.com"])
            .strings(b'M', &["<alice@example.com>"])
            .strings(b'R', &["<bob@example.net>"])
            .raw(b'E', b"")
            .strings(b'U', &["XFOO after eom"])
            .strings(b'M', &["<alice@example.com>"])
            .quit();
        out.push(conv(
            format!("unknown/after-message/{label}"),
            Config::Full,
            after_message,
        ));
    }
}

/// ABORT at every point, twice, and outside a transaction.
fn aborts(out: &mut Vec<Conversation>) {
    for mta in [Mta::Postfix, Mta::Sendmail] {
        for after in 1..=10 {
            let messages = vec![Message::new("").abort_after(after), Message::new("eom=acc")];
            let session = Session::new(mta, "", messages);
            out.push(conv(
                format!("abort/{}/after-{after}-commands", mta.name()),
                Config::Full,
                session.script(),
            ));
        }
    }
    let s = Script::default()
        .optneg(V6)
        .connect("client.example.com", b'4', 50000, "192.0.2.1")
        .raw(b'A', b"")
        .strings(b'H', &["client.example.com"])
        .raw(b'A', b"")
        .macros(b'M', &[("{plan}", "rcpt1=echo")])
        .strings(b'M', &["<alice@example.com>"])
        .raw(b'A', b"")
        .raw(b'A', b"")
        .macros(b'M', &[("{plan}", "rcpt1=echo")])
        .strings(b'M', &["<alice@example.com>"])
        .strings(b'R', &["<bob@example.net>"])
        .quit();
    out.push(conv("abort/stray-and-double".to_owned(), Config::Full, s));
}

/// What the connect and HELO callbacks are handed.
fn connect_events(out: &mut Vec<Conversation>) {
    let connects: [(&str, &str, u8, u16, &str); 8] = [
        ("inet", "client.example.com", b'4', 50000, "192.0.2.1"),
        ("inet-bracketed-host", "[192.0.2.1]", b'4', 25, "192.0.2.1"),
        (
            "inet6-prefixed",
            "v6.example.com",
            b'6',
            50000,
            "IPv6:2001:db8::1",
        ),
        (
            "inet6-uncompressed",
            "v6.example.com",
            b'6',
            1,
            "IPv6:2001:DB8:0:0:0:0:0:1",
        ),
        ("inet6-plain", "v6.example.com", b'6', 65535, "2001:db8::1"),
        (
            "inet6-mapped",
            "v6.example.com",
            b'6',
            50000,
            "::ffff:192.0.2.1",
        ),
        ("unix", "localhost", b'L', 0, "/var/run/client.sock"),
        ("unknown-family", "localhost", b'U', 0, ""),
    ];
    for (label, host, family, port, addr) in connects {
        let s = Script::default()
            .optneg(V6)
            .macros(b'C', &[("{plan}", "conn=echo")])
            .connect(host, family, port, addr)
            .quit();
        out.push(conv(format!("event/connect/{label}"), Config::Full, s));
    }
    for (label, name) in [
        ("plain", "client.example.com"),
        ("literal", "[192.0.2.1]"),
        ("empty", ""),
    ] {
        let s = Script::default()
            .optneg(V6)
            .macros(b'C', &[("{plan}", "helo=echo")])
            .connect("client.example.com", b'4', 50000, "192.0.2.1")
            .strings(b'H', &[name])
            .quit();
        out.push(conv(format!("event/helo/{label}"), Config::Full, s));
    }
}

/// What the MAIL and RCPT callbacks are handed.
fn envelope_events(out: &mut Vec<Conversation>) {
    let envelopes: [(&str, &[&str]); 5] = [
        ("plain", &["<alice@example.com>"]),
        (
            "args",
            &[
                "<alice@example.com>",
                "SIZE=10",
                "BODY=8BITMIME",
                "SMTPUTF8",
            ],
        ),
        ("null-sender", &["<>"]),
        ("bare", &["alice@example.com"]),
        ("empty", &[""]),
    ];
    for (label, from) in envelopes {
        let message = Message::new("mail=echo").from(from);
        out.push(conv(
            format!("event/mail/{label}"),
            Config::Full,
            Session::new(Mta::Sendmail, "", vec![message]).script(),
        ));
        let message = Message::new("rcpt=echo").rcpts(&[from]);
        out.push(conv(
            format!("event/rcpt/{label}"),
            Config::Full,
            Session::new(Mta::Sendmail, "", vec![message]).script(),
        ));
    }
}

/// What the header and body callbacks are handed.
fn content_events(out: &mut Vec<Conversation>) {
    let headers: [(&str, &str, &str); 6] = [
        ("plain", "Subject", "hello"),
        ("empty-value", "X-Empty", ""),
        ("leading-space", "X-Space", " spaced"),
        ("folded", "X-Folded", "one\n two"),
        ("utf8", "Subject", "h\u{e9}llo"),
        ("percent", "Subject", "100% sure"),
    ];
    for (label, name, value) in headers {
        let message = Message::new("hdr1=echo").headers(&[(name, value)]);
        out.push(conv(
            format!("event/header/{label}"),
            Config::Full,
            Session::new(Mta::Sendmail, "", vec![message]).script(),
        ));
    }
    let bodies: [(&str, Vec<Vec<u8>>); 4] = [
        ("one-byte", vec![b"x".to_vec()]),
        ("max-chunk", vec![vec![b'a'; 65535], b"\r\n".to_vec()]),
        (
            "crlf-split",
            vec![b"line\r".to_vec(), b"\nnext\r\n".to_vec()],
        ),
        ("empty", vec![]),
    ];
    for (label, chunks) in bodies {
        for key in ["body1", "body2", "eom"] {
            let message = Message::new(&format!("{key}=echo")).body(chunks.clone());
            out.push(conv(
                format!("event/body/{label}/{key}"),
                Config::Full,
                Session::new(Mta::Sendmail, "", vec![message]).script(),
            ));
        }
    }
    // Data in BODYEOB: libmilter hands it to the body callback first.
    for key in ["body1", "body2", "eom"] {
        let s = Script::default()
            .optneg(V6)
            .connect("client.example.com", b'4', 50000, "192.0.2.1")
            .strings(b'H', &["client.example.com"])
            .macros(b'M', &[("{plan}", &format!("{key}=echo"))])
            .strings(b'M', &["<alice@example.com>"])
            .strings(b'R', &["<bob@example.net>"])
            .raw(b'N', b"")
            .raw(b'B', b"chunk\r\n")
            .raw(b'E', b"last\r\n")
            .quit();
        out.push(conv(format!("event/eob-with-data/{key}"), Config::Full, s));
    }
}

/// Input an MTA should not send.
fn malformed(out: &mut Vec<Conversation>) {
    let greeted = || {
        Script::default()
            .optneg(V6)
            .connect("client.example.com", b'4', 50000, "192.0.2.1")
            .strings(b'H', &["client.example.com"])
    };
    let cases: [(&str, Script); 9] = [
        (
            "optneg-short",
            Script::default()
                .raw(b'O', &[0, 0, 0, 6, 0, 0, 1, 0xff])
                .quit(),
        ),
        (
            "unknown-command-byte",
            greeted()
                .raw(b'Z', b"")
                .strings(b'M', &["<a@example.com>"])
                .quit(),
        ),
        (
            "header-without-value",
            greeted()
                .strings(b'M', &["<a@example.com>"])
                .strings(b'R', &["<b@example.net>"])
                .raw(b'L', b"Subject")
                .quit(),
        ),
        (
            "header-one-string",
            greeted()
                .strings(b'M', &["<a@example.com>"])
                .strings(b'R', &["<b@example.net>"])
                .strings(b'L', &["Subject"])
                .quit(),
        ),
        (
            "connect-truncated",
            Script::default().optneg(V6).raw(b'C', b"host\0").quit(),
        ),
        (
            "connect-bad-family",
            Script::default()
                .optneg(V6)
                .raw(b'C', b"host\0X\0\x01addr\0")
                .quit(),
        ),
        (
            "mail-no-nul",
            greeted().raw(b'M', b"<a@example.com>").quit(),
        ),
        (
            "helo-no-nul",
            Script::default()
                .optneg(V6)
                .connect("h", b'4', 1, "192.0.2.1")
                .raw(b'H', b"name")
                .quit(),
        ),
        (
            "rcpt-before-mail",
            greeted()
                .strings(b'R', &["<b@example.net>"])
                .strings(b'M', &["<a@example.com>"])
                .quit(),
        ),
    ];
    for (label, script) in cases {
        out.push(conv(format!("malformed/{label}"), Config::Full, script));
    }
}
