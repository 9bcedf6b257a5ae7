//! The attacks: bytes sent after a chosen setup, messages that pick a fault of the target,
//! and scripted attacks that need more than one write (trickles, thousands of connections,
//! resets, a reader that never reads).

use std::time::{Duration, Instant};

use super::target::Target;
use super::wire::{self, Next, REPLY_WAIT, Raw, bare};
use super::{
    Attack, Lab, NEGOTIATION_TIMEOUT, PROGRESS_INTERVAL, Probe, READ_TIMEOUT, RSS_TOLERANCE, SLACK,
    WRITE_TIMEOUT, silent_for,
};

// ===== bytes after a setup =====

/// How far a well-behaved conversation goes before the attack's bytes.
#[derive(Clone, Copy)]
enum Setup {
    /// Nothing: a fresh connection.
    Fresh,
    /// OPTNEG.
    Negotiated,
    /// OPTNEG, CONNECT, HELO.
    Greeted,
    /// And MAIL, RCPT, DATA.
    InData,
    /// And one header.
    InMessage,
    /// And end of headers and one body chunk.
    InBody,
}

/// A connection brought to `setup`, each reply checked; `sender` is the message's.
fn set_up(lab: &Lab<'_>, setup: Setup, sender: &str) -> Result<Raw, String> {
    let commands = wire::message_commands(sender);
    let (taken, replies) = match setup {
        Setup::Fresh => return Raw::connect(lab.addr),
        Setup::Negotiated => return Raw::negotiated(lab.addr),
        Setup::Greeted => return Raw::greeted(lab.addr),
        Setup::InData => (3, "ccc"),
        Setup::InMessage => (4, "cccc"),
        Setup::InBody => (6, "cccccc"),
    };
    let mut raw = Raw::greeted(lab.addr)?;
    raw.expect_conversation(&commands[..taken], replies)
        .map_err(|e| format!("setup: {e}"))?;
    Ok(raw)
}

fn sent(setup: Setup, bytes: impl Fn() -> Vec<u8> + 'static, eof: bool) -> Attack {
    Box::new(move |lab| {
        let mut raw = set_up(lab, setup, "<alice@example.com>")?;
        raw.send(&bytes())?;
        if eof {
            raw.half_close()?;
        }
        Ok(Probe::Open {
            raw,
            replies: String::new(),
        })
    })
}

/// `bytes` on a fresh connection.
pub(crate) fn fresh(bytes: impl Fn() -> Vec<u8> + 'static) -> Attack {
    sent(Setup::Fresh, bytes, false)
}

/// `bytes` on a fresh connection, then end of stream from the MTA (a half-close).
pub(crate) fn fresh_then_eof(bytes: impl Fn() -> Vec<u8> + 'static) -> Attack {
    sent(Setup::Fresh, bytes, true)
}

/// `bytes` after OPTNEG.
pub(crate) fn negotiated(bytes: impl Fn() -> Vec<u8> + 'static) -> Attack {
    sent(Setup::Negotiated, bytes, false)
}

/// `bytes` after OPTNEG, CONNECT and HELO.
pub(crate) fn greeted(bytes: impl Fn() -> Vec<u8> + 'static) -> Attack {
    sent(Setup::Greeted, bytes, false)
}

/// `bytes` after MAIL, RCPT and DATA.
pub(crate) fn in_data(bytes: impl Fn() -> Vec<u8> + 'static) -> Attack {
    sent(Setup::InData, bytes, false)
}

/// `bytes` after the message's first header.
pub(crate) fn in_message(bytes: impl Fn() -> Vec<u8> + 'static) -> Attack {
    sent(Setup::InMessage, bytes, false)
}

/// `bytes` after the message's first header, then end of stream.
pub(crate) fn in_message_then_eof(bytes: impl Fn() -> Vec<u8> + 'static) -> Attack {
    sent(Setup::InMessage, bytes, true)
}

/// `bytes` after end of headers and a body chunk.
pub(crate) fn in_body(bytes: impl Fn() -> Vec<u8> + 'static) -> Attack {
    sent(Setup::InBody, bytes, false)
}

/// OPTNEG offering `version`, `actions` and `protocol`: the reply must name version
/// `answer`.
pub(crate) fn offer(version: u32, actions: u32, protocol: u32, answer: u32) -> Attack {
    Box::new(move |lab| {
        let mut raw = Raw::connect(lab.addr)?;
        raw.send(&wire::optneg_with(version, actions, protocol))?;
        match raw.next(REPLY_WAIT) {
            Next::Frame(b'O', reply) if reply.get(..4) == Some(&answer.to_be_bytes()[..]) => {}
            other => return Err(format!("OPTNEG answered {other:?}, not version {answer}")),
        }
        Ok(Probe::Open {
            raw,
            replies: "O".to_owned(),
        })
    })
}

