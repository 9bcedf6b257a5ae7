//! The benchmark filter: reads every header and the whole body, then adds `X-Bench: 1` at end
//! of message and accepts. `cargo bench --bench milter` drives it; anyone can drive it with
//! their own load generator.
//!
//! Run: `cargo run --release --example bench [SOCKET] [--no-reply] [--delay-ms N]
//! [--stats-stdin]` (default socket `inet:7357@127.0.0.1`).
//!
//! * `--no-reply`: the filter is a tagger that answers nothing before end of message, and
//!   says only what it does: the events it reads and the header it adds. It declares no
//!   answers and no protocol flags; the library derives from that a no-reply flag for every
//!   event the MTA offers one for (`NR_CONN` ... `NR_BODY`), so the MTA waits for nothing but
//!   the end of message. Without it every event is answered (the default negotiation).
//! * `--tokio`: serve on a current-thread tokio runtime instead of async-std; `--smol`: on
//!   smol (`SMOL_THREADS` executor threads, 1 by default). Same `Server`, another
//!   `rt::Runtime`, to compare the runtimes' per-wake-up costs.
//! * `--delay-ms N`: wait N milliseconds at end of message before answering, on the
//!   runtime's timer (not a blocking sleep), as a filter waiting on a lookup would.
//!   `cargo bench --bench soak` uses it to check that throughput follows concurrency.
//! * `--stats-stdin`: each line read on standard input prints the heap counters
//!   (`allocs N reallocs N deallocs N bytes N freed N library_allocs N harness_allocs N`:
//!   bytes allocated and freed, so `bytes - freed` is the live heap, then the library's own
//!   share of the allocations) on standard output; end of input stops the server. Without
//!   it the counters are printed at SIGINT/SIGTERM.
//!
//! Heap allocations are counted by a wrapping global allocator (a few uncontended atomic
//! additions per allocation), so the benchmark can report allocations per message and per
//! body chunk; the runtime is wrapped so that the library's own share is counted apart
//! (`bench/attribution.rs`).

#[path = "bench/attribution.rs"]
mod attribution;

use async_milter::proto::{Actions, Events, ProtocolFlags};
use async_milter::rt::{AsyncStd, Runtime, Smol, Timer, Tokio};
use async_milter::server::{Server, ServerConfig, termination_signal};
use async_milter::{Error, Filter, Needs, Session, Verdict};
use attribution::{Attributed, as_library};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use std::alloc::System;
use std::io::{BufRead, Write};
use std::time::Duration;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Reads everything, tags the message.
struct Bench {
    no_reply: bool,
    /// How long to wait at end of message (a simulated lookup), on `timer`.
    delay: Option<Duration>,
    /// The serving runtime's timer, so the wait suspends the task instead of a thread.
    timer: Box<dyn Timer>,
}

impl Filter for Bench {
    fn needs(&self) -> Needs {
        // It awaits only headers, body and end of message, but sees every event on purpose:
        // the workloads measure the cost of a whole SMTP conversation, and `bench_floor` and
        // the libmilter filter negotiate the same (every event but UNKNOWN). It adds one
        // header.
        let sees = Needs::new()
            .events(Events::ALL - Events::UNKNOWN)
            .actions(Actions::ADD_HEADERS);
        if self.no_reply {
            // A tagger: nothing said about answers, so it answers nothing before end of
            // message and the library negotiates the no-reply flags.
            sees
        } else {
            // Answers every event, and may skip the rest of the body.
            sees.answers(Events::ALL).options(ProtocolFlags::SKIP)
        }
    }

    async fn filter(&self, session: &mut Session) -> Result<Verdict, Error> {
        let mut seen = 0usize;
        while let Some(header) = session.next_header().await? {
            seen += header.name.as_bytes().len() + header.value.as_bytes().len();
        }
        while let Some(chunk) = session.next_body_chunk().await? {
            seen += chunk.len();
        }
        session.end_of_message().await?;
        std::hint::black_box(seen);
        if let Some(delay) = self.delay {
            self.timer.sleep(delay).await;
        }
        session.add_header("X-Bench", "1")?;
        Ok(Verdict::Accept)
    }
}

/// The heap counters as one line: the process's, then the library's own share and the
/// attribution wrapper's own allocations (`bench/attribution.rs`).
fn stats_line() -> String {
    let stats = GLOBAL.stats();
    let (library, harness) = attribution::counters();
    format!(
        "allocs {} reallocs {} deallocs {} bytes {} freed {} library_allocs {library} \
         harness_allocs {harness}",
        stats.allocations,
        stats.reallocations,
        stats.deallocations,
        stats.bytes_allocated,
        stats.bytes_deallocated
    )
}

fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let mut spec = "inet:7357@127.0.0.1".to_owned();
    let mut no_reply = false;
    let mut stats_stdin = false;
    let mut delay = None;
    let mut runtime = "async-std";
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--no-reply" => no_reply = true,
            "--stats-stdin" => stats_stdin = true,
            "--tokio" => runtime = "tokio",
            "--smol" => runtime = "smol",
            "--delay-ms" => match args.next().and_then(|ms| ms.parse().ok()) {
                Some(ms) => delay = Some(Duration::from_millis(ms)),
                None => usage(),
            },
            _ if arg.starts_with("--") => usage(),
            _ => spec = arg,
        }
    }
    if stats_stdin {
        std::thread::spawn(stats_on_stdin);
    }
    let options = Options {
        no_reply,
        delay,
        stats_stdin,
    };
    match runtime {
        "tokio" => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(serve_on(Tokio, &spec, &options)),
        "smol" => smol::block_on(serve_on(Smol, &spec, &options)),
        _ => async_std::task::block_on(serve_on(AsyncStd, &spec, &options)),
    }
}

fn usage() -> ! {
    eprintln!("usage: bench [SOCKET] [--no-reply] [--delay-ms N] [--tokio|--smol] [--stats-stdin]");
    std::process::exit(2);
}

/// The command line's settings.
struct Options {
    no_reply: bool,
    delay: Option<Duration>,
    stats_stdin: bool,
}

/// Answers each line on standard input with the heap counters; exits at end of input.
fn stats_on_stdin() {
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        if line.is_err() {
            break;
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", stats_line());
        let _ = out.flush();
    }
    std::process::exit(0);
}

/// Binds `spec` on `runtime`, prints the bound address and serves until SIGINT/SIGTERM
/// (or forever with `--stats-stdin`, which ends the process itself).
async fn serve_on<R: Runtime>(runtime: R, spec: &str, options: &Options) -> std::io::Result<()> {
    let filter = Bench {
        no_reply: options.no_reply,
        delay: options.delay,
        timer: Box::new(runtime.clone()),
    };
    let server = Server::bind_on(Attributed(runtime), spec, ServerConfig::default()).await?;
    // The bench reads the bound address (port 0 picks a free one) from this line.
    println!("listening {}", server.local_spec());
    std::io::stdout().flush()?;
    if options.stats_stdin {
        as_library(server.serve_until(filter, std::future::pending::<()>())).await
    } else {
        let result = as_library(server.serve_until(filter, termination_signal())).await;
        println!("{}", stats_line());
        result
    }
}
