//! The machinery of the hostile-input catalogue (`tests/hostile.rs`): what a case is, what
//! it expects, and the loop that runs every case against one server process and checks,
//! after each, that the server still serves, that a neighbour session was not disturbed and
//! that its memory came back.

pub(crate) mod attacks;
pub(crate) mod neighbour;
pub(crate) mod pattern;
pub(crate) mod target;
pub(crate) mod wire;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use neighbour::{Neighbour, normal_session};
use target::{Target, mib};
use wire::{MESSAGE_PASSES, Next, REPLY_WAIT, Raw};

// ===== the server's limits =====

/// How long a connection may take to complete OPTNEG.
pub(crate) const NEGOTIATION_TIMEOUT: Duration = Duration::from_millis(300);
/// How long the MTA may stay silent (or trickle one frame) after negotiation.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_millis(1500);
/// How long a reply may wait for the MTA to read it.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_millis(500);
/// PROGRESS while a filter works at end of message.
pub(crate) const PROGRESS_INTERVAL: Duration = Duration::from_millis(200);
/// Headers per message.
pub(crate) const MAX_HEADERS: usize = 1000;
/// Header bytes per message.
pub(crate) const MAX_HEADER_BYTES: usize = 64 * 1024;
/// How long a `block` fault blocks its thread.
pub(crate) const BLOCK: Duration = Duration::from_millis(300);

/// The fault target's command line for those limits.
fn target_args() -> Vec<String> {
    let ms = |d: Duration| d.as_millis().to_string();
    [
        ("--negotiation-timeout-ms", ms(NEGOTIATION_TIMEOUT)),
        ("--read-timeout-ms", ms(READ_TIMEOUT)),
        ("--write-timeout-ms", ms(WRITE_TIMEOUT)),
        ("--progress-interval-ms", ms(PROGRESS_INTERVAL)),
        ("--max-headers", MAX_HEADERS.to_string()),
        ("--max-header-bytes", MAX_HEADER_BYTES.to_string()),
        ("--block-ms", ms(BLOCK)),
    ]
    .into_iter()
    .flat_map(|(flag, value)| [flag.to_owned(), value])
    .collect()
}

// ===== bounds =====

/// How soon a close that needs no timer must come.
pub(crate) const PROMPT: Duration = Duration::from_secs(2);
/// How far a timer may fire late on a loaded two-core machine and still count as on time.
pub(crate) const SLACK: Duration = Duration::from_millis(700);
/// How long after a case its connections may take to be logged as closed.
const SETTLE: Duration = Duration::from_secs(5);

/// How far above its baseline the server's resident memory may stay after a case.
///
/// glibc's allocator keeps small freed blocks in its heaps and returns heap memory only
/// from the top of each, so once 2,000 connections (10 KiB each) have come and gone,
/// resident memory stays about 20 MiB above where it started, and stays there however
/// often that is repeated (large blocks are mapped and unmapped on their own: see
/// `target.rs`). The baseline is taken after a warm-up of that size; 8 MiB over it covers
/// what else the allocator keeps, and is far below what the defects guarded against would
/// keep: a 64 MiB output buffer, or half a MiB per announced frame length on hundreds of
/// connections.
pub(crate) const RSS_TOLERANCE: u64 = 8 << 20;
/// How far above the baseline the peak may go during a case, unless the case says more:
/// what a dozen connections and a few messages need, far below anything sized by the peer.
pub(crate) const PEAK_BUDGET: u64 = 24 << 20;

// ===== cases =====

/// What an attack leaves for judging.
pub(crate) enum Probe {
    /// The attack's connection, with the replies it has already read.
    Open { raw: Raw, replies: String },
    /// The attack checked its outcome itself.
    Done,
}

/// What an attack can use.
pub(crate) struct Lab<'t> {
    pub(crate) target: &'t Target,
    pub(crate) addr: SocketAddr,
    /// The server's resident memory before the case.
    pub(crate) baseline: u64,
    /// The server's log lines from this one on are the case's.
    pub(crate) mark: usize,
}

