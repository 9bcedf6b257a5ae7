//! The heap allocation table: per message, per body chunk, per connection, per idle
//! connection; everything the server process allocates and, for the library, its own share.

use super::chunk_probe::PerChunk;
use super::{Results, Sample, ServerKind, Workload, fmt_num, opt_stat};

/// The median over `samples` of a per-chunk figure (W1 samples carry it).
pub(super) fn per_chunk(samples: &[Sample], pick: fn(&PerChunk) -> Option<f64>) -> Option<f64> {
    opt_stat(samples, |s| s.chunk.as_ref().and_then(pick)).map(|s| s.median)
}

/// Appends the table to `out`.
pub(super) fn table(out: &mut String, results: &Results, servers: &[ServerKind]) {
    let mut rows = Vec::new();
    for &server in servers {
        let median = |wl, pick: fn(&Sample) -> Option<f64>| {
            results
                .get(&(wl, server))
                .and_then(|s| opt_stat(s, pick))
                .map(|s| s.median)
        };
        let cell = |all: Option<f64>, library: Option<f64>| match (all, library) {
            (Some(all), Some(library)) => format!("{} / {}", fmt_num(all), fmt_num(library)),
            (Some(all), None) => fmt_num(all),
            _ => "-".to_owned(),
        };
        let chunk = |pick| {
            results
                .get(&(Workload::W1, server))
                .and_then(|s| per_chunk(s, pick))
        };
        let per_message = (
            median(Workload::W1, |s| s.allocs),
            median(Workload::W1, |s| s.library_allocs),
        );
        let per_chunk = (chunk(|c| Some(c.total)), chunk(|c| c.library));
        let per_connection = (
            median(Workload::W4, |s| s.allocs),
            median(Workload::W4, |s| s.library_allocs),
        );
        let per_idle = (
            median(Workload::W5, |s| s.allocs),
            median(Workload::W5, |s| s.library_allocs),
        );
        if [per_message.0, per_chunk.0, per_connection.0, per_idle.0]
            .iter()
            .all(Option::is_none)
        {
            continue;
        }
        rows.push(format!(
            "| {} | {} | {} | {} | {} |",
            server.name(),
            cell(per_message.0, per_message.1),
            cell(per_chunk.0, per_chunk.1),
            cell(per_connection.0, per_connection.1),
            cell(per_idle.0, per_idle.1),
        ));
    }
    if rows.is_empty() {
        return;
    }
    let lines = [
        String::new(),
        "### Heap allocations in the server".to_owned(),
        String::new(),
        "| server | per message (W1) | per body chunk | per connection (W4: one message) | per idle connection (W5) |".to_owned(),
        "|---|---|---|---|---|".to_owned(),
    ];
    for line in lines.into_iter().chain(rows) {
        out.push_str(&line);
        out.push('\n');
    }
    out.push('\n');
    out.push_str(
        "Each async-milter cell: everything the server process allocates / the library's own share \
(allocations in the library's code, not in the runtime calls it makes: socket reads and writes, \
accepting, spawning, timers); the difference is the runtime's. Per body chunk: one connection, \
the same 2 KiB body sent as 1 chunk and as 16 chunks, the difference per extra chunk (never \
below 0). libmilter's allocations are not counted.\n",
    );
}
