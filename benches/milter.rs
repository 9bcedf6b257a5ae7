//! Throughput, latency, CPU and memory of the library side by side with a wire floor,
//! libmilter and miltr (a Rust milter library), in one run.
//!
//! `cargo bench --bench milter` builds the servers (`examples/bench.rs`,
//! `examples/bench_floor.rs`, `examples/bench_miltr.rs`, `benches/c/bench_milter.c`), then
//! for each repetition, each workload and each server (order rotated every repetition) starts
//! the server afresh,
//! drives it with a load generator built on `async_milter::testing` over TCP loopback, and
//! reads the server's CPU clock, RSS and heap counters. The load generator and the servers
//! share one core (`taskset -c 0`): a wake-up across cores costs tens of microseconds on a
//! virtual machine and would swamp the differences being measured.
//!
//! The library runs on each runtime adapter (async-std, tokio, smol), and the report starts
//! with their full-reply rows side by side. The report is printed, and written with a chart
//! (`chart.svg`, `results.md`) by the modules in `benches/milter/`.
//!
//! Environment: `BENCH_QUICK=1` (a smoke test: small counts, one repetition),
//! `BENCH_REPS=N`, `BENCH_CPU=N` (the core to pin to), `BENCH_NO_APT=1` (do not try to
//! install libmilter-dev), `BENCH_ONLY=W1,W3` (a subset of workloads),
//! `BENCH_SERVERS=ours,ours-tokio,ours-smol,miltr,floor,libmilter,ours-nr,floor-nr` (a subset
//! of servers), `BENCH_WRAP="valgrind --tool=callgrind"` (run each server under a profiler;
//! its figures are then the profiler's),
//! `BENCH_OUT=DIR` (where the chart and the tables are written; `benches/results` for a full
//! run, `target/bench-results` for a quick one).
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) it does nothing.

#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    clippy::too_many_lines
)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use async_milter::proto::Family;
use async_milter::server::SocketSpec;
use async_milter::testing::{self, MilterClient, MilterStream, Modification, Profile, Reply};
use futures::StreamExt;
use futures::stream::FuturesUnordered;

#[path = "milter/allocations.rs"]
mod allocations;
#[path = "milter/chart.rs"]
mod chart;
#[path = "milter/chunk_probe.rs"]
mod chunk_probe;
#[path = "common/host.rs"]
mod host;
#[path = "common/message.rs"]
mod message;
#[path = "milter/no_reply.rs"]
mod no_reply;
#[path = "milter/output.rs"]
mod output;
#[path = "common/process.rs"]
mod process;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = BoxError> = std::result::Result<T, E>;

// ===== servers =====

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Impl {
    Ours,
    /// The library's driver on tokio's current-thread runtime (`examples/bench.rs --tokio`).
    OursTokio,
    /// The library's driver on smol, one executor thread (`examples/bench.rs --smol`).
    OursSmol,
    Floor,
    /// The floor's parser as async-std tasks (`examples/bench_floor.rs --async-std`).
    FloorAsyncStd,
    Libmilter,
    /// The same filter on miltr, a Rust milter library (`examples/bench_miltr.rs`).
    Miltr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct ServerKind {
    imp: Impl,
    no_reply: bool,
}

impl ServerKind {
    fn name(self) -> &'static str {
        match (self.imp, self.no_reply) {
            (Impl::Ours, false) => "async-milter",
            (Impl::Ours, true) => "async-milter no-reply",
            (Impl::OursTokio, false) => "async-milter on tokio",
            (Impl::OursTokio, true) => "async-milter on tokio no-reply",
            (Impl::OursSmol, false) => "async-milter on smol",
            (Impl::OursSmol, true) => "async-milter on smol no-reply",
            (Impl::Floor, false) => "wire floor",
            (Impl::Floor, true) => "wire floor no-reply",
            (Impl::FloorAsyncStd, false) => "wire floor on async-std",
            (Impl::FloorAsyncStd, true) => "wire floor on async-std no-reply",
            (Impl::Libmilter, false) => "libmilter (C)",
            (Impl::Libmilter, true) => "libmilter (C) no-reply",
            (Impl::Miltr, false) => "miltr (Rust)",
            (Impl::Miltr, true) => "miltr (Rust) no-reply",
        }
    }

    fn short(self) -> &'static str {
        match (self.imp, self.no_reply) {
            (Impl::Ours, false) => "ours",
            (Impl::Ours, true) => "ours-nr",
            (Impl::OursTokio, false) => "ours-tokio",
            (Impl::OursTokio, true) => "ours-tokio-nr",
            (Impl::OursSmol, false) => "ours-smol",
            (Impl::OursSmol, true) => "ours-smol-nr",
            (Impl::Floor, false) => "floor",
            (Impl::Floor, true) => "floor-nr",
            (Impl::FloorAsyncStd, false) => "floor-async-std",
            (Impl::FloorAsyncStd, true) => "floor-async-std-nr",
            (Impl::Libmilter, false) => "libmilter",
            (Impl::Libmilter, true) => "libmilter-nr",
            (Impl::Miltr, false) => "miltr",
            (Impl::Miltr, true) => "miltr-nr",
        }
    }

    /// The wire floor this server is compared with.
    fn floor(self) -> Self {
        Self {
            imp: Impl::Floor,
            no_reply: self.no_reply,
        }
    }
}

struct Binaries {
    ours: PathBuf,
    floor: PathBuf,
    miltr: PathBuf,
    libmilter: Option<PathBuf>,
}

