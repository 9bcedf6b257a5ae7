//! The server under attack: the `fault_target` example as a child process, its standard
//! error captured line by line, its memory read from `/proc`.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::built::example_path;

/// Every line the server wrote (standard output and error), and a signal for new ones.
#[derive(Default)]
struct Lines {
    all: Mutex<Vec<String>>,
    grew: Condvar,
    /// How many `connection N: opened` lines there are: connections accepted.
    opened: AtomicUsize,
}

impl Lines {
    fn push(&self, line: String) {
        let mut lines = self.lock();
        if event(&line, "opened").is_some() {
            self.opened.fetch_add(1, Ordering::Relaxed);
        }
        lines.push(line);
        drop(lines);
        self.grew.notify_all();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.all.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The running server; killed when dropped.
pub(crate) struct Target {
    child: Child,
    lines: Arc<Lines>,
    /// Where it listens.
    pub(crate) addr: SocketAddr,
}

impl Target {
    /// Starts `fault_target` on a port the system picks, with `args`, and waits until it
    /// listens.
    pub(crate) fn start(args: &[String]) -> Self {
        let mut child = Command::new(example_path("fault_target"))
            .arg("inet:0@127.0.0.1")
            .args(args)
            .env("RUST_LOG", "info")
            .env("RUST_LOG_STYLE", "never")
            // A panic is one line, not a backtrace.
            .env("RUST_BACKTRACE", "0")
            // glibc serves blocks of 128 KiB and more from mmap and gives them back when
            // freed, instead of raising that threshold to the largest block freed so far
            // (its default), which would keep large freed buffers in the heap: resident
            // memory then shows what the server holds, not what the allocator caches.
            .env("MALLOC_MMAP_THRESHOLD_", "131072")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting examples/fault_target");
        let lines = Arc::new(Lines::default());
        forward(child.stdout.take().expect("piped"), lines.clone());
        forward(child.stderr.take().expect("piped"), lines.clone());
        let mut target = Self {
            child,
            lines,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let line = target
            .wait_for_line(0, Duration::from_secs(30), |l| {
                l.contains("listening on inet:")
            })
            .unwrap_or_else(|e| panic!("fault_target did not start: {e}"));
        let spec = line
            .split("listening on inet:")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("a spec after `listening on`");
        let (port, host) = spec.split_once('@').expect("inet:PORT@HOST");
        target.addr = format!("{host}:{port}").parse().expect("a socket address");
        target
    }

    /// The process id, for `/proc`.
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Err` with how it ended if the process is gone.
    pub(crate) fn alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("the server exited: {status}")),
            Err(error) => Err(format!("cannot wait for the server: {error}")),
        }
    }

    // ===== memory =====

    /// A field of `/proc/PID/status` in bytes (`VmRSS`, `VmHWM`).
    fn status_bytes(&self, field: &str) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map_or(0, |kib| kib * 1024)
    }

    /// Resident memory now.
    pub(crate) fn rss(&self) -> u64 {
        self.status_bytes("VmRSS")
    }

    /// Highest resident memory since the last [`Target::reset_peak`].
    pub(crate) fn peak(&self) -> u64 {
        self.status_bytes("VmHWM")
    }

    /// Starts a new peak measurement (`/proc/PID/clear_refs`, value 5, Linux 4.0 and later).
    pub(crate) fn reset_peak(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5");
    }

    /// Waits until resident memory is at most `level`: polls `/proc` (memory has no event
    /// to wait on), for at most `within`.
    pub(crate) fn settle_rss(&self, level: u64, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        loop {
            let rss = self.rss();
            if rss <= level {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "resident memory {} stayed above {} for {within:?}",
                    mib(rss),
                    mib(level)
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    // ===== log lines =====

    /// How many lines have arrived: a mark to look at later lines from.
    pub(crate) fn mark(&self) -> usize {
        self.lines.lock().len()
    }

    /// The lines since `mark`.
    pub(crate) fn lines_since(&self, mark: usize) -> Vec<String> {
        self.lines.lock().get(mark..).unwrap_or_default().to_vec()
    }

    /// Waits for a line since `mark` that matches `wanted`.
    pub(crate) fn wait_for_line(
        &self,
        mark: usize,
        within: Duration,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<String, String> {
        self.wait_until(within, |lines| {
            lines.get(mark..)?.iter().find(|l| wanted(l)).cloned()
        })
        .ok_or_else(|| format!("no such line within {within:?}"))
    }

    /// How many connections the server has accepted so far.
    pub(crate) fn accepted(&self) -> usize {
        self.lines.opened.load(Ordering::Relaxed)
    }

    /// Waits until the server has accepted `count` connections in all.
    pub(crate) fn wait_accepted(&self, count: usize, within: Duration) -> Result<(), String> {
        self.wait_until(within, |_| (self.accepted() >= count).then_some(()))
            .ok_or_else(|| {
                format!(
                    "the server accepted {} connections, not {count}, within {within:?}",
                    self.accepted()
                )
            })
    }

    /// Waits until every connection the server opened since `mark` is logged as closed (or
    /// refused); `Err` names those still open.
    pub(crate) fn wait_all_closed(&self, mark: usize, within: Duration) -> Result<(), String> {
        let open = |lines: &[String]| {
            let since = lines.get(mark..).unwrap_or_default();
            let mut open: Vec<u64> = since.iter().filter_map(|l| event(l, "opened")).collect();
            let closed: std::collections::HashSet<u64> =
                since.iter().filter_map(|l| event(l, "closed")).collect();
            open.retain(|id| !closed.contains(id));
            open
        };
        if self
            .wait_until(within, |lines| open(lines).is_empty().then_some(()))
            .is_some()
        {
            return Ok(());
        }
        let still = open(&self.lines.lock());
        Err(format!(
            "{} connection(s) never logged as closed within {within:?} (ids {:?})",
            still.len(),
            still.iter().take(5).collect::<Vec<_>>()
        ))
    }

    /// Waits (on the line signal, at most `within`) until `found` finds something.
    fn wait_until<T>(&self, within: Duration, found: impl Fn(&[String]) -> Option<T>) -> Option<T> {
        let deadline = Instant::now() + within;
        let mut lines = self.lines.lock();
        loop {
            if let Some(value) = found(&lines) {
                return Some(value);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            lines = self
                .lines
                .grew
                .wait_timeout(lines, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The connection id of a `connection N: WHAT` line (`closed` also matches `closed: why`;
/// a refused connection counts as closed).
fn event(line: &str, what: &str) -> Option<u64> {
    let rest = line.split("connection ").nth(1)?;
    let (id, after) = rest.split_once(": ")?;
    let id = id.parse().ok()?;
    let matches = after.starts_with(what) || (what == "closed" && after.starts_with("refused"));
    matches.then_some(id)
}

/// Bytes as MiB for messages.
pub(crate) fn mib(bytes: u64) -> String {
    let tenths = bytes * 10 / (1 << 20);
    format!("{}.{} MiB", tenths / 10, tenths % 10)
}

fn forward(stream: impl Read + Send + 'static, lines: Arc<Lines>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            lines.push(line);
        }
    });
}
