//! Soak and scale: what the library does over a long run and with many connections.
//!
//! `cargo bench --bench soak` builds `examples/bench.rs` (the filter that reads every header
//! and the whole body and adds `X-Bench: 1`) in release mode, starts it afresh for each
//! scenario, drives it over TCP loopback with a load generator built on
//! `async_milter::testing` (Postfix profile), and prints:
//!
//! 1. **Idle connections**: 10,000 negotiated connections held open while 64 others send
//!    50,000 messages; the server's RSS growth per idle connection; then one message on
//!    every held connection. Errors must be 0.
//! 2. **Long run**: 1,000,000 messages over 64 connections, the server's RSS and live heap
//!    read every 5% of the messages (flat is the goal), messages per second. Errors must be 0.
//! 3. **Slow filter**: the filter waits 50 ms at end of message (`--delay-ms 50`, a runtime
//!    timer); 10, 100 and 1,000 connections send messages back to back for 15 s each.
//!    Throughput against the ideal (connections / wait) and against the same 1,000
//!    connections without the wait (the CPU bound); latency; errors (timeouts) must be 0.
//!
//! Every load loop is bounded in count and time. Nothing is pinned: the server runs on its
//! runtime's default threads, the load generator on async-std's. The bench raises its soft
//! open-file limit (and the hard one as root) for the connections both sides hold; the
//! server inherits it.
//!
//! Environment: `SOAK_QUICK=1` (a smoke run of every scenario: 1,000 idle connections,
//! 10,000 messages, 10 and 100 slow connections for 1 s each), `SOAK_ONLY=idle,million,slow`,
//! `SOAK_IDLE`, `SOAK_IDLE_MESSAGES`, `SOAK_MESSAGES`, `SOAK_CONNS` (the mail connections of
//! scenarios 1 and 2), `SOAK_SLOW_CONNS=10,100,1000`, `SOAK_DELAY_MS`, `SOAK_SLOW_SECS`,
//! `SOAK_MAX_SECS` (the time bound of every load loop), `SOAK_RUNTIME=tokio|smol` (serve on
//! another runtime adapter).
//!
//! The exit status is 1 if any message failed or a scenario did not finish its count.
//! Without `--bench` (as `cargo test --all-targets` runs it) it does nothing.

#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

#[path = "../common/host.rs"]
mod host;
mod idle;
mod load;
#[path = "../common/message.rs"]
mod message;
mod million;
#[path = "../common/process.rs"]
mod process;
mod report;
mod server;
mod slow;

use std::time::{Duration, Instant};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = BoxError> = std::result::Result<T, E>;

/// The sizes and bounds of a run.
struct Params {
    /// Mail connections in scenarios 1 and 2.
    conns: usize,
    /// Idle connections held in scenario 1.
    idle: usize,
    /// Messages sent while they are held.
    idle_messages: u64,
    /// Messages in scenario 2.
    messages: u64,
    /// Connections per level in scenario 3.
    slow_conns: Vec<usize>,
    /// The slow filter's wait at end of message.
    delay: Duration,
    /// How long each level of scenario 3 sends.
    slow_time: Duration,
    /// Longest any load loop may run.
    max_time: Duration,
    /// Extra arguments for the server (`--tokio`, `--smol`).
    server_args: Vec<String>,
}

impl Params {
    fn from_env() -> Result<Self> {
        let quick = std::env::var_os("SOAK_QUICK").is_some_and(|v| v != "0");
        let number = |name: &str, full: u64, small: u64| -> Result<u64> {
            match std::env::var(name) {
                Ok(value) => Ok(value.parse().map_err(|e| format!("{name}={value}: {e}"))?),
                Err(_) => Ok(if quick { small } else { full }),
            }
        };
        let slow_conns = match std::env::var("SOAK_SLOW_CONNS") {
            Ok(list) => list
                .split(',')
                .map(|n| n.trim().parse::<usize>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("SOAK_SLOW_CONNS={list}: {e}"))?,
            Err(_) if quick => vec![10, 100],
            Err(_) => vec![10, 100, 1000],
        };
        let server_args = match std::env::var("SOAK_RUNTIME").as_deref() {
            Ok("tokio") => vec!["--tokio".to_owned()],
            Ok("smol") => vec!["--smol".to_owned()],
            Ok("async-std") | Err(_) => Vec::new(),
            Ok(other) => {
                return Err(format!("SOAK_RUNTIME={other}: async-std, tokio or smol").into());
            }
        };
        Ok(Self {
            conns: number("SOAK_CONNS", 64, 64)? as usize,
            idle: number("SOAK_IDLE", 10_000, 1_000)? as usize,
            idle_messages: number("SOAK_IDLE_MESSAGES", 50_000, 5_000)?,
            messages: number("SOAK_MESSAGES", 1_000_000, 10_000)?,
            slow_conns,
            delay: Duration::from_millis(number("SOAK_DELAY_MS", 50, 50)?),
            slow_time: Duration::from_secs(number("SOAK_SLOW_SECS", 15, 1)?),
            max_time: Duration::from_secs(number("SOAK_MAX_SECS", 1800, 120)?),
            server_args,
        })
    }

    fn runtime(&self) -> &str {
        match self.server_args.first().map(String::as_str) {
            Some("--tokio") => "tokio (current-thread runtime)",
            Some("--smol") => "smol (one executor thread)",
            _ => "async-std (its default threads)",
        }
    }
}

/// How a scenario ended: failed messages, and whether it did its whole count.
struct Verdict {
    errors: u64,
    complete: bool,
}

fn main() -> Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        println!("soak bench: run it with `cargo bench --bench soak`");
        return Ok(());
    }
    let p = Params::from_env()?;
    let only = std::env::var("SOAK_ONLY").unwrap_or_else(|_| "idle,million,slow".to_owned());
    let wanted = |name: &str| only.split(',').any(|s| s.trim() == name);

    let needed = (p.idle + p.conns).max(p.slow_conns.iter().copied().max().unwrap_or(0)) + 256;
    let limit = server::raise_open_files(needed as u64)?;
    let program = server::build()?;

    println!();
    println!("## Soak and scale: examples/bench.rs on {}", p.runtime());
    println!();
    println!("Machine: {}", host::machine());
    println!("Open-file limit (bench and server): {limit}");
    let started = Instant::now();
    let mut verdicts = Vec::new();
    if wanted("idle") {
        verdicts.push(("idle", idle::run(&program, &p)?));
    }
    if wanted("million") {
        verdicts.push(("million", million::run(&program, &p)?));
    }
    if wanted("slow") {
        verdicts.push(("slow", slow::run(&program, &p)?));
    }
    println!();
    println!("total soak time {:.0} s", started.elapsed().as_secs_f64());
    let failed: Vec<String> = verdicts
        .iter()
        .filter(|(_, v)| v.errors > 0 || !v.complete)
        .map(|(name, v)| format!("{name} (errors {}, complete {})", v.errors, v.complete))
        .collect();
    if failed.is_empty() {
        println!("all scenarios: every message served, no error");
        Ok(())
    } else {
        Err(format!("soak failed: {}", failed.join(", ")).into())
    }
}
