//! Load mode: the same message over many connections, with throughput and latency per stage.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_milter::client::{Envelope, Profile};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::{Args, ExitStatus, Run, play};

/// What the workers collect.
#[derive(Default)]
struct Totals {
    /// Latencies per stage, in the order stages were first seen.
    stages: Vec<(&'static str, Vec<Duration>)>,
    /// Whole sessions.
    sessions: Vec<Duration>,
    /// How many messages ended with each result (`accepted`, `rejected`, …).
    results: BTreeMap<&'static str, u64>,
    /// The first error of each exit status.
    first_errors: BTreeMap<u8, String>,
}

/// Plays the message `--count` times on `--concurrency` connections at once, prints the
/// summary and returns the exit status (0 when every session completed).
pub(crate) fn run(
    args: &Args,
    profile: &Profile,
    envelope: &Envelope,
    message: &[u8],
) -> ExitStatus {
    let count = args.count.unwrap_or(1);
    let workers = args.concurrency.clamp(1, count.max(1));
    let next = Arc::new(AtomicU64::new(0));
    let totals = Arc::new(Mutex::new(Totals::default()));
    let bar = if std::io::stderr().is_terminal() && !args.json {
        let bar = ProgressBar::new(count);
        if let Ok(style) =
            ProgressStyle::with_template("{bar:40} {pos}/{len} messages, {per_sec} ({eta} left)")
        {
            bar.set_style(style);
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let started = Instant::now();
    async_std::task::block_on(futures::future::join_all((0..workers).map(|_| {
        let next = Arc::clone(&next);
        let totals = Arc::clone(&totals);
        let bar = bar.clone();
        async move {
            while next.fetch_add(1, Ordering::Relaxed) < count {
                one_session(args, profile, envelope, message, &totals).await;
                bar.inc(1);
            }
        }
    })));
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    let mut totals = Arc::try_unwrap(totals)
        .ok()
        .and_then(|m| m.into_inner().ok())
        .unwrap_or_default();
    let completed = totals.sessions.len() as u64;
    // Message counts are far below 2^52, so the conversion to f64 is exact.
    #[allow(clippy::cast_precision_loss)]
    let rate = completed as f64 / elapsed.as_secs_f64().max(f64::EPSILON);
    let mut rows: Vec<(&'static str, Percentiles)> = totals
        .stages
        .iter_mut()
        .map(|(stage, laps)| (*stage, Percentiles::of(laps)))
        .collect();
    rows.push(("session", Percentiles::of(&mut totals.sessions)));
    let status = totals
        .first_errors
        .keys()
        .next()
        .map_or(ExitStatus::Accepted, |code| {
            if *code == ExitStatus::ConnectionFailure as u8 {
                ExitStatus::ConnectionFailure
            } else {
                ExitStatus::ProtocolError
            }
        });
    if args.json {
        let value = json!({
            "messages": count,
            "completed": completed,
            "concurrency": workers,
            "seconds": elapsed.as_secs_f64(),
            "messages_per_second": rate,
            "results": totals.results,
            "errors": totals.first_errors.values().collect::<Vec<_>>(),
            "latency_ms": rows.iter().map(|(stage, p)| (stage.to_string(), json!({
                "p50": ms(p.p50), "p90": ms(p.p90), "p99": ms(p.p99), "max": ms(p.max),
            }))).collect::<serde_json::Map<_, _>>(),
            "exit_code": status as u8,
        });
        println!("{value:#}");
        return status;
    }
    print_summary(&totals, &rows, count, workers, elapsed);
    status
}

/// Plays one session and adds its result and timings to `totals`.
async fn one_session(
    args: &Args,
    profile: &Profile,
    envelope: &Envelope,
    message: &[u8],
    totals: &Mutex<Totals>,
) {
    let mut run = Run::default();
    let begun = Instant::now();
    let result = play(args, profile.clone(), envelope, message, &mut run).await;
    let took = begun.elapsed();
    let mut totals = totals
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let status = match &result {
        Ok(()) => run
            .verdict
            .as_ref()
            .map_or(ExitStatus::ProtocolError, ExitStatus::of_verdict),
        Err(error) => {
            let status = ExitStatus::of_error(error);
            totals
                .first_errors
                .entry(status as u8)
                .or_insert_with(|| crate::report::error_text(error));
            status
        }
    };
    *totals.results.entry(status.name()).or_default() += 1;
    if result.is_ok() {
        totals.sessions.push(took);
        for (stage, lap) in run.timings {
            match totals.stages.iter_mut().find(|(s, _)| *s == stage) {
                Some((_, laps)) => laps.push(lap),
                None => totals.stages.push((stage, vec![lap])),
            }
        }
    }
}

/// The plain-text summary.
fn print_summary(
    totals: &Totals,
    rows: &[(&'static str, Percentiles)],
    count: u64,
    workers: u64,
    elapsed: Duration,
) {
    let completed = totals.sessions.len();
    // Message counts are far below 2^52, so the conversion to f64 is exact.
    #[allow(clippy::cast_precision_loss)]
    let rate = completed as f64 / elapsed.as_secs_f64().max(f64::EPSILON);
    println!(
        "{completed} of {count} messages in {:.3} s on {workers} connection(s) at once: {rate:.1} messages/s",
        elapsed.as_secs_f64()
    );
    for (result, n) in &totals.results {
        println!("  {result:<20} {n}");
    }
    println!(
        "\n  {:<10} {:>10} {:>10} {:>10} {:>10}",
        "stage", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
    for (stage, p) in rows {
        println!(
            "  {stage:<10} {:>10.3} {:>10.3} {:>10.3} {:>10.3}",
            ms(p.p50),
            ms(p.p90),
            ms(p.p99),
            ms(p.max)
        );
    }
    for error in totals.first_errors.values() {
        eprintln!("milter-check: {error}");
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Nearest-rank percentiles of a set of latencies.
#[derive(Clone, Copy, Debug, Default)]
struct Percentiles {
    p50: Duration,
    p90: Duration,
    p99: Duration,
    max: Duration,
}

impl Percentiles {
    fn of(laps: &mut [Duration]) -> Self {
        laps.sort_unstable();
        let rank = |p: usize| {
            let at = (laps.len() * p).div_ceil(100).saturating_sub(1);
            laps.get(at).copied().unwrap_or_default()
        };
        Self {
            p50: rank(50),
            p90: rank(90),
            p99: rank(99),
            max: laps.last().copied().unwrap_or_default(),
        }
    }
}
