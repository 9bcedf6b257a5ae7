//! Scenario 1: many negotiated, idle connections held open while other connections send
//! mail. Every message must be served; memory per idle connection is the server's RSS growth
//! over the idle connections divided by their number. At the end each held connection sends
//! one message, which proves the server kept every one of them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;

use crate::host::load_average;
use crate::load::{self, Bound, Message, Tally};
use crate::report::{kib, rate};
use crate::server::Server;
use crate::{Params, Result, Verdict};

pub(crate) fn run(program: &std::path::Path, p: &Params) -> Result<Verdict> {
    let mut server = Server::start(program, &p.server_args)?;
    let outcome = async_std::task::block_on(scenario(&mut server, p));
    server.stop();
    outcome
}

async fn scenario(server: &mut Server, p: &Params) -> Result<Verdict> {
    println!();
    println!(
        "### 1. {} idle connections held while {} connections send mail",
        p.idle, p.conns
    );
    println!();
    println!("load average before: {}", load_average());
    if let Some(limit) = server.open_files_limit() {
        println!("server open-file limit: {limit}");
    }
    let msg = Arc::new(Message::typical());
    let addr = server.addr;

    // The mail connections first, warmed, so the memory growth measured next is the idle
    // connections' alone.
    let mut active = load::open_many(addr, p.conns, 64, true).await?;
    for client in &mut active {
        load::message(client, &msg).await?;
    }
    let before = server.memory()?;

    let opening = Instant::now();
    let mut idle = load::open_many(addr, p.idle, 64, false).await?;
    let opened_in = opening.elapsed();
    let held = server.memory()?;
    let per_idle_rss = held.rss_kib.saturating_sub(before.rss_kib) as f64 / p.idle as f64;
    let per_idle_heap =
        held.heap.live_bytes.saturating_sub(before.heap.live_bytes) as f64 / 1024.0 / p.idle as f64;
    println!(
        "idle connections opened and negotiated: {} in {:.2} s ({:.0}/s)",
        idle.len(),
        opened_in.as_secs_f64(),
        rate(idle.len() as u64, opened_in)
    );
    println!(
        "server RSS: {} before, {} with them held: {per_idle_rss:.1} KiB per idle connection \
         (live heap {per_idle_heap:.1} KiB per idle connection)",
        kib(before.rss_kib),
        kib(held.rss_kib)
    );

    // Mail on the active connections while the idle ones are held.
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let bound = Bound {
        messages: p.idle_messages,
        deadline: started + p.max_time,
    };
    let cpu_before = server.cpu_secs();
    let ran = load::run(active, msg.clone(), bound, tally.clone(), None).await;
    let wall = started.elapsed();
    let cpu = server.cpu_secs() - cpu_before;
    let during = server.memory()?;
    println!(
        "mail while they are held: {} messages on {} connections in {:.1} s ({:.0} msgs/s, \
         server CPU {:.0} µs/msg), errors {}{}",
        tally.served(),
        p.conns,
        wall.as_secs_f64(),
        rate(tally.served(), wall),
        cpu * 1e6 / tally.served().max(1) as f64,
        tally.errors(),
        tally.first_error()
    );
    println!(
        "server RSS after that mail: {} (peak {})",
        kib(during.rss_kib),
        kib(during.hwm_kib)
    );

    // Every held connection still works: CONNECT, HELO and one message on each.
    let check = Arc::new(Tally::default());
    let checking = Instant::now();
    every_held_connection_sends(&mut idle, &msg, &check, p.max_time).await;
    println!(
        "then one message on each held connection: {} of {} served in {:.1} s, errors {}{}",
        check.served(),
        idle.len(),
        checking.elapsed().as_secs_f64(),
        check.errors(),
        check.first_error()
    );
    let quit_failures = load::quit_all(ran.clients, 64).await + load::quit_all(idle, 64).await;
    println!("QUIT failures: {quit_failures}");
    println!("load average after: {}", load_average());

    let errors = tally.errors() + check.errors() + quit_failures;
    let complete = tally.served() == p.idle_messages && check.served() == p.idle as u64;
    Ok(Verdict { errors, complete })
}

/// CONNECT, HELO and one message on every connection, 64 connections at a time.
async fn every_held_connection_sends(
    clients: &mut [load::Conn],
    msg: &Message,
    tally: &Tally,
    max_time: Duration,
) {
    let deadline = Instant::now() + max_time;
    let mut clients = clients.iter_mut();
    let mut pending = FuturesUnordered::new();
    loop {
        while pending.len() < 64 && Instant::now() < deadline {
            let Some(client) = clients.next() else { break };
            pending.push(async move {
                load::greet(client).await?;
                load::message(client, msg).await
            });
        }
        match pending.next().await {
            Some(Ok(())) => {
                tally
                    .served
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Some(Err(error)) => tally.record(&error),
            None => return,
        }
    }
}