// ===== messages that pick a fault =====

/// A negotiated connection plays CONNECT from `host`, HELO `helo` and a message from
/// `sender` as an MTA does, stopping at the first reply that ends the message.
pub(crate) fn message(host: &'static str, helo: &'static str, sender: &'static str) -> Attack {
    Box::new(move |lab| {
        let mut raw = Raw::negotiated(lab.addr)?;
        let mut commands = vec![wire::connect(host), wire::helo(helo)];
        commands.extend(wire::message_commands(sender));
        let replies = raw.conversation(&commands)?;
        Ok(Probe::Open { raw, replies })
    })
}

/// A message from the sender `<FAULT@x>`.
pub(crate) fn from(sender: &'static str) -> Attack {
    message("client.example.com", "client.example.com", sender)
}

/// How an attack cuts a message short.
#[derive(Clone, Copy)]
pub(crate) enum Cut {
    /// ABORT, and the connection goes on.
    Abort,
    /// QUIT.
    Quit,
    /// The MTA closes the connection (FIN).
    Close,
    /// The MTA resets the connection (`SO_LINGER` 0, RST).
    Reset,
}

/// A message from `sender` up to its first body chunk, then `cut`.
pub(crate) fn cut_short(sender: &'static str, cut: Cut) -> Attack {
    Box::new(move |lab| {
        let mut raw = set_up(lab, Setup::InBody, sender)?;
        match cut {
            Cut::Abort => raw.send(&bare(b'A'))?,
            Cut::Quit => raw.send(&bare(b'Q'))?,
            Cut::Close => return Ok(Probe::Done),
            Cut::Reset => {
                let linger = nix::libc::linger {
                    l_onoff: 1,
                    l_linger: 0,
                };
                nix::sys::socket::setsockopt(
                    &raw.stream,
                    nix::sys::socket::sockopt::Linger,
                    &linger,
                )
                .map_err(|e| format!("SO_LINGER: {e}"))?;
                return Ok(Probe::Done);
            }
        }
        Ok(Probe::Open {
            raw,
            replies: String::new(),
        })
    })
}

// ===== byte makers =====

/// `frame` `count` times.
pub(crate) fn times(count: usize, frame: &[u8]) -> Vec<u8> {
    frame.repeat(count)
}

/// `count` headers `X-Flood-N` whose values are `value_len` bytes.
pub(crate) fn headers(count: usize, value_len: usize) -> Vec<u8> {
    let value = "v".repeat(value_len);
    (0..count)
        .flat_map(|i| wire::header(&format!("X-Flood-{i}"), &value))
        .collect()
}

/// A frame length field announcing `len` bytes, then code byte `kind` and nothing more.
pub(crate) fn announce(len: u32, kind: u8) -> Vec<u8> {
    let mut out = len.to_be_bytes().to_vec();
    out.push(kind);
    out
}

/// 256 bytes from a fixed xorshift sequence: garbage that is the same every run.
pub(crate) fn garbage() -> Vec<u8> {
    let mut state: u32 = 0x9e37_79b9;
    (0..256)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state.to_be_bytes()[0]
        })
        .collect()
}

/// The start of a TLS 1.2 `ClientHello` record, as a client speaking TLS to the port sends.
pub(crate) fn tls_client_hello() -> Vec<u8> {
    let mut hello = vec![
        0x16, 0x03, 0x01, 0x00, 0x2f, 0x01, 0x00, 0x00, 0x2b, 0x03, 0x03,
    ];
    hello.extend_from_slice(&[0x42; 32]);
    hello.extend_from_slice(&[0x00, 0x00, 0x02, 0x00, 0x2f, 0x01, 0x00]);
    hello
}

/// OPTNEG, then a well-behaved CONNECT and HELO, all in one write.
pub(crate) fn greeting() -> Vec<u8> {
    [
        wire::optneg(),
        wire::connect("client.example.com"),
        wire::helo("client.example.com"),
    ]
    .concat()
}

/// [`greeting`] and a whole message, all in one write.
pub(crate) fn greeting_and_message() -> Vec<u8> {
    [
        greeting(),
        wire::message_commands("<alice@example.com>").concat(),
    ]
    .concat()
}

// ===== scripted attacks =====

