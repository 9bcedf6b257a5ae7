//! Bytes on the wire, written by hand so they can be wrong, and a blocking raw connection
//! that reads the server's replies with a deadline on every wait.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use async_milter::proto::FrameDecoder;

/// The longest a single expected reply may take.
pub(crate) const REPLY_WAIT: Duration = Duration::from_secs(5);

// ===== frames =====

/// A frame: 4-byte big-endian length (code byte plus payload), code byte, payload.
pub(crate) fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len() + 1).expect("test frames fit a u32");
    let mut out = len.to_be_bytes().to_vec();
    out.push(kind);
    out.extend_from_slice(payload);
    out
}

/// NUL-terminated strings, one after the other.
pub(crate) fn cstrs(parts: &[&[u8]]) -> Vec<u8> {
    parts
        .iter()
        .flat_map(|p| p.iter().copied().chain([0]))
        .collect()
}

/// OPTNEG with these version, actions and protocol words.
pub(crate) fn optneg_with(version: u32, actions: u32, protocol: u32) -> Vec<u8> {
    let payload: Vec<u8> = [version, actions, protocol]
        .iter()
        .flat_map(|w| w.to_be_bytes())
        .collect();
    frame(b'O', &payload)
}

/// What Postfix 3.7 and Sendmail 8.17 offer: version 6, every action, every protocol flag.
pub(crate) fn optneg() -> Vec<u8> {
    optneg_with(6, 0x1ff, 0x001f_ffff)
}

/// CONNECT from `host` at 192.0.2.1 port 50000.
pub(crate) fn connect(host: &str) -> Vec<u8> {
    frame(b'C', &connect_payload(host))
}

/// The payload of [`connect`].
pub(crate) fn connect_payload(host: &str) -> Vec<u8> {
    let mut payload = cstrs(&[host.as_bytes()]);
    payload.push(b'4');
    payload.extend_from_slice(&50000_u16.to_be_bytes());
    payload.extend_from_slice(&cstrs(&[b"192.0.2.1"]));
    payload
}

pub(crate) fn helo(name: &str) -> Vec<u8> {
    frame(b'H', &cstrs(&[name.as_bytes()]))
}

pub(crate) fn mail(sender: &str) -> Vec<u8> {
    frame(b'M', &cstrs(&[sender.as_bytes()]))
}

pub(crate) fn rcpt(address: &str) -> Vec<u8> {
    frame(b'R', &cstrs(&[address.as_bytes()]))
}

pub(crate) fn header(name: &str, value: &str) -> Vec<u8> {
    frame(b'L', &cstrs(&[name.as_bytes(), value.as_bytes()]))
}

pub(crate) fn body(chunk: &[u8]) -> Vec<u8> {
    frame(b'B', chunk)
}

/// MACRO for command `kind` with name/value pairs.
pub(crate) fn macros(kind: u8, pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut payload = vec![kind];
    for (name, value) in pairs {
        payload.extend_from_slice(&cstrs(&[name.as_bytes(), value.as_bytes()]));
    }
    frame(b'D', &payload)
}

/// A command with no payload: DATA `T`, EOH `N`, EOM `E`, ABORT `A`, QUIT `Q`, `QUIT_NC` `K`.
pub(crate) fn bare(kind: u8) -> Vec<u8> {
    frame(kind, &[])
}

/// The commands of a small message from `sender`, MAIL to EOM: one recipient, one header,
/// one body chunk.
pub(crate) fn message_commands(sender: &str) -> Vec<Vec<u8>> {
    vec![
        mail(sender),
        rcpt("<bob@example.net>"),
        bare(b'T'),
        header("Subject", "hostile"),
        bare(b'N'),
        body(b"hello\r\n"),
        bare(b'E'),
    ]
}

/// The replies a passing message gets from the fault target: continue to each command up
/// to the body chunk, then `X-Fault-Target: ok` and accept.
pub(crate) const MESSAGE_PASSES: &str = "cccccc ha";

// ===== a raw connection =====

/// What one wait for the server found.
#[derive(Debug)]
pub(crate) enum Next {
    /// A frame: its code byte and payload.
    Frame(u8, Vec<u8>),
    /// The server closed the connection (end of stream or reset).
    Closed,
    /// Nothing arrived within the wait.
    Silent,
    /// The server sent bytes that are no frame.
    Garbage,
}

/// A TCP connection to the server, written and read without any protocol help.
pub(crate) struct Raw {
    pub(crate) stream: TcpStream,
    decoder: FrameDecoder,
    /// When the last bytes were sent: closures are timed from here.
    pub(crate) sent_at: Instant,
}

