//! The wire floor for the benchmark: the thinnest server that answers the benchmark filter's
//! frames correctly with the least possible work.
//!
//! One thread, one epoll loop (mio), one shared read buffer; each connection keeps only a
//! few bytes of parser state. Payloads are skipped as they stream by (only OPTNEG's twelve
//! bytes are kept), every command that expects an answer gets CONTINUE, and end of message
//! gets ADDHEADER `X-Bench: 1` plus ACCEPT; all answers to what one read brought in go out
//! in one write. It negotiates what the library negotiates for the benchmark filter (every
//! event but UNKNOWN, SKIP; with `--no-reply` no SKIP but a no-reply flag for every event:
//! `NR_CONN`, `NR_HELO`, `NR_MAIL`, `NR_RCPT`, `NR_DATA`, `NR_HDR`, `NR_EOH`, `NR_BODY`) and
//! answers nothing where a no-reply flag was agreed.
//!
//! Run: `cargo run --release --example bench_floor [inet:PORT@ADDR] [--no-reply]
//! [--async-std] [--stats-stdin]` (standard input as in `examples/bench.rs`).
//!
//! `--async-std`: the same parser and answers, but each connection is an async-std task
//! reading and writing through async-std's reactor, as the library's server does: the
//! difference to the epoll loop is the runtime's cost per wake-up, the difference to the
//! library is the library's own.
//!
//! Both listen with a backlog of 4096, as the library's server and the libmilter filter do:
//! with the standard library's 128 a burst of connections (workload W6) would measure the
//! kernel's SYN retransmission timer rather than the server.

use std::alloc::System;
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const LISTENER: Token = Token(0);
const STDIN: Token = Token(1);
const FIRST_CONN: usize = 2;

// Protocol flags (SMFIP_*), as negotiated by the library for the benchmark filter.
const NO_UNKNOWN: u32 = 0x100;
const SKIP: u32 = 0x400;
const NR_HDR: u32 = 0x80;
const NR_EOH: u32 = 0x4_0000;
const NR_BODY: u32 = 0x8_0000;
const NR_CONN: u32 = 0x1000;
const NR_HELO: u32 = 0x2000;
const NR_MAIL: u32 = 0x4000;
const NR_RCPT: u32 = 0x8000;
const NR_DATA: u32 = 0x1_0000;
const NR_UNKN: u32 = 0x2_0000;
/// With `--no-reply`: what the library derives for a filter that sees every event but
/// UNKNOWN and answers none of them before end of message.
const NO_REPLY: u32 =
    NO_UNKNOWN | NR_CONN | NR_HELO | NR_MAIL | NR_RCPT | NR_DATA | NR_HDR | NR_EOH | NR_BODY;
/// `SMFIF_ADDHDRS`.
const ADD_HEADERS: u32 = 0x01;

const CONTINUE: [u8; 5] = [0, 0, 0, 1, b'c'];
/// ADDHEADER "X-Bench" "1", then ACCEPT.
const END_OF_MESSAGE: &[u8] = b"\0\0\0\x0bhX-Bench\x001\x00\0\0\0\x01a";

/// A connection: its socket, its parser, output the socket did not take at once.
struct Conn {
    stream: TcpStream,
    parser: Parser,
    /// Output the socket did not take at once (rare; allocated only then).
    unsent: Vec<u8>,
}

/// What a connection has parsed so far of the frame at the front.
struct Parser {
    head: [u8; 5],
    head_len: u8,
    /// Payload bytes of the current frame still to come.
    remaining: u32,
    optneg: [u8; 12],
    optneg_len: u8,
    /// Agreed protocol flags.
    protocol: u32,
}

enum Next {
    Keep,
    Close,
}

impl Parser {
    fn new() -> Self {
        Self {
            head: [0; 5],
            head_len: 0,
            remaining: 0,
            optneg: [0; 12],
            optneg_len: 0,
            protocol: 0,
        }
    }