pub(crate) fn script(attack: fn(&Lab<'_>) -> Result<Probe, String>) -> Attack {
    Box::new(attack)
}

/// After HELO, `start` (the head of a frame) and then the frame's bytes one at a time,
/// each as soon as the last was sent and 50 ms passed without a reply: the server must
/// close when the read timeout has passed since the frame began, not wait for it to end.
pub(crate) fn trickle(start: fn() -> Vec<u8>) -> Attack {
    Box::new(move |lab| {
        let mut raw = Raw::greeted(lab.addr)?;
        let began = Instant::now();
        raw.send(&start())?;
        let deadline = began + READ_TIMEOUT * 3;
        let mut sent = 0;
        while Instant::now() < deadline {
            match raw.next(Duration::from_millis(50)) {
                Next::Silent => {}
                Next::Closed => {
                    let after = began.elapsed();
                    if after + Duration::from_millis(50) < READ_TIMEOUT {
                        return Err(format!("closed after {after:?}, before the read timeout"));
                    }
                    if after > READ_TIMEOUT + SLACK {
                        return Err(format!("closed only after {after:?}"));
                    }
                    return Ok(Probe::Done);
                }
                other => return Err(format!("{other:?} while trickling")),
            }
            // A write to a connection the server has just closed may fail: the next read
            // tells.
            let _ = raw.send(b"x");
            sent += 1;
        }
        Err(format!("still open after {sent} trickled bytes"))
    })
}

/// `count` fresh connections, opened no faster than the server accepts them (at most 64
/// ahead of its `opened` lines), so its listen queue of 128 never overflows, which would
/// cost a second per dropped SYN; returns once the server has accepted all. Unless `keep`, each is closed as soon as it is open (and none
/// is returned).
pub(crate) fn connect_many(target: &Target, count: usize, keep: bool) -> Result<Vec<Raw>, String> {
    let before = target.accepted();
    let mut opened = Vec::new();
    for n in 0..count {
        if n >= 64 {
            target.wait_accepted(before + n - 64, REPLY_WAIT)?;
        }
        let raw = Raw::connect(target.addr)?;
        if keep {
            opened.push(raw);
        }
    }
    // Every one accepted: timers that run from the accept have started.
    target.wait_accepted(before + count, REPLY_WAIT)?;
    Ok(opened)
}

/// `count` connections that each announce a 512 KiB OPTNEG (`00 08 00 00 'O'`) and send no
/// more: the server must not reserve what the length announces (the case's peak budget
/// tells), and closes each at the negotiation timeout.
pub(crate) fn announced_lengths(lab: &Lab<'_>) -> Result<Probe, String> {
    let mut conns = connect_many(lab.target, 200, true)?;
    for raw in &mut conns {
        raw.send(&announce(512 * 1024, b'O'))?;
    }
    all_close(&mut conns, Instant::now(), NEGOTIATION_TIMEOUT + SLACK)
}

/// The connection that sent last (or opened last, if none sent).
fn newest(conns: &mut [Raw]) -> &mut Raw {
    conns
        .iter_mut()
        .max_by_key(|raw| raw.sent_at)
        .expect("connections")
}

/// Checks that the server says nothing on `raw` until (nearly) `timeout` after its last
/// write.
fn silent_until_timeout(raw: &mut Raw, timeout: Duration) -> Result<(), String> {
    let until = raw.sent_at + timeout.saturating_sub(Duration::from_millis(50));
    silent_for(raw, until.saturating_duration_since(Instant::now()))
}

/// Waits for the server to close each of `conns`, all within `within` of `since`: a moment
/// when the server had accepted each and each had sent its last bytes.
fn all_close(conns: &mut [Raw], since: Instant, within: Duration) -> Result<Probe, String> {
    let deadline = since + within;
    for (index, raw) in conns.iter_mut().enumerate() {
        match raw.next(deadline.saturating_duration_since(Instant::now())) {
            Next::Closed => {}
            other => {
                return Err(format!(
                    "connection {index} of {}: {other:?} instead of a close within {within:?}",
                    conns.len()
                ));
            }
        }
    }
    Ok(Probe::Done)
}

/// 2,000 connections that never send a byte: each is closed at the negotiation timeout.
pub(crate) fn idle_connections(lab: &Lab<'_>) -> Result<Probe, String> {
    let mut conns = connect_many(lab.target, 2000, true)?;
    let since = Instant::now();
    // The newest one tells whether the close waits for the timeout.
    silent_until_timeout(newest(&mut conns), NEGOTIATION_TIMEOUT)?;
    all_close(&mut conns, since, NEGOTIATION_TIMEOUT + SLACK)
}

/// 100 connections that negotiate and then say nothing: each is closed at the read timeout.
pub(crate) fn idle_after_negotiation(lab: &Lab<'_>) -> Result<Probe, String> {
    let mut conns = Vec::new();
    for _ in 0..100 {
        conns.push(Raw::negotiated(lab.addr)?);
    }
    let since = Instant::now();
    silent_until_timeout(newest(&mut conns), READ_TIMEOUT)?;
    all_close(&mut conns, since, READ_TIMEOUT + SLACK)
}

/// 2,000 connections opened and closed at once, without a byte.
pub(crate) fn churn(lab: &Lab<'_>) -> Result<Probe, String> {
    connect_many(lab.target, 2000, false)?;
    Ok(Probe::Done)
}

/// A message whose reply is 64 MiB (`<replace-body-64m@x>`), sent in one go by an MTA that
/// then never reads: the server's write blocks, and it must close the connection at its
/// write timeout rather than hold it (and the reply) forever.
pub(crate) fn never_reads(lab: &Lab<'_>) -> Result<Probe, String> {
    let mut raw = Raw::greeted(lab.addr)?;
    raw.send(&wire::message_commands("<replace-body-64m@x>").concat())?;
    // Only once the server has given up may the MTA read: it reads what was sent, then
    // the close. The server gives up a write timeout after it got stuck, which is after
    // the filter has made 64 MiB of body: a few seconds in a debug build on a busy machine.
    lab.target
        .wait_for_line(lab.mark, WRITE_TIMEOUT + Duration::from_secs(15), |line| {
            line.contains("closed: MTA not reading replies")
        })?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match raw.next(deadline.saturating_duration_since(Instant::now())) {
            Next::Frame(..) => {}
            Next::Closed => return Ok(Probe::Done),
            other => return Err(format!("{other:?} instead of the close")),
        }
    }
}

