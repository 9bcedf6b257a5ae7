//! The machinery of the hostile-input catalogue (`tests/hostile.rs`): the server's limits
//! and the bounds cases are held to; what a case is (`case.rs`); the loop that runs every
//! case against one server process and checks, after each, that the server still serves,
//! that a neighbour session was not disturbed and that its memory came back (`runner.rs`).

pub(crate) mod attacks;
mod case;
mod neighbour;
pub(crate) mod pattern;
mod runner;
pub(crate) mod target;
pub(crate) mod wire;

use std::time::Duration;

pub(crate) use case::{
    Attack, Case, Lab, Probe, answers, case, checked, closes, closes_with, times_out,
};
pub(crate) use runner::{run_catalogue, silent_for};

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