impl Raw {
    pub(crate) fn connect(addr: SocketAddr) -> Result<Self, String> {
        let stream = TcpStream::connect_timeout(&addr, REPLY_WAIT)
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        stream
            .set_write_timeout(Some(REPLY_WAIT))
            .map_err(|e| e.to_string())?;
        Ok(Self {
            stream,
            // Replies are at most 64 KiB; a larger bound keeps a bad reply readable.
            decoder: FrameDecoder::with_max_len(1 << 20),
            sent_at: Instant::now(),
        })
    }

    /// A connection that has negotiated (version 6, everything offered).
    pub(crate) fn negotiated(addr: SocketAddr) -> Result<Self, String> {
        let mut raw = Self::connect(addr)?;
        raw.send(&optneg())?;
        match raw.next(REPLY_WAIT) {
            Next::Frame(b'O', _) => Ok(raw),
            other => Err(format!("negotiation answered {other:?}")),
        }
    }

    /// A negotiated connection past CONNECT and HELO from a well-behaved client.
    pub(crate) fn greeted(addr: SocketAddr) -> Result<Self, String> {
        let mut raw = Self::negotiated(addr)?;
        raw.expect_conversation(
            &[connect("client.example.com"), helo("client.example.com")],
            "cc",
        )?;
        Ok(raw)
    }

    pub(crate) fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .map_err(|e| format!("sending {} bytes: {e}", bytes.len()))?;
        self.sent_at = Instant::now();
        Ok(())
    }

    /// Ends the sending side (FIN); the server may still answer.
    pub(crate) fn half_close(&self) -> Result<(), String> {
        self.stream
            .shutdown(Shutdown::Write)
            .map_err(|e| format!("half-close: {e}"))
    }

    /// The next frame, or what happened instead within `within`.
    pub(crate) fn next(&mut self, within: Duration) -> Next {
        let deadline = Instant::now() + within;
        loop {
            match self.decoder.decode() {
                Ok(Some(frame)) => return Next::Frame(frame.kind, frame.payload.to_vec()),
                Ok(None) => {}
                Err(_) => return Next::Garbage,
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return Next::Silent;
            };
            let _ = self
                .stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))));
            let mut buf = vec![0; 64 * 1024];
            match self.stream.read(&mut buf) {
                Ok(0) => return Next::Closed,
                Ok(n) => self.decoder.push(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Next::Closed,
            }
        }
    }

    /// Reads `count` replies as code characters; `Err` if the server closes or goes silent.
    pub(crate) fn replies(&mut self, count: usize) -> Result<String, String> {
        let mut got = String::new();
        while got.len() < count {
            match self.next(REPLY_WAIT) {
                Next::Frame(kind, _) => got.push(char::from(kind)),
                other => {
                    return Err(format!("after replies {got:?} the server gave {other:?}"));
                }
            }
        }
        Ok(got)
    }

    /// Reads until the server closes, for at most `within` from the last send; the replies
    /// and how long after the last send the close came.
    pub(crate) fn until_closed(&mut self, within: Duration) -> (String, Option<Duration>) {
        let deadline = self.sent_at + within;
        let mut got = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left) {
                Next::Frame(kind, _) => got.push(char::from(kind)),
                Next::Closed => return (got, Some(self.sent_at.elapsed())),
                Next::Silent => return (got, None),
                Next::Garbage => {
                    got.push('!');
                    return (got, None);
                }
            }
        }
    }

    /// Plays `commands` one at a time as an MTA does: each waits for its reply (at end of
    /// message the edits and PROGRESS before it too); stops after the first reply that ends
    /// the message (anything but continue or skip). Returns the replies as code characters.
    pub(crate) fn conversation(&mut self, commands: &[Vec<u8>]) -> Result<String, String> {
        let mut got = String::new();
        for command in commands {
            self.send(command)?;
            // One bound per command, PROGRESS or not.
            let deadline = Instant::now() + REPLY_WAIT;
            loop {
                match self.next(deadline.saturating_duration_since(Instant::now())) {
                    Next::Frame(kind, _) => {
                        got.push(char::from(kind));
                        if !b"hibm+-2eqp".contains(&kind) {
                            break;
                        }
                    }
                    other => {
                        return Err(format!("after replies {got:?} the server gave {other:?}"));
                    }
                }
            }
            if !got.ends_with(['c', 's']) {
                return Ok(got);
            }
        }
        Ok(got)
    }

    /// [`Raw::conversation`], failing unless the replies are `expected` (spaces ignored).
    pub(crate) fn expect_conversation(
        &mut self,
        commands: &[Vec<u8>],
        expected: &str,
    ) -> Result<(), String> {
        let got = self.conversation(commands)?;
        let expected: String = expected.chars().filter(|c| *c != ' ').collect();
        if got == expected {
            Ok(())
        } else {
            Err(format!("replies {got:?}, expected {expected:?}"))
        }
    }
}
