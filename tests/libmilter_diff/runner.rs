//! The MTA side: plays a scripted conversation over a unix socket the way an MTA would, and
//! records every packet the filter sends.
//!
//! Written from raw bytes (not the crate's client or encoder), so that the crate's own
//! framing is under test too. MTA rules applied, as Postfix and Sendmail do (protocol
//! reference §2.1, §5.4): a command the filter negotiated away (`NO_*`, or absent from the
//! negotiated version) is not sent; a command under a negotiated `NR_*` flag is not waited
//! for; after a connection-level verdict nothing but QUIT is sent; after a message-level
//! verdict (or accept or discard at RCPT) the rest of that message is not sent; after SKIP
//! no more body chunks. Every wait is bounded.

use std::fmt::Write as _;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// The longest wait for one packet. Both filters answer within milliseconds on loopback;
/// the margin is for a loaded CI machine.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The wait where libmilter is known to stay silent (it drops commands it finds malformed
/// or out of order, and the MTA times out): the conversation ends there.
pub(crate) const SILENCE_TIMEOUT: Duration = Duration::from_secs(2);

/// A packet: its code byte and payload.
pub(crate) type Packet = (u8, Vec<u8>);

/// How the wait after a command ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// A final answer came (the last packet in `replies`).
    Answered,
    /// The filter closed the connection.
    Closed,
    /// Nothing more within the read timeout.
    Timeout,
}

/// One command that expected an answer (or QUIT, after which the rest of the stream is
/// read), with what the filter sent back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Exchange {
    /// The command's code byte.
    pub(crate) command: u8,
    /// Its index in the script.
    pub(crate) step: usize,
    /// Every packet received for it, in order.
    pub(crate) replies: Vec<Packet>,
    pub(crate) end: End,
}

/// What a filter answered over one conversation.
pub(crate) type Transcript = Vec<Exchange>;

/// `NO_*` bit that suppresses a command.
fn suppress_bit(command: u8) -> u32 {
    match command {
        b'C' => 0x01,
        b'H' => 0x02,
        b'M' => 0x04,
        b'R' => 0x08,
        b'B' => 0x10,
        b'L' => 0x20,
        b'N' => 0x40,
        b'U' => 0x100,
        b'T' => 0x200,
        _ => 0,
    }
}

/// `NR_*` bit under which a command gets no answer.
fn no_reply_bit(command: u8) -> u32 {
    match command {
        b'C' => 0x1000,
        b'H' => 0x2000,
        b'M' => 0x4000,
        b'R' => 0x8000,
        b'T' => 0x1_0000,
        b'U' => 0x2_0000,
        b'L' => 0x80,
        b'N' => 0x4_0000,
        b'B' => 0x8_0000,
        _ => 0,
    }
}

/// Commands that carry an answer at all (ABORT, MACRO, QUIT and `QUIT_NC` do not).
fn expects_reply(command: u8) -> bool {
    !matches!(command, b'A' | b'D' | b'Q' | b'K')
}

/// Packets that come before the final answer: PROGRESS and the end-of-message edits.
fn is_final(code: u8) -> bool {
    !matches!(
        code,
        b'p' | b'+' | b'-' | b'2' | b'b' | b'e' | b'h' | b'i' | b'm' | b'q'
    )
}

/// The state an MTA keeps about the filter.
#[derive(Default)]
struct Mta {
    version: u32,
    protocol: u32,
    /// A verdict at CONNECT or HELO: nothing but QUIT is sent any more.
    connection_done: bool,
    /// A verdict for the current message: its remaining commands are not sent.
    message_done: bool,
    /// SKIP answered a body chunk: no more chunks for this message.
    body_skipped: bool,
}

impl Mta {
    /// Whether an MTA would send `command` now.
    fn sends(&self, command: u8) -> bool {
        if self.connection_done {
            return command == b'Q';
        }
        if self.version != 0 && self.protocol & suppress_bit(command) != 0 {
            return false;
        }
        match command {
            b'U' => self.version >= 3,
            b'T' => self.version >= 4 && !self.message_done,
            b'B' => !self.message_done && !self.body_skipped,
            b'R' | b'L' | b'N' | b'E' => !self.message_done,
            _ => true,
        }
    }

    fn waits_for(&self, command: u8) -> bool {
        expects_reply(command) && self.protocol & no_reply_bit(command) == 0
    }

    /// Takes in the final answer `code` to `command`.
    fn answered(&mut self, command: u8, code: u8) {
        let refused = matches!(code, b'a' | b'r' | b't' | b'd' | b'y' | b'4');
        match command {
            b'C' | b'H' if code != b'c' => self.connection_done = true,
            b'M' | b'T' | b'L' | b'N' | b'B' | b'E' if refused => self.message_done = true,
            b'R' if matches!(code, b'a' | b'd') => self.message_done = true,
            b'B' if code == b's' => self.body_skipped = true,
            _ => {}
        }
    }

