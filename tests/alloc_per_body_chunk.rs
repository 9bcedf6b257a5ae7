//! Heap allocations of a whole connection (driver, session, decoder, the filter's awaits) per
//! body chunk: a message whose body comes in 16 chunks allocates no more than the same bytes
//! in one chunk, with every event answered and with the no-reply flags the library derives.
//!
//! One test in its own binary, counted by a global allocator. Only what happens while the
//! connection's future is polled counts (the scripted MTA's own allocations do not), and
//! nothing else runs meanwhile: one thread, an in-memory pipe that does not allocate once
//! its buffers are sized, and a clock that never moves (its sleeps are zero-sized).

use std::alloc::System;
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use async_milter::connection::Builder;
use async_milter::proto::{Actions, CommandKind, Events, OptNeg, ProtocolFlags};
use async_milter::rt::{Sleep, Timer};
use async_milter::{Error, Filter, Needs, Session, Verdict};
use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Allocations made while the connection's future was polled.
static SERVER_ALLOCS: AtomicU64 = AtomicU64::new(0);

fn allocations() -> u64 {
    GLOBAL.stats().allocations as u64
}

/// A clock that stays put; its sleeps never end and, being zero-sized, allocate nothing.
struct Frozen(Instant);

impl Timer for Frozen {
    fn now(&self) -> Instant {
        self.0
    }

    fn sleep_until(&self, _deadline: Instant) -> Sleep {
        Box::pin(std::future::pending())
    }
}

/// One direction of the in-memory pipe.
struct Channel {
    bytes: VecDeque<u8>,
    reader: Option<Waker>,
    closed: bool,
}

/// One end of the pipe: reads one channel, writes the other.
struct End {
    read: Arc<Mutex<Channel>>,
    write: Arc<Mutex<Channel>>,
}

fn pipe() -> (End, End) {
    let channel = || {
        Arc::new(Mutex::new(Channel {
            // Room for the largest burst (a message's every frame); never grows after.
            bytes: VecDeque::with_capacity(1 << 20),
            reader: None,
            closed: false,
        }))
    };
    let (a, b) = (channel(), channel());
    (
        End {
            read: a.clone(),
            write: b.clone(),
        },
        End { read: b, write: a },
    )
}

impl AsyncRead for End {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut channel = self.read.lock().unwrap();
        if channel.bytes.is_empty() {
            if channel.closed {
                return Poll::Ready(Ok(0));
            }
            channel.reader = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = buf.len().min(channel.bytes.len());
        for (to, from) in buf.iter_mut().zip(channel.bytes.drain(..n)) {
            *to = from;
        }
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for End {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut channel = self.write.lock().unwrap();
        assert!(
            channel.bytes.len() + buf.len() <= channel.bytes.capacity(),
            "the pipe would grow"
        );
        channel.bytes.extend(buf);
        if let Some(reader) = channel.reader.take() {
            reader.wake();
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut channel = self.write.lock().unwrap();
        channel.closed = true;
        if let Some(reader) = channel.reader.take() {
            reader.wake();
        }
        Poll::Ready(Ok(()))
    }
}

/// The benchmark's filter: reads every header and chunk, adds a header, accepts. With
/// `answers` it answers every event; without, it declares none and the library negotiates
/// the no-reply flags.
struct Tagger {
    answers: bool,
}

impl Filter for Tagger {
    fn needs(&self) -> Needs {
        let needs = Needs::new()
            .events(Events::ALL - Events::UNKNOWN)
            .actions(Actions::ADD_HEADERS);
        if self.answers {
            needs.answers(Events::ALL)
        } else {
            needs
        }
    }

    async fn filter(&self, session: &mut Session) -> Result<Verdict, Error> {
        let mut seen = 0;
        while let Some(header) = session.next_header().await? {
            seen += header.value.as_bytes().len();
        }
        while let Some(chunk) = session.next_body_chunk().await? {
            seen += chunk.len();
        }
        session.end_of_message().await?;
        std::hint::black_box(seen);
        session.add_header("X-Tagged", "1")?;
        Ok(Verdict::Accept)
    }
}

/// The MTA side, scripted frame by frame.
struct Mta {
    end: End,
    agreed: OptNeg,
}

fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(payload.len() + 1)
        .unwrap()
        .to_be_bytes()
        .to_vec();
    out.push(kind);
    out.extend_from_slice(payload);
    out
}

impl Mta {
    async fn read_frame(&mut self) -> (u8, Vec<u8>) {
        let mut head = [0; 5];
        self.end.read_exact(&mut head).await.unwrap();
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let mut payload = vec![0; len - 1];
        self.end.read_exact(&mut payload).await.unwrap();
        (head[4], payload)
    }

    /// Sends a command; waits for CONTINUE if one is due.
    async fn send(&mut self, command: CommandKind, kind: u8, payload: &[u8]) {
        self.end.write_all(&frame(kind, payload)).await.unwrap();
        if self.agreed.expects_reply(command) {
            let (reply, _) = self.read_frame().await;
            assert_eq!(reply, b'c', "{command:?} answered {:?}", reply as char);
        }
    }

