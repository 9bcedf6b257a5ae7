//! Scenario 3: a slow filter (it waits 50 ms at end of message on the runtime's timer, as a
//! lookup would) under many messages in flight at once. Throughput should follow the
//! concurrency, connections / delay, until the CPU is the bound; the same load without the
//! delay gives that CPU bound. Nothing may time out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::host::load_average;
use crate::load::{self, Bound, Message, Tally};
use crate::report::rate;
use crate::server::Server;
use crate::{Params, Result, Verdict};

/// What one concurrency level measured.
struct Level {
    conns: usize,
    delay: Duration,
    served: u64,
    msgs_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    cpu_us: f64,
    errors: u64,
    first_error: String,
}

pub(crate) fn run(program: &std::path::Path, p: &Params) -> Result<Verdict> {
    println!();
    println!(
        "### 3. A filter that waits {} ms at end of message, many messages in flight",
        p.delay.as_millis()
    );
    println!();
    println!("load average before: {}", load_average());
    let mut levels = Vec::new();
    for &conns in &p.slow_conns {
        levels.push(level(program, p, conns, p.delay)?);
    }
    // The CPU bound: the widest level again without the wait.
    let widest = p.slow_conns.iter().copied().max().unwrap_or(0);
    let ceiling = level(program, p, widest, Duration::ZERO)?;
    println!();
    println!(
        "| connections | wait ms | msgs/s | ideal (connections / wait) | × ideal | × min(ideal, no-wait rate) | p50 ms | p99 ms | max ms | server CPU µs/msg | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for l in levels.iter().chain([&ceiling]) {
        let (ideal, ratio, bounded) = if l.delay.is_zero() {
            ("-".to_owned(), "-".to_owned(), "-".to_owned())
        } else {
            let ideal = l.conns as f64 / l.delay.as_secs_f64();
            let bound = ideal.min(ceiling.msgs_per_sec);
            (
                format!("{ideal:.0}"),
                format!("{:.2}", l.msgs_per_sec / ideal),
                format!("{:.2}", l.msgs_per_sec / bound),
            )
        };
        println!(
            "| {} | {} | {:.0} | {ideal} | {ratio} | {bounded} | {:.1} | {:.1} | {:.1} | {:.0} | {} |",
            l.conns,
            l.delay.as_millis(),
            l.msgs_per_sec,
            l.p50_ms,
            l.p99_ms,
            l.max_ms,
            l.cpu_us,
            l.errors
        );
    }
    for l in levels.iter().chain([&ceiling]) {
        if l.errors > 0 {
            println!(
                "errors at {} connections, {} ms: {}{}",
                l.conns,
                l.delay.as_millis(),
                l.errors,
                l.first_error
            );
        }
    }
    println!("load average after: {}", load_average());
    let errors = levels.iter().chain([&ceiling]).map(|l| l.errors).sum();
    let complete = levels.iter().chain([&ceiling]).all(|l| l.served > 0);
    Ok(Verdict { errors, complete })
}

/// `conns` connections sending messages back to back for `p.slow_time` through a fresh
/// server that waits `delay` at end of message.
fn level(program: &std::path::Path, p: &Params, conns: usize, delay: Duration) -> Result<Level> {
    let mut args = p.server_args.clone();
    if !delay.is_zero() {
        args.extend(["--delay-ms".to_owned(), delay.as_millis().to_string()]);
    }
    let server = Server::start(program, &args)?;
    let outcome = async_std::task::block_on(measure(&server, p, conns, delay));
    server.stop();
    outcome
}

async fn measure(server: &Server, p: &Params, conns: usize, delay: Duration) -> Result<Level> {
    let msg = Arc::new(Message::typical());
    let clients = load::open_many(server.addr, conns, 64, true).await?;
    // Warm-up: about one message per connection.
    let warm = Arc::new(Tally::default());
    let bound = Bound {
        messages: conns as u64,
        deadline: Instant::now() + p.max_time,
    };
    let warmed = load::run(clients, msg.clone(), bound, warm.clone(), None).await;

    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let bound = Bound {
        messages: u64::MAX,
        deadline: started + p.slow_time,
    };
    let cpu_before = server.cpu_secs();
    let ran = load::run(warmed.clients, msg, bound, tally.clone(), None).await;
    let wall = started.elapsed();
    let cpu = server.cpu_secs() - cpu_before;
    let quit_failures = load::quit_all(ran.clients, 64).await;
    let mut latencies = ran.latencies;
    latencies.sort_unstable();
    let done = tally.served();
    let level = Level {
        conns,
        delay,
        served: done,
        msgs_per_sec: rate(done, wall),
        p50_ms: load::quantile_ms(&latencies, 0.50),
        p99_ms: load::quantile_ms(&latencies, 0.99),
        max_ms: load::quantile_ms(&latencies, 1.0),
        cpu_us: cpu * 1e6 / done.max(1) as f64,
        errors: warm.errors() + tally.errors() + quit_failures,
        first_error: format!("{}{}", warm.first_error(), tally.first_error()),
    };
    eprintln!(
        "soak: {conns} connections, wait {} ms: {done} messages, {:.0} msgs/s, errors {}",
        delay.as_millis(),
        level.msgs_per_sec,
        level.errors
    );
    Ok(level)
}