pub(crate) type Attack = Box<dyn Fn(&Lab<'_>) -> Result<Probe, String>>;

/// What becomes of the attack's connection.
pub(crate) enum Shape {
    /// These replies, then the server closes the connection at least `not_before` and at
    /// most `within` after the last bytes sent.
    Closes {
        replies: &'static str,
        not_before: Duration,
        within: Duration,
    },
    /// These replies (a fixed number), then the connection goes on serving: after ABORT a
    /// new SMTP session and a message pass, and QUIT closes it.
    Answers { replies: &'static str },
    /// The attack checked it.
    Checked,
}

/// A case's expected outcome.
pub(crate) struct Expect {
    shape: Shape,
    /// Each appears in a line the server wrote during the case.
    logged: Vec<&'static str>,
    /// Each pair appears within one such line (a value that holds a line break must not
    /// split the line it is logged in).
    together: Vec<(&'static str, &'static str)>,
    /// How many lines at level WARN or ERROR the server writes during the case, if fixed.
    alarms: Option<usize>,
    /// Most the server's resident memory may grow above the baseline during the case.
    peak: u64,
}

impl Expect {
    fn new(shape: Shape, alarms: Option<usize>) -> Self {
        Self {
            shape,
            alarms,
            logged: Vec::new(),
            together: Vec::new(),
            peak: PEAK_BUDGET,
        }
    }

    /// And a line containing `text` is logged.
    #[must_use]
    pub(crate) fn logged(mut self, text: &'static str) -> Self {
        self.logged.push(text);
        self
    }

    /// And one logged line holds both `first` and `second`.
    #[must_use]
    pub(crate) fn logged_together(mut self, first: &'static str, second: &'static str) -> Self {
        self.together.push((first, second));
        self
    }

    /// And exactly `count` lines at level WARN or ERROR (instead of what the shape implies:
    /// one for a close, none for a connection that goes on).
    #[must_use]
    pub(crate) fn alarms(mut self, count: usize) -> Self {
        self.alarms = Some(count);
        self
    }

    /// And the peak may go `bytes` above the baseline (instead of [`PEAK_BUDGET`]).
    #[must_use]
    pub(crate) fn peak(mut self, bytes: u64) -> Self {
        self.peak = bytes;
        self
    }
}

/// No reply; the server closes at once and logs a line containing `log`.
pub(crate) fn closes(log: &'static str) -> Expect {
    closes_with("", log)
}

/// These replies; then the server closes at once and logs a line containing `log`.
pub(crate) fn closes_with(replies: &'static str, log: &'static str) -> Expect {
    Expect::new(
        Shape::Closes {
            replies,
            not_before: Duration::ZERO,
            within: PROMPT,
        },
        Some(1),
    )
    .logged(log)
}

/// No reply; the server closes when `timeout` has passed (not before) and logs `log`.
pub(crate) fn times_out(timeout: Duration, log: &'static str) -> Expect {
    Expect::new(
        Shape::Closes {
            replies: "",
            not_before: timeout.saturating_sub(Duration::from_millis(50)),
            within: timeout + SLACK,
        },
        Some(1),
    )
    .logged(log)
}

/// These replies, and the connection goes on serving.
pub(crate) fn answers(replies: &'static str) -> Expect {
    Expect::new(Shape::Answers { replies }, Some(0))
}

/// The attack checked its outcome; the server-wide checks still apply.
pub(crate) fn checked() -> Expect {
    Expect::new(Shape::Checked, None)
}

/// One entry of the catalogue.
pub(crate) struct Case {
    pub(crate) name: &'static str,
    attack: Attack,
    expect: Expect,
}

pub(crate) fn case(name: &'static str, attack: Attack, expect: Expect) -> Case {
    Case {
        name,
        attack,
        expect,
    }
}

// ===== judging =====

/// Checks what became of the attack's connection.
fn judge(shape: &Shape, probe: Probe) -> Result<(), String> {
    let (mut raw, before) = match probe {
        Probe::Done => return Ok(()),
        Probe::Open { raw, replies } => (raw, replies),
    };
    match shape {
        Shape::Checked => Ok(()),
        Shape::Closes {
            replies,
            not_before,
            within,
        } => {
            let (got, closed) = raw.until_closed(*within);
            let all = before + &got;
            if !pattern::matches(replies, &all) {
                return Err(format!(
                    "replies {:?}, expected {replies:?}",
                    pattern::summary(&all)
                ));
            }
            match closed {
                None => Err(format!("still open {within:?} after the last bytes sent")),
                Some(after) if after < *not_before => {
                    Err(format!("closed after {after:?}, before {not_before:?}"))
                }
                Some(_) => Ok(()),
            }
        }
        Shape::Answers { replies } => {
            let wanted = pattern::fixed_len(replies).expect("`answers` takes a fixed count");
            let more = raw
                .replies(wanted.saturating_sub(before.len()))
                .map_err(|e| format!("replies {:?}, then {e}", pattern::summary(&before)))?;
            let all = before + &more;
            if !pattern::matches(replies, &all) {
                return Err(format!(
                    "replies {:?}, expected {replies:?}",
                    pattern::summary(&all)
                ));
            }
            goes_on(&mut raw).map_err(|e| format!("afterwards the connection: {e}"))
        }
    }
}

/// ABORT, a new SMTP session with one message that passes, QUIT and a close.
fn goes_on(raw: &mut Raw) -> Result<(), String> {
    raw.send(&wire::bare(b'A'))?;
    let mut commands = vec![
        wire::connect("client.example.com"),
        wire::helo("client.example.com"),
    ];
    commands.extend(wire::message_commands("<alice@example.com>"));
    raw.expect_conversation(&commands, &format!("cc {MESSAGE_PASSES}"))?;
    raw.send(&wire::bare(b'Q'))?;
    match raw.until_closed(PROMPT) {
        (replies, Some(_)) if replies.is_empty() => Ok(()),
        (replies, closed) => Err(format!(
            "QUIT gave replies {replies:?}, closed: {}",
            closed.is_some()
        )),
    }
}

/// Runs `case` against `target`; every problem found.
fn run_case(target: &mut Target, case: &Case, baseline: u64) -> Vec<String> {
    let mut problems = Vec::new();
    let mark = target.mark();
    target.reset_peak();
    let addr = target.addr;
    let neighbour = Neighbour::start(addr);
    let lab = Lab {
        target,
        addr,
        baseline,
        mark,
    };
    match (case.attack)(&lab) {
        Ok(probe) => problems.extend(judge(&case.expect.shape, probe).err()),
        Err(error) => problems.push(format!("attack: {error}")),
    }
    match neighbour.and_then(Neighbour::finish) {
        Ok(0) => problems.push("the neighbour completed no message".to_owned()),
        Ok(_) => {}
        Err(error) => problems.push(error),
    }
    problems.extend(normal_session(addr).err());
    problems.extend(target.wait_all_closed(mark, SETTLE).err());
    for text in &case.expect.logged {
        if target
            .wait_for_line(mark, REPLY_WAIT, |line| line.contains(text))
            .is_err()
        {
            problems.push(format!("no log line with {text:?}"));
        }
    }
    let lines = target.lines_since(mark);
    for (first, second) in &case.expect.together {
        if !lines
            .iter()
            .any(|l| l.contains(first) && l.contains(second))
        {
            problems.push(format!("no log line with both {first:?} and {second:?}"));
        }
    }
    let alarms = lines
        .iter()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .count();
    if case
        .expect
        .alarms
        .is_some_and(|expected| alarms != expected)
    {
        problems.push(format!(
            "{alarms} lines at WARN or ERROR, expected {}",
            case.expect.alarms.unwrap_or_default()
        ));
    }
    let peak = target.peak().saturating_sub(baseline);
    if peak > case.expect.peak {
        problems.push(format!(
            "resident memory peaked {} above the baseline, budget {}",
            mib(peak),
            mib(case.expect.peak)
        ));
    }
    problems.extend(
        target
            .settle_rss(baseline + RSS_TOLERANCE, Duration::from_secs(3))
            .err(),
    );
    problems.extend(target.alive().err());
    problems
}

/// A server with its baseline memory: started, warmed up, measured.
fn fresh_target() -> (Target, u64) {
    let target = Target::start(&target_args());
    // The warm-up brings the runtime's threads and the allocator's heaps to their working
    // size (the largest load of the catalogue is 2,000 connections at once), so the
    // baseline is the level a served server returns to.
    let mark = target.mark();
    let opened = attacks::connect_many(&target, 2000, true).expect("warm-up connections");
    drop(opened);
    target
        .wait_all_closed(mark, SETTLE)
        .expect("warm-up connections closed");
    for _ in 0..3 {
        let warm_up = Neighbour::start(target.addr)
            .and_then(|neighbour| normal_session(target.addr).and_then(|()| neighbour.finish()));
        if let Err(error) = warm_up {
            panic!(
                "warm-up: {error}; the server said:\n{}",
                target.lines_since(0).join("\n")
            );
        }
    }
    let baseline = target.rss();
    (target, baseline)
}

/// Raises the soft limit on open files to `wanted` where the hard limit allows: the
/// thousands-of-connections cases hold that many sockets here and in the server (a child
/// inherits the limit).
fn raise_fd_limit(wanted: u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < wanted {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, wanted.min(hard), hard);
        }
    }
}

