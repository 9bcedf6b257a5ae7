//! Runs the catalogue: each case against one server process, then the checks every case
//! gets (a fresh session, the neighbour, every connection closed, warnings, memory).

use std::time::{Duration, Instant};

use super::case::{Case, Lab, Probe, Shape};
use super::neighbour::{Neighbour, normal_session};
use super::target::{Target, mib};
use super::wire::{self, MESSAGE_PASSES, Next, REPLY_WAIT, Raw};
use super::{PROMPT, RSS_TOLERANCE, SETTLE, attacks, pattern, target_args};

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

/// Checks that the server says nothing on `raw` for `within` (for attacks that expect
/// silence).
pub(crate) fn silent_for(raw: &mut Raw, within: Duration) -> Result<(), String> {
    match raw.next(within) {
        Next::Silent => Ok(()),
        other => Err(format!("expected no reply for {within:?}, got {other:?}")),
    }
}