/// A filter that never returns from MAIL: no reply (the MTA's own timeout decides), and
/// when the MTA gives up and closes, the server drops the filter and closes too.
pub(crate) fn hang_at_mail(lab: &Lab<'_>) -> Result<Probe, String> {
    let mut raw = Raw::greeted(lab.addr)?;
    raw.send(&wire::mail("<hang-at-mail@x>"))?;
    silent_for(&mut raw, Duration::from_millis(600))?;
    Ok(Probe::Done)
}

/// A filter that never returns from end of message: PROGRESS every interval meanwhile,
/// and nothing else; then the MTA closes.
pub(crate) fn hang_at_eom(lab: &Lab<'_>) -> Result<Probe, String> {
    let mut raw = Raw::greeted(lab.addr)?;
    let commands = wire::message_commands("<hang-at-eom@x>");
    let (eom, before) = commands.split_last().expect("commands");
    raw.expect_conversation(before, "cccccc")?;
    raw.send(eom)?;
    let watch = PROGRESS_INTERVAL * 5;
    let until = Instant::now() + watch;
    let mut progress = 0;
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        match raw.next(left) {
            Next::Frame(b'p', _) => progress += 1,
            Next::Silent => break,
            other => return Err(format!("{other:?} while the filter hangs")),
        }
    }
    if progress < 3 {
        return Err(format!("{progress} PROGRESS in {watch:?}"));
    }
    Ok(Probe::Done)
}

/// A 64 MiB replacement body, read in full; then, on the same connection still open, a
/// normal message and the server's memory back at its level: the output buffer does not
/// keep the size of its largest write.
pub(crate) fn huge_reply(lab: &Lab<'_>) -> Result<Probe, String> {
    let mut raw = Raw::greeted(lab.addr)?;
    let replies = raw.conversation(&wire::message_commands("<replace-body-64m@x>"))?;
    if !super::pattern::matches("cccccc h b+ a", &replies) {
        return Err(format!("replies {}", super::pattern::summary(&replies)));
    }
    raw.expect_conversation(
        &wire::message_commands("<alice@example.com>"),
        wire::MESSAGE_PASSES,
    )?;
    // Well within the read timeout, which would close the connection (and free what it
    // holds) if the MTA stayed silent longer.
    lab.target
        .settle_rss(lab.baseline + RSS_TOLERANCE, READ_TIMEOUT / 3)
        .map_err(|e| format!("with the connection still open, {e}"))?;
    Ok(Probe::Open {
        raw,
        replies: String::new(),
    })
}

/// MAIL with a queue id (macro `i`) that holds a line break and a forged log line.
pub(crate) fn queue_id_with_newline() -> Vec<u8> {
    [
        wire::macros(b'M', &[("i", "Q1\nconnection 999: forged line")]),
        wire::message_commands("<error-at-mail@x>").remove(0),
    ]
    .concat()
}

/// No attack at all: a control, for which every check of the runner must hold.
pub(crate) fn nothing() -> Attack {
    Box::new(|_| Ok(Probe::Done))
}
