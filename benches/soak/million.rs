//! Scenario 2: a long run (one million messages by default) over 64 connections through the
//! filter that reads every header and the whole body and adds a header. The server's memory
//! (RSS and its live heap) is read every 5% of the messages; flat is the goal.

use std::sync::Arc;
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use crate::host::load_average;
use crate::load::{self, Bound, Message, Tally};
use crate::report::rate;
use crate::server::{Memory, Server};
use crate::{Params, Result, Verdict};

/// One reading of the server's memory during the run.
struct Point {
    served: u64,
    at: Duration,
    memory: Memory,
}

pub(crate) fn run(program: &std::path::Path, p: &Params) -> Result<Verdict> {
    let mut server = Server::start(program, &p.server_args)?;
    let outcome = scenario(&mut server, p);
    server.stop();
    outcome
}

fn scenario(server: &mut Server, p: &Params) -> Result<Verdict> {
    println!();
    println!(
        "### 2. {} messages over {} connections, memory every 5%",
        p.messages, p.conns
    );
    println!();
    println!("load average before: {}", load_average());
    let msg = Arc::new(Message::typical());
    let addr = server.addr;
    let clients = async_std::task::block_on(async {
        let mut clients = load::open_many(addr, p.conns, 64, true).await?;
        for client in &mut clients {
            load::message(client, &msg).await?;
        }
        Ok::<_, crate::BoxError>(clients)
    })?;

    let step = (p.messages / 20).max(1);
    let tally = Arc::new(Tally::default());
    let bound = Bound {
        messages: p.messages,
        deadline: Instant::now() + p.max_time,
    };
    let start = server.memory()?;
    let cpu_before = server.cpu_secs();
    let started = Instant::now();
    let (tx, rx) = channel::<u64>();
    // The sampler reads the server while the load runs; it stops when the run drops the
    // last sender.
    let (ran, points) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut points = Vec::new();
            for served in rx {
                let at = started.elapsed();
                match server.memory() {
                    Ok(memory) => points.push(Point { served, at, memory }),
                    Err(error) => eprintln!("soak: memory reading failed: {error}"),
                }
            }
            points
        });
        let ran = async_std::task::block_on(load::run(
            clients,
            msg.clone(),
            bound,
            tally.clone(),
            Some((step, tx)),
        ));
        (ran, sampler.join())
    });
    let points = points.map_err(|_| "the memory sampler panicked")?;
    let wall = started.elapsed();
    let cpu = server.cpu_secs() - cpu_before;
    let end = server.memory()?;
    let end_point = Point {
        served: tally.served(),
        at: wall,
        memory: end,
    };
    let done = tally.served();
    println!(
        "served {done} messages on {} connections in {:.1} s: {:.0} msgs/s, server CPU {:.0} \
         µs/msg, {:.1} heap allocations/msg, errors {}{}",
        p.conns,
        wall.as_secs_f64(),
        rate(done, wall),
        cpu * 1e6 / done.max(1) as f64,
        end.heap.allocs.saturating_sub(start.heap.allocs) as f64 / done.max(1) as f64,
        tally.errors(),
        tally.first_error()
    );
    if done < p.messages && tally.errors() == 0 {
        println!(
            "stopped by the time bound ({} s, SOAK_MAX_SECS)",
            p.max_time.as_secs()
        );
    }
    print_series(&start, &points, &end_point, p.messages);
    let quit_failures = async_std::task::block_on(load::quit_all(ran.clients, 64));
    println!("QUIT failures: {quit_failures}");
    println!("load average after: {}", load_average());
    Ok(Verdict {
        errors: tally.errors() + quit_failures,
        complete: done == p.messages,
    })
}

/// The memory readings as a table, the RSS series, and the growth after the first 5%.
fn print_series(start: &Memory, points: &[Point], end_point: &Point, messages: u64) {
    let end = &end_point.memory;
    println!();
    println!(
        "| messages served | s | RSS KiB | of which anonymous KiB | live heap blocks | live heap KiB |"
    );
    println!("|---|---|---|---|---|---|");
    let row = |label: &str, at: Duration, m: &Memory| {
        println!(
            "| {label} | {:.1} | {} | {} | {} | {} |",
            at.as_secs_f64(),
            m.rss_kib,
            m.anon_kib,
            m.heap.live_blocks,
            m.heap.live_bytes / 1024
        );
    };
    row("start (after warm-up)", Duration::ZERO, start);
    for point in points {
        let percent = point.served * 100 / messages.max(1);
        row(
            &format!("{} ({percent}%)", point.served),
            point.at,
            &point.memory,
        );
    }
    row(&format!("{} (end)", end_point.served), end_point.at, end);
    println!();
    let rss: Vec<u64> = points.iter().map(|pt| pt.memory.rss_kib).collect();
    let max_rss = rss
        .iter()
        .copied()
        .chain([start.rss_kib, end.rss_kib])
        .max();
    println!(
        "RSS KiB every 5%: {}",
        rss.iter().map(u64::to_string).collect::<Vec<_>>().join(" ")
    );
    println!(
        "RSS: start {} KiB, end {} KiB, max {} KiB; peak (VmHWM) {} KiB",
        start.rss_kib,
        end.rss_kib,
        max_rss.unwrap_or(0),
        end.hwm_kib
    );
    if let Some(first) = points.first() {
        println!(
            "from the first 5% to the end: RSS {:+} KiB (anonymous {:+} KiB), live heap {:+} \
             blocks, {:+} bytes",
            end.rss_kib as i64 - first.memory.rss_kib as i64,
            end.anon_kib as i64 - first.memory.anon_kib as i64,
            end.heap.live_blocks as i64 - first.memory.heap.live_blocks as i64,
            end.heap.live_bytes as i64 - first.memory.heap.live_bytes as i64
        );
    }
}