    /// Parses `input`, appending answers to `out`.
    fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>, wanted: u32) -> Next {
        while !input.is_empty() {
            if self.head_len < 5 {
                let at = self.head_len as usize;
                let take = (5 - at).min(input.len());
                self.head[at..at + take].copy_from_slice(&input[..take]);
                self.head_len += take as u8;
                input = &input[take..];
                if self.head_len < 5 {
                    break;
                }
                let len =
                    u32::from_be_bytes([self.head[0], self.head[1], self.head[2], self.head[3]]);
                if len == 0 {
                    return Next::Close;
                }
                self.remaining = len - 1;
            } else {
                let take = (self.remaining as usize).min(input.len());
                if self.head[4] == b'O' {
                    let at = self.optneg_len as usize;
                    let keep = take.min(12 - at);
                    self.optneg[at..at + keep].copy_from_slice(&input[..keep]);
                    self.optneg_len += keep as u8;
                }
                self.remaining -= take as u32;
                input = &input[take..];
            }
            if self.head_len == 5 && self.remaining == 0 {
                self.head_len = 0;
                if let Next::Close = self.answer(out, wanted) {
                    return Next::Close;
                }
            }
        }
        Next::Keep
    }

    /// Answers the frame just completed.
    fn answer(&mut self, out: &mut Vec<u8>, wanted: u32) -> Next {
        let no_reply = match self.head[4] {
            b'O' => {
                let field = |i: usize| {
                    u32::from_be_bytes([
                        self.optneg[i],
                        self.optneg[i + 1],
                        self.optneg[i + 2],
                        self.optneg[i + 3],
                    ])
                };
                if self.optneg_len < 12 {
                    return Next::Close;
                }
                let version = field(0).min(6);
                let actions = field(4) & ADD_HEADERS;
                self.protocol = field(8) & wanted;
                out.extend_from_slice(&[0, 0, 0, 13, b'O']);
                out.extend_from_slice(&version.to_be_bytes());
                out.extend_from_slice(&actions.to_be_bytes());
                out.extend_from_slice(&self.protocol.to_be_bytes());
                return Next::Keep;
            }
            b'E' => {
                out.extend_from_slice(END_OF_MESSAGE);
                return Next::Keep;
            }
            b'Q' => return Next::Close,
            b'C' => NR_CONN,
            b'H' => NR_HELO,
            b'M' => NR_MAIL,
            b'R' => NR_RCPT,
            b'T' => NR_DATA,
            b'L' => NR_HDR,
            b'N' => NR_EOH,
            b'B' => NR_BODY,
            b'U' => NR_UNKN,
            // MACRO, ABORT, QUIT_NC: no answer.
            _ => return Next::Keep,
        };
        if self.protocol & no_reply == 0 {
            out.extend_from_slice(&CONTINUE);
        }
        Next::Keep
    }
}

impl Conn {
    fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            parser: Parser::new(),
            unsent: Vec::new(),
        }
    }

    /// Writes what is pending; false if the connection is gone.
    fn write(&mut self, out: &[u8]) -> bool {
        let mut rest = out;
        if !self.unsent.is_empty() {
            self.unsent.extend_from_slice(out);
            let pending = std::mem::take(&mut self.unsent);
            let ok = self.write(&pending);
            return ok;
        }
        while !rest.is_empty() {
            match self.stream.write(rest) {
                Ok(0) => return false,
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.unsent.extend_from_slice(rest);
                    return true;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        true
    }
}

fn stats_line() -> String {
    let stats = GLOBAL.stats();
    format!(
        "allocs {} reallocs {} deallocs {} bytes {}",
        stats.allocations, stats.reallocations, stats.deallocations, stats.bytes_allocated
    )
}

/// A non-blocking TCP listener on `addr` with a backlog of 4096.
fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

fn parse_spec(spec: &str) -> Option<SocketAddr> {
    let rest = spec.strip_prefix("inet:")?;
    let (port, host) = rest.split_once('@')?;
    format!("{host}:{port}").parse().ok()
}

#[allow(clippy::too_many_lines)] // one event loop, kept in one piece to read as the floor
fn main() -> std::io::Result<()> {
    let mut spec = "inet:7357@127.0.0.1".to_owned();
    let mut wanted = NO_UNKNOWN | SKIP;
    let mut stats_stdin = false;
    let mut on_async_std = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--no-reply" => wanted = NO_REPLY,
            "--stats-stdin" => stats_stdin = true,
            "--async-std" => on_async_std = true,
            _ if arg.starts_with("--") => {
                eprintln!(
                    "usage: bench_floor [inet:PORT@ADDR] [--no-reply] [--async-std] [--stats-stdin]"
                );
                std::process::exit(2);
            }
            _ => spec = arg,
        }
    }
    let Some(addr) = parse_spec(&spec) else {
        eprintln!("bench_floor: only inet:PORT@ADDR sockets are supported");
        std::process::exit(2);
    };
    if stats_stdin && on_async_std {
        std::thread::spawn(stats_on_stdin);
    }
    if on_async_std {
        return serve_on_async_std(addr, wanted);
    }

    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut listener = TcpListener::from_std(bind(addr)?);
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    if stats_stdin {
        poll.registry()
            .register(&mut SourceFd(&0), STDIN, Interest::READABLE)?;
    }
    println!(
        "listening inet:{}@{}",
        listener.local_addr()?.port(),
        addr.ip()
    );
    std::io::stdout().flush()?;

    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in &events {
            match event.token() {
                LISTENER => loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            stream.set_nodelay(true)?;
                            let slot = free.pop().unwrap_or_else(|| {
                                conns.push(None);
                                conns.len() - 1
                            });
                            poll.registry().register(
                                &mut stream,
                                Token(slot + FIRST_CONN),
                                Interest::READABLE | Interest::WRITABLE,
                            )?;
                            conns[slot] = Some(Conn::new(stream));
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => {
                            eprintln!("bench_floor: accept: {e}");
                            break;
                        }
                    }
                },
                STDIN => {
                    let mut line = [0u8; 256];
                    match std::io::stdin().lock().read(&mut line) {
                        Ok(0) | Err(_) => std::process::exit(0),
                        Ok(n) => {
                            let mut stdout = std::io::stdout().lock();
                            for _ in line[..n].iter().filter(|&&b| b == b'\n') {
                                writeln!(stdout, "{}", stats_line())?;
                            }
                            stdout.flush()?;
                        }
                    }
                }
                Token(token) => {
                    let slot = token - FIRST_CONN;
                    let Some(Some(conn)) = conns.get_mut(slot) else {
                        continue;
                    };
                    let mut open = true;
                    if event.is_readable() {
                        out.clear();
                        loop {
                            match conn.stream.read(&mut buf) {
                                Ok(0) => {
                                    open = false;
                                    break;
                                }
                                Ok(n) => {
                                    if let Next::Close =
                                        conn.parser.feed(&buf[..n], &mut out, wanted)
                                    {
                                        open = false;
                                        break;
                                    }
                                    if n < buf.len() {
                                        // A short read drained the socket (edge-triggered:
                                        // anything arriving later raises a new event).
                                        break;
                                    }
                                }
                                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                                Err(_) => {
                                    open = false;
                                    break;
                                }
                            }
                        }
                        if !out.is_empty() && !conn.write(&out) {
                            open = false;
                        }
                    } else if event.is_writable() && !conn.unsent.is_empty() && !conn.write(&[]) {
                        open = false;
                    }
                    if !open {
                        if let Some(mut conn) = conns[slot].take() {
                            let _ = poll.registry().deregister(&mut conn.stream);
                        }
                        free.push(slot);
                    }
                }
            }
        }
    }
}