/// A running server process.
struct Server {
    child: Child,
    pid: i32,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    addr: SocketAddr,
    counts_allocs: bool,
}

#[derive(Clone, Copy, Default, Debug)]
struct Snapshot {
    cpu_ns: u64,
    /// Heap allocations in the server process (less the attribution wrapper's own).
    allocs: Option<u64>,
    /// The library's own share of them (async-milter servers only).
    library_allocs: Option<u64>,
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Server {
    fn start(kind: ServerKind, bins: &Binaries, cpu: usize) -> Result<Self> {
        let port = free_port()?;
        let spec = format!("inet:{port}@127.0.0.1");
        let (program, mut args) = match kind.imp {
            Impl::Ours => (bins.ours.clone(), vec![spec, "--stats-stdin".to_owned()]),
            Impl::OursTokio => (
                bins.ours.clone(),
                vec![spec, "--stats-stdin".to_owned(), "--tokio".to_owned()],
            ),
            Impl::OursSmol => (
                bins.ours.clone(),
                vec![spec, "--stats-stdin".to_owned(), "--smol".to_owned()],
            ),
            Impl::Floor => (bins.floor.clone(), vec![spec, "--stats-stdin".to_owned()]),
            Impl::FloorAsyncStd => (
                bins.floor.clone(),
                vec![spec, "--stats-stdin".to_owned(), "--async-std".to_owned()],
            ),
            Impl::Libmilter => (
                bins.libmilter.clone().ok_or("libmilter filter not built")?,
                vec![spec],
            ),
            Impl::Miltr => (bins.miltr.clone(), vec![spec, "--stats-stdin".to_owned()]),
        };
        if kind.no_reply {
            args.push(
                if kind.imp == Impl::Libmilter {
                    "-n"
                } else {
                    "--no-reply"
                }
                .to_owned(),
            );
        }
        // BENCH_WRAP (for profiling): a command line the server runs under, such as
        // `valgrind --tool=callgrind`; its figures are then the wrapper's.
        let wrap: Vec<String> = std::env::var("BENCH_WRAP")
            .map(|w| w.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        let mut line: Vec<std::ffi::OsString> = Vec::new();
        if which("taskset") {
            line.extend(["taskset".into(), "-c".into(), cpu.to_string().into()]);
        }
        line.extend(wrap.into_iter().map(Into::into));
        line.push(program.into_os_string());
        let mut command = Command::new(&line[0]);
        command.args(&line[1..]);
        command
            .args(&args)
            .env("ASYNC_STD_THREAD_COUNT", "1")
            .env("RUST_LOG", "warn");
        let (mut child, lines) =
            process::start_listening(&mut command).map_err(|e| format!("{}: {e}", kind.name()))?;
        let pid = child.id() as i32;
        Ok(Self {
            stdin: child.stdin.take(),
            child,
            pid,
            lines,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            counts_allocs: kind.imp != Impl::Libmilter,
        })
    }

    /// The process's CPU time (every thread, live or exited) in nanoseconds.
    fn cpu_ns(&self) -> u64 {
        let pid = nix::unistd::Pid::from_raw(self.pid);
        nix::time::clock_getcpuclockid(pid)
            .and_then(nix::time::clock_gettime)
            .map_or(0, |t| {
                t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
            })
    }

    /// The heap counters line (`allocs N ... library_allocs N harness_allocs N`), by name.
    fn heap_counters(&mut self) -> Option<BTreeMap<String, u64>> {
        if !self.counts_allocs {
            return None;
        }
        let stdin = self.stdin.as_mut()?;
        stdin.write_all(b"stats\n").ok()?;
        stdin.flush().ok()?;
        let line = self.lines.recv_timeout(Duration::from_secs(10)).ok()?;
        let words: Vec<&str> = line.split_whitespace().collect();
        Some(
            words
                .chunks_exact(2)
                .filter_map(|pair| Some((pair[0].to_owned(), pair[1].parse().ok()?)))
                .collect(),
        )
    }

    fn snapshot(&mut self) -> Snapshot {
        // Heap counters first: answering the query allocates a little, after the reading.
        let counters = self.heap_counters();
        let get = |name: &str| counters.as_ref().and_then(|c| c.get(name).copied());
        Snapshot {
            cpu_ns: self.cpu_ns(),
            allocs: get("allocs").map(|a| a - get("harness_allocs").unwrap_or(0)),
            library_allocs: get("library_allocs"),
        }
    }

    /// `VmRSS` and `VmHWM` in KiB.
    fn memory_kib(&self) -> (u64, u64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        (
            process::status_kib(&status, "VmRSS:"),
            process::status_kib(&status, "VmHWM:"),
        )
    }

    fn stop(mut self) {
        // Ours and the floor exit at end of input; libmilter on SIGTERM.
        drop(self.stdin.take());
        let start = Instant::now();
        let mut termed = false;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => {}
            }
            let waited = start.elapsed();
            // libmilter takes seconds to wind down after SIGTERM; its figures are taken.
            let patience = if self.counts_allocs {
                Duration::from_secs(8)
            } else {
                Duration::from_millis(300)
            };
            if waited > patience {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return;
            }
            if !termed && (!self.counts_allocs || waited > Duration::from_secs(3)) {
                termed = true;
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(self.pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

fn which(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

// ===== workloads =====

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Workload {
    W1,
    W2,
    W3,
    W4,
    W5,
    W6,
}

impl Workload {
    const ALL: [Self; 6] = [Self::W1, Self::W2, Self::W3, Self::W4, Self::W5, Self::W6];

    fn describe(self, p: &Params) -> String {
        match self {
            Self::W1 => format!(
                "W1: 1 connection, {} messages (1 rcpt, 10 headers, 2 KiB body)",
                p.w1_msgs
            ),
            Self::W2 => format!(
                "W2: {} connections x {} messages (as W1)",
                p.w2_conns, p.w2_msgs
            ),
            Self::W3 => format!(
                "W3: {} connections x {} messages, 1 MiB body in 16 chunks of 65535 bytes",
                p.w3_conns, p.w3_msgs
            ),
            Self::W4 => format!(
                "W4: {} connections, each one message then QUIT ({} at a time)",
                p.w4_conns, p.w4_parallel
            ),
            Self::W5 => format!(
                "W5: {} idle connections after negotiation (opened {} at a time)",
                p.w5_conns, p.w5_parallel
            ),
            Self::W6 => format!(
                "W6: burst, {} connections opened at once, each one message then QUIT (sessions/s)",
                p.w6_conns
            ),
        }
    }
}

struct Params {
    reps: usize,
    w1_warm: usize,
    w1_msgs: usize,
    w2_conns: usize,
    w2_warm: usize,
    w2_msgs: usize,
    w3_conns: usize,
    w3_warm: usize,
    w3_msgs: usize,
    w4_warm: usize,
    w4_conns: usize,
    w4_parallel: usize,
    w5_conns: usize,
    w5_parallel: usize,
    /// W6: connections opened at once, as an MTA's smtpd processes do after a lull.
    w6_conns: usize,
    /// Longest a measured phase may run; a slow server completes fewer messages.
    budget: Duration,
}

impl Params {
    fn full() -> Self {
        Self {
            reps: 5,
            w1_warm: 200,
            w1_msgs: 2000,
            w2_conns: 64,
            w2_warm: 2,
            w2_msgs: 30,
            w3_conns: 8,
            w3_warm: 1,
            w3_msgs: 5,
            w4_warm: 50,
            w4_conns: 1000,
            w4_parallel: 16,
            w5_conns: 10_000,
            w5_parallel: 64,
            w6_conns: 1000,
            budget: Duration::from_secs(2),
        }
    }

    fn quick() -> Self {
        Self {
            reps: 1,
            w1_warm: 20,
            w1_msgs: 200,
            w2_conns: 64,
            w2_warm: 1,
            w2_msgs: 3,
            w3_conns: 8,
            w3_warm: 1,
            w3_msgs: 1,
            w4_warm: 5,
            w4_conns: 100,
            w4_parallel: 16,
            w5_conns: 500,
            w5_parallel: 64,
            w6_conns: 200,
            budget: Duration::from_millis(500),
        }
    }
}

/// One message as the load generator sends it.
struct Message {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    chunk: usize,
}

impl Message {
    fn new(body_len: usize, chunk: usize) -> Self {
        let headers = message::sample_headers("bench 1.0");
        let body = message::sample_body(body_len);
        Self {
            headers,
            body,
            chunk,
        }
    }
}

fn profile() -> Profile {
    Profile::postfix().with_timeout(Duration::from_secs(60))
}

type Conn = MilterClient<MilterStream>;

/// Connects and negotiates.
async fn open(addr: SocketAddr) -> Result<Conn> {
    let mut client = testing::connect(&SocketSpec::Inet(addr).to_string(), profile()).await?;
    client.negotiate().await?;
    Ok(client)
}

/// Connects, negotiates, sends CONNECT and HELO.
async fn open_session(addr: SocketAddr) -> Result<Conn> {
    let mut client = open(addr).await?;
    expect_continue(
        client
            .connect("client.example.com", Family::Inet, 40_000, "192.0.2.1")
            .await?,
    )?;
    expect_continue(client.helo("client.example.com").await?)?;
    Ok(client)
}

fn expect_continue(reply: Reply) -> Result<()> {
    match reply {
        Reply::Continue | Reply::NoReply => Ok(()),
        other => Err(format!("unexpected reply {other:?}").into()),
    }
}

/// One transaction, checked: every answer continue (or none), then `X-Bench: 1` and accept.
async fn message(client: &mut Conn, msg: &Message) -> Result<()> {
    expect_continue(client.mail("<alice@example.com>", &[]).await?)?;
    expect_continue(client.rcpt("<bob@example.net>", &[]).await?)?;
    expect_continue(client.data().await?)?;
    for (name, value) in &msg.headers {
        expect_continue(client.header(name, value).await?)?;
    }
    expect_continue(client.end_of_headers().await?)?;
    for chunk in msg.body.chunks(msg.chunk) {
        expect_continue(client.body(chunk).await?)?;
    }
    let eom = client.end_of_message().await?;
    let tagged = matches!(
        eom.modifications.as_slice(),
        [Modification::AddHeader { name, value }] if name == "X-Bench" && value.trim() == "1"
    );
    // miltr has no ACCEPT reply; CONTINUE at end of message accepts the message as well.
    if !matches!(eom.reply, Reply::Accept | Reply::Continue) || !tagged {
        return Err(format!(
            "end of message: {:?} with {:?}",
            eom.reply, eom.modifications
        )
        .into());
    }
    Ok(())
}

/// What one run of one workload against one server measured.
#[derive(Clone, Debug, Default)]
struct Sample {
    /// Messages (W5: connections) per second.
    rate: f64,
    p50_us: f64,
    p99_us: f64,
    /// Server CPU per message (W5: per connection), microseconds.
    cpu_us: f64,
    peak_rss_kib: u64,
    /// Heap allocations per message (W5: per connection).
    allocs: Option<f64>,
    /// The library's own share of `allocs`.
    library_allocs: Option<f64>,
    /// W1: allocations per body chunk, measured apart (`chunk_probe`).
    chunk: Option<chunk_probe::PerChunk>,
    /// W5: RSS growth per idle connection, KiB.
    rss_per_conn_kib: Option<f64>,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1e6
}

struct Measured {
    units: usize,
    wall: Duration,
    latencies: Vec<Duration>,
    before: Snapshot,
    after: Snapshot,
    rss_per_conn_kib: Option<f64>,
    chunk: Option<chunk_probe::PerChunk>,
}

fn sample(server: &Server, mut m: Measured) -> Sample {
    m.latencies.sort_unstable();
    let units = m.units.max(1) as f64;
    let per_unit = |before: Option<u64>, after: Option<u64>| {
        Some(after?.saturating_sub(before?) as f64 / units)
    };
    let allocs = per_unit(m.before.allocs, m.after.allocs);
    let library_allocs = per_unit(m.before.library_allocs, m.after.library_allocs);
    Sample {
        rate: units / m.wall.as_secs_f64(),
        p50_us: percentile(&m.latencies, 0.50),
        p99_us: percentile(&m.latencies, 0.99),
        cpu_us: m.after.cpu_ns.saturating_sub(m.before.cpu_ns) as f64 / 1e3 / units,
        peak_rss_kib: server.memory_kib().1,
        allocs,
        library_allocs,
        rss_per_conn_kib: m.rss_per_conn_kib,
        chunk: m.chunk,
    }
}

/// Runs `per_conn` messages on each of `conns` connections at once, after `warm` each.
async fn concurrent_messages(
    server: &mut Server,
    conns: usize,
    warm: usize,
    per_conn: usize,
    msg: &Message,
    budget: Duration,
) -> Result<Measured> {
    let addr = server.addr;
    let mut clients = Vec::with_capacity(conns);
    for _ in 0..conns {
        clients.push(open_session(addr).await?);
    }
    let warm_end = Instant::now() + budget / 4;
    let warmups: FuturesUnordered<_> = clients
        .iter_mut()
        .map(|c| async move {
            for i in 0..warm {
                if i > 0 && Instant::now() > warm_end {
                    break;
                }
                message(c, msg).await?;
            }
            Ok::<_, BoxError>(())
        })
        .collect();
    for r in warmups.collect::<Vec<_>>().await {
        r?;
    }
    let before = server.snapshot();
    let start = Instant::now();
    let end = start + budget;
    let runs: FuturesUnordered<_> = clients
        .iter_mut()
        .map(|c| async move {
            let mut latencies = Vec::with_capacity(per_conn);
            for i in 0..per_conn {
                if i > 0 && Instant::now() > end {
                    break;
                }
                let t = Instant::now();
                message(c, msg).await?;
                latencies.push(t.elapsed());
            }
            Ok::<_, BoxError>(latencies)
        })
        .collect();
    let mut latencies = Vec::with_capacity(conns * per_conn);
    for r in runs.collect::<Vec<_>>().await {
        latencies.extend(r?);
    }
    let wall = start.elapsed();
    let after = server.snapshot();
    for mut c in clients {
        c.quit().await?;
    }
    Ok(Measured {
        units: latencies.len(),
        wall,
        latencies,
        before,
        after,
        rss_per_conn_kib: None,
        chunk: None,
    })
}

/// A whole connection: connect, negotiate, CONNECT, HELO, one message, QUIT.
async fn one_shot(addr: SocketAddr, msg: &Message) -> Result<Duration> {
    let t = Instant::now();
    let mut c = open_session(addr).await?;
    message(&mut c, msg).await?;
    c.quit().await?;
    Ok(t.elapsed())
}

async fn one_shots(
    addr: SocketAddr,
    n: usize,
    parallel: usize,
    msg: &Message,
    budget: Duration,
) -> Result<Vec<Duration>> {
    let end = Instant::now() + budget;
    let mut pending = FuturesUnordered::new();
    let mut started = 0;
    let mut limit = n;
    let mut latencies = Vec::with_capacity(n);
    while started < limit || !pending.is_empty() {
        if started > 0 && Instant::now() > end {
            limit = started;
        }
        while started < limit && pending.len() < parallel {
            pending.push(one_shot(addr, msg));
            started += 1;
        }
        if let Some(r) = pending.next().await {
            latencies.push(r?);
        }
    }
    Ok(latencies)
}

async fn run_workload(workload: Workload, server: &mut Server, p: &Params) -> Result<Measured> {
    let small = Message::new(2048, 65_535);
    match workload {
        Workload::W1 => {
            let mut measured =
                concurrent_messages(server, 1, p.w1_warm, p.w1_msgs, &small, p.budget).await?;
            measured.chunk = chunk_probe::measure(server, p.w1_msgs / 10).await?;
            Ok(measured)
        }
        Workload::W2 => {
            concurrent_messages(server, p.w2_conns, p.w2_warm, p.w2_msgs, &small, p.budget).await
        }
        Workload::W3 => {
            let large = Message::new(16 * 65_535, 65_535);
            concurrent_messages(server, p.w3_conns, p.w3_warm, p.w3_msgs, &large, p.budget).await
        }
        Workload::W4 | Workload::W6 => {
            // W4 opens its connections a few at a time; W6 all at once: none waits for a slot
            // on the client side, so what queues is the server's (its listen backlog, its
            // accept loop). `one_shots` starts them all before awaiting any. Both warm alike.
            let (conns, parallel) = if workload == Workload::W4 {
                (p.w4_conns, p.w4_parallel)
            } else {
                (p.w6_conns, p.w6_conns)
            };
            one_shots(server.addr, p.w4_warm, p.w4_parallel, &small, p.budget / 4).await?;
            let before = server.snapshot();
            let start = Instant::now();
            let latencies = one_shots(server.addr, conns, parallel, &small, p.budget).await?;
            let wall = start.elapsed();
            let after = server.snapshot();
            Ok(Measured {
                units: latencies.len(),
                wall,
                latencies,
                before,
                after,
                rss_per_conn_kib: None,
                chunk: None,
            })
        }
        Workload::W5 => {
            // A few connections first so the runtime's one-time allocations are behind us.
            let mut warm = Vec::new();
            for _ in 0..16 {
                warm.push(open(server.addr).await?);
            }
            let (rss_before, _) = server.memory_kib();
            let before = server.snapshot();
            let start = Instant::now();
            let mut clients = Vec::with_capacity(p.w5_conns);
            let mut latencies = Vec::with_capacity(p.w5_conns);
            let mut pending = FuturesUnordered::new();
            let mut started = 0;
            while started < p.w5_conns || !pending.is_empty() {
                while started < p.w5_conns && pending.len() < p.w5_parallel {
                    let addr = server.addr;
                    pending.push(async move {
                        let t = Instant::now();
                        let c = open(addr).await?;
                        Ok::<_, BoxError>((c, t.elapsed()))
                    });
                    started += 1;
                }
                if let Some(r) = pending.next().await {
                    let (c, latency) = r?;
                    clients.push(c);
                    latencies.push(latency);
                }
            }
            let wall = start.elapsed();
            // Let the server finish with the last negotiations, and its connections stay
            // idle long enough to let go of their buffers (after 250 ms), before reading
            // its memory.
            async_std::task::sleep(Duration::from_millis(600)).await;
            let after = server.snapshot();
            let (rss_after, _) = server.memory_kib();
            let per_conn = rss_after.saturating_sub(rss_before) as f64 / p.w5_conns as f64;
            drop(clients);
            drop(warm);
            Ok(Measured {
                units: p.w5_conns,
                wall,
                latencies,
                before,
                after,
                rss_per_conn_kib: Some(per_conn),
                chunk: None,
            })
        }
    }
}

// ===== building =====

fn build(cpu_note: &mut Vec<String>) -> Result<Binaries> {
    let exe = std::env::current_exe()?;
    // <target>/release/deps/milter-HASH
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot locate the target directory")?
        .to_path_buf();
    let target_dir = profile_dir.parent().ok_or("no target dir")?.to_path_buf();
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    eprintln!("bench: building the servers (release)");
    let status = Command::new(cargo)
        .current_dir(manifest_dir)
        .env("CARGO_TARGET_DIR", &target_dir)
        .args([
            "build",
            "--release",
            "--quiet",
            "--example",
            "bench",
            "--example",
            "bench_floor",
            "--example",
            "bench_miltr",
        ])
        .status()?;
    if !status.success() {
        return Err("cargo build of the bench examples failed".into());
    }
    let examples = target_dir.join("release").join("examples");
    let libmilter = build_c(manifest_dir, &profile_dir, cpu_note);
    Ok(Binaries {
        ours: examples.join("bench"),
        floor: examples.join("bench_floor"),
        miltr: examples.join("bench_miltr"),
        libmilter,
    })
}

fn libmilter_present() -> bool {
    Path::new("/usr/include/libmilter/mfapi.h").exists()
}

fn build_c(manifest_dir: &Path, out_dir: &Path, notes: &mut Vec<String>) -> Option<PathBuf> {
    if !libmilter_present() && std::env::var_os("BENCH_NO_APT").is_none() && which("apt-get") {
        eprintln!("bench: installing libmilter-dev with apt-get");
        let _ = Command::new("sh")
            .arg("-c")
            .arg("(apt-get install -y -qq libmilter-dev || (apt-get update -qq && apt-get install -y -qq libmilter-dev)) >/dev/null 2>&1")
            .status();
    }
    if !libmilter_present() {
        notes.push(
            "libmilter-dev is not installed and could not be installed: (d) skipped".to_owned(),
        );
        return None;
    }
    let out = out_dir.join("bench_milter");
    let status = Command::new("cc")
        .arg("-O2")
        .arg("-o")
        .arg(&out)
        .arg(manifest_dir.join("benches/c/bench_milter.c"))
        .args(["-lmilter", "-lpthread"])
        .status();
    if status.is_ok_and(|s| s.success()) {
        Some(out)
    } else {
        notes.push("cc could not build benches/c/bench_milter.c: (d) skipped".to_owned());
        None
    }
}

// ===== reporting =====

fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        f64::midpoint(values[n / 2 - 1], values[n / 2])
    }
}

struct Stat {
    median: f64,
    min: f64,
    max: f64,
}

fn stat(samples: &[Sample], f: impl Fn(&Sample) -> f64) -> Stat {
    let mut v: Vec<f64> = samples.iter().map(f).collect();
    let median = median(&mut v);
    Stat {
        median,
        min: v.first().copied().unwrap_or(f64::NAN),
        max: v.last().copied().unwrap_or(f64::NAN),
    }
}

fn opt_stat(samples: &[Sample], f: impl Fn(&Sample) -> Option<f64>) -> Option<Stat> {
    let values: Vec<f64> = samples.iter().filter_map(f).collect();
    if values.is_empty() {
        return None;
    }
    let fake: Vec<Sample> = values
        .iter()
        .map(|&rate| Sample {
            rate,
            ..Sample::default()
        })
        .collect();
    Some(stat(&fake, |s| s.rate))
}

fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        "-".to_owned()
    } else if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn fmt_stat(s: &Stat) -> String {
    format!(
        "{} ({}–{})",
        fmt_num(s.median),
        fmt_num(s.min),
        fmt_num(s.max)
    )
}

type Results = BTreeMap<(Workload, ServerKind), Vec<Sample>>;

fn report(
    results: &Results,
    servers: &[ServerKind],
    workloads: &[Workload],
    params: &Params,
    notes: &[String],
    cpu: usize,
    negotiated: &[(ServerKind, String)],
) -> String {
    let mut out = String::new();
    let emit = |out: &mut String, line: String| {
        out.push_str(&line);
        out.push('\n');
    };
    emit(&mut out, String::new());
    emit(&mut out, format!("Machine: {}", host::machine()));
    emit(
        &mut out,
        format!(
            "Load generator and servers pinned to core {cpu}; each figure is the median of {} runs (min–max), a fresh server per run, server order rotated per repetition.",
            params.reps
        ),
    );
    for note in notes {
        emit(&mut out, format!("Note: {note}"));
    }
    per_runtime(&mut out, results, workloads);
    for &workload in workloads {
        emit(&mut out, String::new());
        emit(&mut out, format!("### {}", workload.describe(params)));
        emit(&mut out, String::new());
        if workload == Workload::W5 {
            emit(&mut out, "| server | conn/s | p50 µs | p99 µs | CPU µs/conn | peak RSS MiB | RSS KiB/conn | allocs/conn |".to_owned());
            emit(&mut out, "|---|---|---|---|---|---|---|---|".to_owned());
        } else {
            emit(&mut out, "| server | msgs/s | p50 µs | p99 µs | CPU µs/msg | peak RSS MiB | allocs/msg | × floor msgs/s | × floor CPU |".to_owned());
            emit(&mut out, "|---|---|---|---|---|---|---|---|---|".to_owned());
        }
        for &server in servers {
            let Some(samples) = results.get(&(workload, server)) else {
                continue;
            };
            if samples.is_empty() {
                continue;
            }
            let rate = stat(samples, |s| s.rate);
            let p50 = stat(samples, |s| s.p50_us);
            let p99 = stat(samples, |s| s.p99_us);
            let cpu_s = stat(samples, |s| s.cpu_us);
            let rss = stat(samples, |s| s.peak_rss_kib as f64 / 1024.0);
            let allocs = opt_stat(samples, |s| s.allocs)
                .map_or_else(|| "n/a".to_owned(), |s| fmt_num(s.median));
            if workload == Workload::W5 {
                let per = opt_stat(samples, |s| s.rss_per_conn_kib)
                    .map_or_else(|| "-".to_owned(), |s| fmt_stat(&s));
                emit(
                    &mut out,
                    format!(
                        "| {} | {} | {} | {} | {} | {} | {} | {} |",
                        server.name(),
                        fmt_stat(&rate),
                        fmt_num(p50.median),
                        fmt_num(p99.median),
                        fmt_stat(&cpu_s),
                        fmt_num(rss.median),
                        per,
                        allocs
                    ),
                );
            } else {
                let floor = results
                    .get(&(workload, server.floor()))
                    .filter(|s| !s.is_empty());
                let (ratio, cpu_ratio) = floor.map_or(("-".to_owned(), "-".to_owned()), |f| {
                    let fr = stat(f, |s| s.rate).median;
                    let fc = stat(f, |s| s.cpu_us).median;
                    (
                        format!("{:.2}", rate.median / fr),
                        format!("{:.2}", fc / cpu_s.median),
                    )
                });
                emit(
                    &mut out,
                    format!(
                        "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                        server.name(),
                        fmt_stat(&rate),
                        fmt_num(p50.median),
                        fmt_num(p99.median),
                        fmt_stat(&cpu_s),
                        fmt_num(rss.median),
                        allocs,
                        ratio,
                        cpu_ratio
                    ),
                );
            }
        }
    }
    emit(&mut out, String::new());
    emit(&mut out, "× floor msgs/s: median msgs/s over the matching wire floor's (full replies or no-reply). × floor CPU: the floor's server CPU per message over this server's (1.00 = as cheap as the floor).".to_owned());
    emit(&mut out, "W4 and W6 latency is a whole connection (connect, negotiate, CONNECT, HELO, one message, QUIT); W6 msgs/s is sessions/s; W5 latency is connect plus negotiation.".to_owned());

    allocations::table(&mut out, results, servers);
    no_reply::table(&mut out, results, workloads, negotiated);

    // Targets.
    emit(&mut out, String::new());
    emit(&mut out, "### Targets".to_owned());
    emit(&mut out, String::new());
    let ratio = |wl, kind: ServerKind| {
        let ours = results.get(&(wl, kind)).filter(|s| !s.is_empty())?;
        let floor = results.get(&(wl, kind.floor())).filter(|s| !s.is_empty())?;
        Some(stat(ours, |s| s.rate).median / stat(floor, |s| s.rate).median)
    };
    let cpu_ratio = |wl, kind: ServerKind| {
        let ours = results.get(&(wl, kind)).filter(|s| !s.is_empty())?;
        let floor = results.get(&(wl, kind.floor())).filter(|s| !s.is_empty())?;
        Some(stat(ours, |s| s.cpu_us).median / stat(floor, |s| s.cpu_us).median)
    };
    let ours = ServerKind {
        imp: Impl::Ours,
        no_reply: false,
    };
    let ours_nr = ServerKind {
        imp: Impl::Ours,
        no_reply: true,
    };
    for wl in [
        Workload::W1,
        Workload::W2,
        Workload::W3,
        Workload::W4,
        Workload::W6,
    ] {
        if let Some(r) = ratio(wl, ours) {
            let verdict = if r >= 0.90 { "met" } else { "MISSED" };
            emit(
                &mut out,
                format!(
                    "- {wl:?} full replies: {r:.2}× the wire floor's msgs/s (target ≥ 0.90): {verdict}"
                ),
            );
        }
        if let Some(r) = cpu_ratio(wl, ours) {
            let verdict = if r <= 1.15 { "met" } else { "MISSED" };
            emit(
                &mut out,
                format!(
                    "- {wl:?} full replies: {r:.2}× the wire floor's CPU per message (target ≤ 1.15): {verdict}"
                ),
            );
        }
    }
    if let Some(r) = cpu_ratio(Workload::W3, ours_nr) {
        let verdict = if r <= 1.3 { "met" } else { "MISSED" };
        emit(
            &mut out,
            format!(
                "- W3 body path, no-reply: {r:.2}× the no-reply floor's CPU per message (target ≤ 1.30): {verdict}"
            ),
        );
    }
    if let Some(allocs) = results
        .get(&(Workload::W1, ours))
        .and_then(|s| opt_stat(s, |x| x.library_allocs))
    {
        // Judged at the precision the tables print: a buffer's occasional growth over the
        // 2,000 messages (a few allocations in all) is not a per-message allocation.
        let per_message = (allocs.median * 100.0).round() / 100.0;
        let verdict = if per_message <= 3.0 { "met" } else { "MISSED" };
        emit(
            &mut out,
            format!(
                "- the library's own heap allocations per message (W1): {per_message:.2} ({:.4} unrounded; target ≤ 3): {verdict}",
                allocs.median
            ),
        );
    }
    for wl in [Workload::W1, Workload::W2, Workload::W3, Workload::W4] {
        if let Some(r) = ratio(wl, ours_nr) {
            let verdict = if r >= no_reply::TARGET {
                "met"
            } else {
                "MISSED"
            };
            emit(
                &mut out,
                format!(
                    "- {wl:?} automatic no-reply: {r:.2}× the no-reply wire floor (target ≥ {:.2}): {verdict}",
                    no_reply::TARGET
                ),
            );
        }
    }
    if let Some(chunk) = results
        .get(&(Workload::W1, ours))
        .and_then(|s| allocations::per_chunk(s, |c| c.library))
    {
        let verdict = if chunk < 0.05 { "met" } else { "MISSED" };
        emit(
            &mut out,
            format!(
                "- the library's heap allocations per body chunk: {chunk:.2} (target 0): {verdict}"
            ),
        );
    }
    if let Some(s) = results
        .get(&(Workload::W5, ours))
        .and_then(|s| opt_stat(s, |x| x.rss_per_conn_kib))
    {
        let verdict = if s.median <= 2.0 { "met" } else { "MISSED" };
        emit(
            &mut out,
            format!(
                "- W5 RSS per idle connection: {:.1} KiB (target ≤ 2): {verdict}",
                s.median
            ),
        );
    }
    print!("{out}");
    let _ = std::io::stdout().flush();
    out
}

/// The library on each runtime, full replies, side by side: msgs/s (conn/s for W5) and the
/// ratio to the wire floor in the same run.
fn per_runtime(out: &mut String, results: &Results, workloads: &[Workload]) {
    let runtimes: Vec<(&str, ServerKind)> = [
        ("async-std", Impl::Ours),
        ("tokio", Impl::OursTokio),
        ("smol", Impl::OursSmol),
    ]
    .into_iter()
    .map(|(name, imp)| {
        (
            name,
            ServerKind {
                imp,
                no_reply: false,
            },
        )
    })
    .filter(|(_, kind)| {
        workloads
            .iter()
            .any(|&wl| results.get(&(wl, *kind)).is_some_and(|s| !s.is_empty()))
    })
    .collect();
    if runtimes.is_empty() {
        return;
    }
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    line(String::new());
    line("### The library per runtime (full replies)".to_owned());
    line(String::new());
    let mut head = "| workload |".to_owned();
    let mut rule = "|---|".to_owned();
    for (name, _) in &runtimes {
        let _ = write!(head, " {name} msgs/s | {name} × floor |");
        rule.push_str("---|---|");
    }
    line(head);
    line(rule);
    for &wl in workloads {
        let floor = results
            .get(&(
                wl,
                ServerKind {
                    imp: Impl::Floor,
                    no_reply: false,
                },
            ))
            .filter(|s| !s.is_empty())
            .map(|f| stat(f, |s| s.rate).median);
        let mut row = format!(
            "| {wl:?}{} |",
            if wl == Workload::W5 { " (conn/s)" } else { "" }
        );
        for (_, kind) in &runtimes {
            match results.get(&(wl, *kind)).filter(|s| !s.is_empty()) {
                Some(samples) => {
                    let rate = stat(samples, |s| s.rate).median;
                    let ratio =
                        floor.map_or_else(|| "-".to_owned(), |f| format!("{:.2}", rate / f));
                    let _ = write!(row, " {} | {ratio} |", fmt_num(rate));
                }
                None => row.push_str(" - | - |"),
            }
        }
        line(row);
    }
    line(String::new());
    line("async-std: its global executor; tokio: a current-thread runtime; smol: its global executor with one thread (`SMOL_THREADS` unset). All pinned to the same core as the load generator.".to_owned());
}

// ===== main =====

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok()?.parse().ok()
}

fn pin(cpu: usize) -> Result<()> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu)?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)?;
    Ok(())
}

