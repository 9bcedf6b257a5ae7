//! The served filter as a child process: building it, starting it, reading its memory, CPU
//! and heap counters, and stopping it.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use crate::Result;

/// Builds `examples/bench.rs` in release mode in this bench's target directory and returns
/// the binary's path.
pub(crate) fn build() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // <target>/release/deps/soak-HASH
    let target_dir = exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .ok_or("cannot locate the target directory")?
        .to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    eprintln!("soak: building examples/bench.rs (release)");
    let status = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CARGO_TARGET_DIR", &target_dir)
        .args(["build", "--release", "--quiet", "--example", "bench"])
        .status()?;
    if !status.success() {
        return Err("cargo build --release --example bench failed".into());
    }
    Ok(target_dir.join("release").join("examples").join("bench"))
}

/// The heap as the server's counting allocator sees it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Heap {
    /// Allocations made so far.
    pub(crate) allocs: u64,
    /// Blocks allocated and not yet freed.
    pub(crate) live_blocks: u64,
    /// Bytes allocated and not yet freed.
    pub(crate) live_bytes: u64,
}

/// One reading of the server's memory.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Memory {
    /// `VmRSS`, KiB.
    pub(crate) rss_kib: u64,
    /// `VmHWM` (peak RSS), KiB.
    pub(crate) hwm_kib: u64,
    /// `RssAnon`: the anonymous part of the RSS (heap, stacks), KiB; the rest is mostly the
    /// program's and libraries' file pages.
    pub(crate) anon_kib: u64,
    pub(crate) heap: Heap,
}

/// A running `bench` example.
pub(crate) struct Server {
    child: Child,
    pid: i32,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    pub(crate) addr: SocketAddr,
}

impl Server {
    /// Starts the filter on a free loopback port with `extra` arguments (`--delay-ms 50`,
    /// `--tokio`, ...) and waits for its `listening` line. It inherits this process's
    /// open-file limit.
    pub(crate) fn start(program: &Path, extra: &[String]) -> Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let (mut child, lines) = crate::process::start_listening(
            Command::new(program)
                .arg(format!("inet:{port}@127.0.0.1"))
                .arg("--stats-stdin")
                .args(extra)
                .env("RUST_LOG", "warn"),
        )
        .map_err(|e| format!("bench example: {e}"))?;
        Ok(Self {
            pid: child.id() as i32,
            stdin: child.stdin.take(),
            child,
            lines,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        })
    }

    /// The heap counters, asked for on the server's standard input.
    pub(crate) fn heap(&mut self) -> Result<Heap> {
        let stdin = self.stdin.as_mut().ok_or("server stdin closed")?;
        stdin.write_all(b"stats\n")?;
        stdin.flush()?;
        let line = self.lines.recv_timeout(Duration::from_secs(10))?;
        let field = |name: &str| -> Result<u64> {
            let mut words = line.split_whitespace();
            while let Some(word) = words.next() {
                if word == name {
                    return Ok(words.next().ok_or("no value")?.parse()?);
                }
            }
            Err(format!("no {name} in {line:?}").into())
        };
        let (allocs, deallocs) = (field("allocs")?, field("deallocs")?);
        let (bytes, freed) = (field("bytes")?, field("freed")?);
        Ok(Heap {
            allocs,
            live_blocks: allocs.saturating_sub(deallocs),
            live_bytes: bytes.saturating_sub(freed),
        })
    }

    /// RSS, peak RSS and the heap counters, read together.
    pub(crate) fn memory(&mut self) -> Result<Memory> {
        // The heap first: answering allocates a little, after its own reading.
        let heap = self.heap()?;
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let field = |name: &str| crate::process::status_kib(&status, name);
        Ok(Memory {
            rss_kib: field("VmRSS:"),
            hwm_kib: field("VmHWM:"),
            anon_kib: field("RssAnon:"),
            heap,
        })
    }

    /// The process's CPU time (every thread) in seconds.
    pub(crate) fn cpu_secs(&self) -> f64 {
        let pid = nix::unistd::Pid::from_raw(self.pid);
        nix::time::clock_getcpuclockid(pid)
            .and_then(nix::time::clock_gettime)
            .map_or(0.0, |t| t.tv_sec() as f64 + t.tv_nsec() as f64 / 1e9)
    }

    /// The server's soft open-file limit, from `/proc/PID/limits`.
    pub(crate) fn open_files_limit(&self) -> Option<u64> {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", self.pid)).ok()?;
        limits
            .lines()
            .find_map(|l| l.strip_prefix("Max open files"))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// Ends the server (end of its standard input), killing it if it does not exit in time.
    pub(crate) fn stop(mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Raises this process's soft open-file limit to at least `needed` (the hard limit too when
/// allowed, as root), so the load generator and the server it starts (which inherits the
/// limit) can hold that many sockets. Returns the limit in force.
pub(crate) fn raise_open_files(needed: u64) -> Result<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft >= needed {
        return Ok(soft);
    }
    if hard >= needed {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
        return Ok(hard);
    }
    setrlimit(Resource::RLIMIT_NOFILE, needed, needed).map_err(|e| {
        format!(
            "{needed} open files are needed and the hard limit is {hard}; raising it failed \
             ({e}): run as root or lower SOAK_IDLE / SOAK_SLOW_CONNS"
        )
    })?;
    Ok(needed)
}
