//! The benchmark filter on miltr (`miltr-server`, MIT), the Rust milter library the benchmark
//! compares with: the same behaviour as `examples/bench.rs` (reads every header and the whole
//! body, adds `X-Bench: 1` at end of message) and the same negotiation (every event but
//! UNKNOWN, `SKIP`, the add-header action), each command answered.
//!
//! Run: `cargo run --release --example bench_miltr [inet:PORT@ADDR] [--stats-stdin]`
//! (standard input as in `examples/bench.rs`).
//!
//! miltr serves one connection per `Server::handle_connection` call; this program accepts on
//! a current-thread tokio runtime (the runtime miltr's own examples use), sets `TCP_NODELAY`
//! on each accepted socket as the other servers do, and serves each connection in a task of
//! its own. miltr has no ACCEPT reply: its end-of-message answer is CONTINUE, which an MTA
//! takes as accepting the message.

use std::alloc::System;
use std::io::{BufRead, Write};
use std::net::SocketAddr;

use async_trait::async_trait;
use miltr_common::actions::{Action, Continue};
use miltr_common::commands::{Body, Header};
use miltr_common::modifications::ModificationResponse;
use miltr_common::modifications::headers::AddHeader;
use miltr_common::optneg::{Capability, OptNeg, Protocol};
use miltr_server::{Milter, Server};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use tokio_util::compat::TokioAsyncReadCompatExt;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Reads everything, tags the message; one per connection.
#[derive(Default)]
struct Bench {
    seen: usize,
}

#[async_trait]
impl Milter for Bench {
    type Error = &'static str;

    async fn option_negotiation(
        &mut self,
        theirs: OptNeg,
    ) -> Result<OptNeg, miltr_server::Error<Self::Error>> {
        let ours = OptNeg {
            capabilities: Capability::SMFIF_ADDHDRS,
            protocol: Protocol::NO_UNKNOWN | Protocol::SMFIP_SKIP,
            ..OptNeg::default()
        };
        Ok(ours
            .merge_compatible(&theirs)
            .map_err(miltr_common::ProtocolError::CompatibilityError)?)
    }

    async fn header(&mut self, header: Header) -> Result<Action, Self::Error> {
        self.seen += header.name().len() + header.value().len();
        Ok(Continue.into())
    }

    async fn body(&mut self, body: Body) -> Result<Action, Self::Error> {
        self.seen += body.as_bytes().len();
        Ok(Continue.into())
    }

    async fn end_of_body(&mut self) -> Result<ModificationResponse, Self::Error> {
        std::hint::black_box(self.seen);
        self.seen = 0;
        let mut response = ModificationResponse::builder();
        response.push(AddHeader::new(b"X-Bench", b"1"));
        Ok(response.contin())
    }

    async fn abort(&mut self) -> Result<(), Self::Error> {
        self.seen = 0;
        Ok(())
    }
}

fn stats_line() -> String {
    let stats = GLOBAL.stats();
    format!(
        "allocs {} reallocs {} deallocs {} bytes {}",
        stats.allocations, stats.reallocations, stats.deallocations, stats.bytes_allocated
    )
}

/// Answers each line on standard input with the heap counters; exits at end of input.
fn stats_on_stdin() {
    for line in std::io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", stats_line());
        let _ = out.flush();
    }
    std::process::exit(0);
}

fn parse_spec(spec: &str) -> Option<SocketAddr> {
    let (port, host) = spec.strip_prefix("inet:")?.split_once('@')?;
    format!("{host}:{port}").parse().ok()
}

fn main() -> std::io::Result<()> {
    let mut spec = "inet:7357@127.0.0.1".to_owned();
    let mut stats_stdin = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--stats-stdin" => stats_stdin = true,
            _ if arg.starts_with("--") => {
                eprintln!("usage: bench_miltr [inet:PORT@ADDR] [--stats-stdin]");
                std::process::exit(2);
            }
            _ => spec = arg,
        }
    }
    let Some(addr) = parse_spec(&spec) else {
        eprintln!("bench_miltr: only inet:PORT@ADDR sockets are supported");
        std::process::exit(2);
    };
    if stats_stdin {
        std::thread::spawn(stats_on_stdin);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        println!(
            "listening inet:{}@{}",
            listener.local_addr()?.port(),
            addr.ip()
        );
        std::io::stdout().flush()?;
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            tokio::spawn(async move {
                let mut milter = Bench::default();
                let mut server = Server::default_postfix(&mut milter);
                if let Err(error) = server.handle_connection(&mut stream.compat()).await {
                    eprintln!("bench_miltr: connection failed: {error:?}");
                }
            });
        }
    })
}