    async fn negotiate(end: End) -> Self {
        let mut offer = Vec::new();
        for field in [6, Actions::V6.bits(), ProtocolFlags::V6.bits()] {
            offer.extend_from_slice(&u32::to_be_bytes(field));
        }
        let mut mta = Self {
            end,
            agreed: OptNeg {
                version: 6,
                actions: Actions::EMPTY,
                protocol: ProtocolFlags::EMPTY,
            },
        };
        mta.end.write_all(&frame(b'O', &offer)).await.unwrap();
        let (kind, reply) = mta.read_frame().await;
        assert_eq!(kind, b'O');
        let field = |i: usize| u32::from_be_bytes(reply[i..i + 4].try_into().unwrap());
        mta.agreed = OptNeg {
            version: field(0),
            actions: Actions::from_bits(field(4)),
            protocol: ProtocolFlags::from_bits(field(8)),
        };
        mta.send(
            CommandKind::Connect,
            b'C',
            b"client.example.com\0\x34\x9c\x40192.0.2.1\0",
        )
        .await;
        mta.send(CommandKind::Helo, b'H', b"client.example.com\0")
            .await;
        mta
    }

    /// One message whose 2 KiB body comes in `chunks` chunks; checks the tag and the accept.
    async fn message(&mut self, chunks: usize) {
        self.send(CommandKind::Mail, b'M', b"<alice@example.com>\0")
            .await;
        self.send(CommandKind::Rcpt, b'R', b"<bob@example.net>\0")
            .await;
        self.send(CommandKind::Data, b'T', b"").await;
        for (name, value) in [
            ("From", " Alice <alice@example.com>"),
            ("To", " Bob <bob@example.net>"),
            ("Subject", " Quarterly report"),
        ] {
            let payload = [name.as_bytes(), b"\0", value.as_bytes(), b"\0"].concat();
            self.send(CommandKind::Header, b'L', &payload).await;
        }
        self.send(CommandKind::EndOfHeaders, b'N', b"").await;
        let body = [b'x'; 2048];
        for chunk in body.chunks(body.len() / chunks) {
            self.send(CommandKind::Body, b'B', chunk).await;
        }
        self.end.write_all(&frame(b'E', b"")).await.unwrap();
        assert_eq!(self.read_frame().await, (b'h', b"X-Tagged\x001\0".to_vec()));
        assert_eq!(self.read_frame().await.0, b'a');
        self.end.write_all(&frame(b'A', b"")).await.unwrap();
    }

    /// The connection's allocations over `MESSAGES` messages of `chunks` chunks.
    async fn allocations(&mut self, chunks: usize) -> u64 {
        let before = SERVER_ALLOCS.load(Ordering::Relaxed);
        for _ in 0..MESSAGES {
            self.message(chunks).await;
        }
        SERVER_ALLOCS.load(Ordering::Relaxed) - before
    }
}

/// Polls `future`, adding the allocations made meanwhile to `SERVER_ALLOCS`.
async fn counted<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    std::future::poll_fn(|cx| {
        let before = allocations();
        let poll = future.as_mut().poll(cx);
        SERVER_ALLOCS.fetch_add(allocations() - before, Ordering::Relaxed);
        poll
    })
    .await
}

/// Messages of each kind measured.
const MESSAGES: u64 = 50;

/// Runs the script against a fresh connection; returns the allocations of `MESSAGES`
/// messages in one chunk, of as many in 16 chunks, and the negotiated options.
fn measure(answers: bool) -> (u64, u64, OptNeg) {
    let (mta_end, filter_end) = pipe();
    let connection = Builder::new(Frozen(Instant::now())).serve(filter_end, Tagger { answers });
    let script = async move {
        let mut mta = Mta::negotiate(mta_end).await;
        for _ in 0..8 {
            mta.message(1).await;
            mta.message(16).await;
        }
        let one = mta.allocations(1).await;
        let sixteen = mta.allocations(16).await;
        mta.end.write_all(&frame(b'Q', b"")).await.unwrap();
        (one, sixteen, mta.agreed)
    };
    let (served, measured) =
        futures::executor::block_on(futures::future::join(counted(connection), script));
    served.unwrap();
    measured
}

#[test]
fn body_chunks_cost_no_allocation() {
    for answers in [true, false] {
        let (one, sixteen, agreed) = measure(answers);
        // Declaring no answers is all it takes: every no-reply flag on offer is derived.
        let every_no_reply = ProtocolFlags::NR_CONNECT
            | ProtocolFlags::NR_HELO
            | ProtocolFlags::NR_MAIL
            | ProtocolFlags::NR_RCPT
            | ProtocolFlags::NR_DATA
            | ProtocolFlags::NR_HEADER
            | ProtocolFlags::NR_EOH
            | ProtocolFlags::NR_BODY;
        let expected = if answers {
            ProtocolFlags::EMPTY
        } else {
            every_no_reply
        };
        assert_eq!(
            agreed.protocol & every_no_reply,
            expected,
            "negotiated {agreed:?}"
        );
        println!(
            "answers {answers}: {MESSAGES} messages allocate {one} times with the body in 1 chunk, {sixteen} in 16"
        );
        assert!(
            sixteen <= one,
            "answers {answers}: {MESSAGES} messages allocate {one} times with the body in 1 chunk but {sixteen} in 16"
        );
    }
}