/// Runs every case (those whose name contains `HOSTILE_CASES`, when set), each followed by
/// the server-wide checks; fails with every problem of every case.
pub(crate) fn run_catalogue(cases: &[Case]) {
    let mut names = std::collections::HashSet::new();
    for case in cases {
        assert!(names.insert(case.name), "two cases named {:?}", case.name);
    }
    raise_fd_limit(8192);
    let only = std::env::var("HOSTILE_CASES").ok();
    let started = Instant::now();
    let (mut target, mut baseline) = fresh_target();
    eprintln!("server baseline: {}", mib(baseline));
    let mut failed = Vec::new();
    let mut ran = 0;
    for case in cases {
        if only
            .as_deref()
            .is_some_and(|only| !case.name.contains(only))
        {
            continue;
        }
        ran += 1;
        let at = Instant::now();
        let mark = target.mark();
        let problems = run_case(&mut target, case, baseline);
        let verdict = if problems.is_empty() { "ok" } else { "FAILED" };
        eprintln!(
            "{:>6} ms  {verdict:6}  {}",
            at.elapsed().as_millis(),
            case.name
        );
        for problem in &problems {
            eprintln!("                  {problem}");
        }
        // HOSTILE_VERBOSE=1: the server's lines of each failed case; =all: of every case.
        let verbose = std::env::var("HOSTILE_VERBOSE").unwrap_or_default();
        if verbose == "all" || (verbose == "1" && !problems.is_empty()) {
            let lines = target.lines_since(mark);
            // The neighbour's messages are not news.
            let news: Vec<_> = lines
                .iter()
                .filter(|l| !l.ends_with(": verdict accept"))
                .collect();
            for line in &news[news.len().saturating_sub(40)..] {
                eprintln!("                  | {line}");
            }
        }
        if !problems.is_empty() {
            failed.push((case.name, problems));
            // Whatever state the case left, the cases after it get a server of their own.
            (target, baseline) = fresh_target();
        }
    }
    eprintln!(
        "{ran} cases in {:.1} s, {} failed",
        started.elapsed().as_secs_f64(),
        failed.len()
    );
    assert!(ran > 0, "HOSTILE_CASES={only:?} matches no case");
    assert!(
        failed.is_empty(),
        "{} of {ran} hostile cases failed:\n{}",
        failed.len(),
        failed
            .iter()
            .map(|(name, problems)| format!("- {name}: {}", problems.join("; ")))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Whether the server answers within `within` (used by attacks that expect silence).
pub(crate) fn silent_for(raw: &mut Raw, within: Duration) -> Result<(), String> {
    match raw.next(within) {
        Next::Silent => Ok(()),
        other => Err(format!("expected no reply for {within:?}, got {other:?}")),
    }
}