fn main() -> Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        println!("milter bench: run it with `cargo bench --bench milter`");
        return Ok(());
    }
    let quick = std::env::var_os("BENCH_QUICK").is_some_and(|v| v != "0");
    let mut p = if quick {
        Params::quick()
    } else {
        Params::full()
    };
    if let Some(reps) = env_usize("BENCH_REPS") {
        p.reps = reps.max(1);
    }
    let cpu = env_usize("BENCH_CPU").unwrap_or(0);
    let workloads: Vec<Workload> = match std::env::var("BENCH_ONLY") {
        Ok(list) => Workload::ALL
            .into_iter()
            .filter(|w| {
                list.split(',')
                    .any(|x| x.trim().eq_ignore_ascii_case(&format!("{w:?}")))
            })
            .collect(),
        Err(_) => Workload::ALL.to_vec(),
    };

    let mut notes = Vec::new();
    let bins = build(&mut notes)?;
    // Every server, in the order of the tables; the last one runs only when asked for.
    let all: Vec<ServerKind> = [
        (Impl::Floor, false),
        (Impl::FloorAsyncStd, false),
        (Impl::Ours, false),
        (Impl::OursTokio, false),
        (Impl::OursSmol, false),
        (Impl::Miltr, false),
        (Impl::Floor, true),
        (Impl::Ours, true),
        (Impl::Libmilter, false),
        (Impl::Libmilter, true),
        (Impl::FloorAsyncStd, true),
        (Impl::OursTokio, true),
        (Impl::OursSmol, true),
    ]
    .into_iter()
    .map(|(imp, no_reply)| ServerKind { imp, no_reply })
    .filter(|s| s.imp != Impl::Libmilter || bins.libmilter.is_some())
    .collect();
    let servers: Vec<ServerKind> = match std::env::var("BENCH_SERVERS") {
        Ok(list) => all
            .into_iter()
            .filter(|s| list.split(',').any(|x| x.trim() == s.short()))
            .collect(),
        Err(_) => all
            .into_iter()
            .filter(|s| {
                !(matches!(
                    s.imp,
                    Impl::OursTokio | Impl::OursSmol | Impl::FloorAsyncStd
                ) && s.no_reply)
            })
            .collect(),
    };
    // Pin after building, so the build keeps every core.
    pin(cpu)?;
    if !which("taskset") {
        notes.push("taskset not found: servers inherit the bench's pinning".to_owned());
    }
    let output_dir = output::dir(quick);
    let negotiated = no_reply::negotiated(&servers, &bins, cpu);

    let started = Instant::now();
    let mut results: Results = BTreeMap::new();
    for rep in 0..p.reps {
        for &workload in &workloads {
            for i in 0..servers.len() {
                let server_kind = servers[(i + rep) % servers.len()];
                let mut server = Server::start(server_kind, &bins, cpu)?;
                let outcome = async_std::task::block_on(run_workload(workload, &mut server, &p));
                let entry = results.entry((workload, server_kind)).or_default();
                match outcome {
                    Ok(measured) => {
                        let s = sample(&server, measured);
                        eprintln!(
                            "bench: rep {} {workload:?} {:<22} {:>9.0}/s p50 {:>8.1} µs p99 {:>8.1} µs cpu {:>7.2} µs allocs {:>7} rss {} KiB{}",
                            rep + 1,
                            server_kind.name(),
                            s.rate,
                            s.p50_us,
                            s.p99_us,
                            s.cpu_us,
                            s.allocs
                                .map_or_else(|| "-".to_owned(), |a| format!("{a:.2}")),
                            s.peak_rss_kib,
                            s.rss_per_conn_kib
                                .map_or_else(String::new, |r| format!(" ({r:.2} KiB/conn)")),
                        );
                        entry.push(s);
                    }
                    Err(error) => {
                        let note = format!(
                            "{workload:?} {} run {} failed: {error}",
                            server_kind.name(),
                            rep + 1
                        );
                        eprintln!("bench: {note}");
                        notes.push(note);
                    }
                }
                server.stop();
            }
        }
    }
    notes.push(format!(
        "total bench time {:.0} s; load average at the end {}",
        started.elapsed().as_secs_f64(),
        host::load_average()
    ));
    let tables = report(&results, &servers, &workloads, &p, &notes, cpu, &negotiated);
    output::write(&output_dir, &tables, &chart::svg(&results, &workloads, &p))?;
    Ok(())
}