    /// Takes in a command just sent.
    fn sent(&mut self, command: u8) {
        match command {
            b'M' | b'A' | b'H' => {
                self.message_done = false;
                self.body_skipped = false;
            }
            b'K' => {
                self.connection_done = false;
                self.message_done = false;
                self.body_skipped = false;
            }
            _ => {}
        }
    }
}

fn frame(code: u8, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len() + 1).expect("small frame");
    let mut out = Vec::with_capacity(payload.len() + 5);
    out.extend_from_slice(&len.to_be_bytes());
    out.push(code);
    out.extend_from_slice(payload);
    out
}

/// Reads one packet: `Ok(None)` at end of stream.
fn read_packet(stream: &mut UnixStream) -> std::io::Result<Option<Packet>> {
    let mut header = [0u8; 5];
    match stream.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    assert!(
        (1..=1 << 20).contains(&len),
        "filter sent a packet of length {len}"
    );
    let mut payload = vec![0; len - 1];
    stream.read_exact(&mut payload)?;
    Ok(Some((header[4], payload)))
}

/// Reads packets until a final answer (`until_final`) or the end of the stream.
fn collect(stream: &mut UnixStream, until_final: bool) -> (Vec<Packet>, End) {
    let mut replies = Vec::new();
    loop {
        match read_packet(stream) {
            Ok(Some(packet)) => {
                let last = until_final && is_final(packet.0);
                replies.push(packet);
                if last {
                    return (replies, End::Answered);
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return (replies, End::Timeout);
            }
            Ok(None) | Err(_) => return (replies, End::Closed),
        }
    }
}

/// Plays `script` (packets as code and payload) against the filter listening at `socket`,
/// waiting at most `timeout` for each packet.
pub(crate) fn play(socket: &Path, script: &[Packet], timeout: Duration) -> Transcript {
    let mut stream = UnixStream::connect(socket).expect("connect to the filter");
    stream
        .set_read_timeout(Some(timeout))
        .expect("read timeout");
    let mut mta = Mta::default();
    let mut transcript = Vec::new();
    for (step, (command, payload)) in script.iter().enumerate() {
        let command = *command;
        if !mta.sends(command) {
            continue;
        }
        // A write to a filter that has closed fails; what it sent before is read below.
        let written = stream.write_all(&frame(command, payload)).is_ok();
        mta.sent(command);
        if command == b'Q' || !written {
            let _ = stream.shutdown(std::net::Shutdown::Write);
            let (replies, end) = collect(&mut stream, false);
            transcript.push(Exchange {
                command,
                step,
                replies,
                end,
            });
            return transcript;
        }
        // OPTNEG is always answered; other commands as the negotiated flags say.
        if command != b'O' && !mta.waits_for(command) {
            continue;
        }
        let (replies, end) = collect(&mut stream, true);
        if command == b'O' {
            match replies.as_slice() {
                [(b'O', reply)] if reply.len() >= 12 => {
                    mta.version = u32::from_be_bytes(reply[0..4].try_into().expect("4 bytes"));
                    mta.protocol = u32::from_be_bytes(reply[8..12].try_into().expect("4 bytes"));
                }
                _ => {}
            }
        } else if let (End::Answered, Some((code, _))) = (&end, replies.last()) {
            mta.answered(command, *code);
        }
        let over = end != End::Answered;
        transcript.push(Exchange {
            command,
            step,
            replies,
            end,
        });
        if over {
            return transcript;
        }
    }
    transcript
}

/// A packet for a report: its code and payload, control bytes escaped, long payloads cut.
pub(crate) fn show(packet: &Packet) -> String {
    let (code, payload) = packet;
    let mut text = String::new();
    for &b in payload.iter().take(120) {
        match b {
            0 => text.push_str("\\0"),
            b'\r' => text.push_str("\\r"),
            b'\n' => text.push_str("\\n"),
            0x20..=0x7e => text.push(b as char),
            _ => {
                let _ = write!(text, "\\x{b:02x}");
            }
        }
    }
    if payload.len() > 120 {
        let _ = write!(text, "…({} bytes)", payload.len());
    }
    format!("'{}' {text}", *code as char)
}

/// An exchange for a report.
pub(crate) fn show_exchange(exchange: Option<&Exchange>) -> String {
    let Some(exchange) = exchange else {
        return "(nothing: the conversation had ended)".to_owned();
    };
    let replies: Vec<String> = exchange.replies.iter().map(show).collect();
    format!(
        "after '{}' (step {}): [{}] {:?}",
        exchange.command as char,
        exchange.step,
        replies.join(", "),
        exchange.end
    )
}