/// Answers each line on standard input with the heap counters; exits at end of input.
fn stats_on_stdin() {
    let mut line = String::new();
    loop {
        line.clear();
        match std::io::stdin().read_line(&mut line) {
            Ok(0) | Err(_) => std::process::exit(0),
            Ok(_) => {
                let mut stdout = std::io::stdout().lock();
                let _ = writeln!(stdout, "{}", stats_line());
                let _ = stdout.flush();
            }
        }
    }
}

thread_local! {
    /// One read buffer per thread, borrowed only inside a poll (never across an await).
    static READ_BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; 64 * 1024]);
}

/// The floor's parser on async-std: a task per connection, the runtime's reactor for I/O.
fn serve_on_async_std(addr: SocketAddr, wanted: u32) -> std::io::Result<()> {
    use futures::io::{AsyncRead, AsyncWriteExt};

    async_std::task::block_on(async move {
        let listener = async_std::net::TcpListener::from(bind(addr)?);
        println!(
            "listening inet:{}@{}",
            listener.local_addr()?.port(),
            addr.ip()
        );
        std::io::stdout().flush()?;
        loop {
            let (mut stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            async_std::task::spawn(async move {
                let mut parser = Parser::new();
                let mut out = Vec::with_capacity(256);
                loop {
                    let next = std::future::poll_fn(|cx| {
                        READ_BUF.with(|buf| {
                            let mut buf = buf.borrow_mut();
                            match std::pin::Pin::new(&mut stream).poll_read(cx, &mut buf) {
                                std::task::Poll::Ready(Ok(0) | Err(_)) => {
                                    std::task::Poll::Ready(Next::Close)
                                }
                                std::task::Poll::Ready(Ok(n)) => {
                                    std::task::Poll::Ready(parser.feed(&buf[..n], &mut out, wanted))
                                }
                                std::task::Poll::Pending => std::task::Poll::Pending,
                            }
                        })
                    })
                    .await;
                    if !out.is_empty() {
                        if stream.write_all(&out).await.is_err() {
                            return;
                        }
                        out.clear();
                    }
                    if let Next::Close = next {
                        return;
                    }
                }
            });
        }
    })
}
