//! The load generator: milter connections as Postfix opens them (`async_milter::testing`),
//! one checked message, and many connections sending messages at once with a bound on count
//! and time and a tally of what was served and what failed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_milter::proto::Family;
use async_milter::server::SocketSpec;
use async_milter::testing::{self, MilterClient, MilterStream, Modification, Profile, Reply};
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use crate::Result;

pub(crate) type Conn = MilterClient<MilterStream>;

/// The Postfix profile (a MACRO packet before every command, ABORT after every message),
/// patient enough that a slow answer under load is not taken for a dead filter.
fn profile() -> Profile {
    Profile::postfix().with_timeout(Duration::from_secs(60))
}

/// One message as the load generator sends it: 10 headers, a 2 KiB body in one chunk.
pub(crate) struct Message {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Message {
    pub(crate) fn typical() -> Self {
        let headers = crate::message::sample_headers("soak 1.0");
        let body = crate::message::sample_body(2048);
        Self { headers, body }
    }
}

/// Connects and negotiates: an idle connection as an MTA keeps it.
pub(crate) async fn open(addr: SocketAddr) -> Result<Conn> {
    let mut client = testing::connect(&SocketSpec::Inet(addr).to_string(), profile()).await?;
    client.negotiate().await?;
    Ok(client)
}

/// CONNECT and HELO on a negotiated connection.
pub(crate) async fn greet(client: &mut Conn) -> Result<()> {
    expect_continue(
        client
            .connect("client.example.com", Family::Inet, 40_000, "192.0.2.1")
            .await?,
    )?;
    expect_continue(client.helo("client.example.com").await?)
}

/// Connects, negotiates, sends CONNECT and HELO: ready for messages.
pub(crate) async fn open_session(addr: SocketAddr) -> Result<Conn> {
    let mut client = open(addr).await?;
    greet(&mut client).await?;
    Ok(client)
}

/// Opens `n` connections, `parallel` at a time, each with `open` or `open_session`.
pub(crate) async fn open_many(
    addr: SocketAddr,
    n: usize,
    parallel: usize,
    sessions: bool,
) -> Result<Vec<Conn>> {
    let mut pending = FuturesUnordered::new();
    let mut clients = Vec::with_capacity(n);
    let mut started = 0;
    while started < n || !pending.is_empty() {
        while started < n && pending.len() < parallel {
            pending.push(async move {
                if sessions {
                    open_session(addr).await
                } else {
                    open(addr).await
                }
            });
            started += 1;
        }
        if let Some(client) = pending.next().await {
            clients.push(client?);
        }
    }
    Ok(clients)
}

fn expect_continue(reply: Reply) -> Result<()> {
    match reply {
        Reply::Continue | Reply::NoReply => Ok(()),
        other => Err(format!("unexpected reply {other:?}").into()),
    }
}

/// One transaction, checked: every answer continue, then `X-Bench: 1` and ACCEPT.
pub(crate) async fn message(client: &mut Conn, msg: &Message) -> Result<()> {
    expect_continue(client.mail("<alice@example.com>", &[]).await?)?;
    expect_continue(client.rcpt("<bob@example.net>", &[]).await?)?;
    expect_continue(client.data().await?)?;
    for (name, value) in &msg.headers {
        expect_continue(client.header(name, value).await?)?;
    }
    expect_continue(client.end_of_headers().await?)?;
    expect_continue(client.body(&msg.body).await?)?;
    let eom = client.end_of_message().await?;
    let tagged = matches!(
        eom.modifications.as_slice(),
        [Modification::AddHeader { name, value }] if name == "X-Bench" && value.trim() == "1"
    );
    if eom.reply != Reply::Accept || !tagged {
        return Err(format!(
            "end of message: {:?} with {:?}",
            eom.reply, eom.modifications
        )
        .into());
    }
    Ok(())
}

/// How much a run may do: at most `messages` in all, none started after `deadline`.
#[derive(Clone, Copy)]
pub(crate) struct Bound {
    pub(crate) messages: u64,
    pub(crate) deadline: Instant,
}

/// What a run served and what failed, shared by its connections.
#[derive(Default)]
pub(crate) struct Tally {
    claimed: AtomicU64,
    pub(crate) served: AtomicU64,
    pub(crate) errors: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Tally {
    pub(crate) fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    pub(crate) fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// ` (first: ...)` naming the first failure, or nothing.
    pub(crate) fn first_error(&self) -> String {
        let first = self.first_error.lock().ok().and_then(|f| f.clone());
        first.map_or_else(String::new, |e| format!(" (first: {e})"))
    }

    /// Counts a failed message and keeps the first failure's text.
    pub(crate) fn record(&self, error: &crate::BoxError) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = self.first_error.lock() {
            first.get_or_insert_with(|| error.to_string());
        }
    }
}

/// What [`run`] hands back: the connections still usable, and each message's latency.
pub(crate) struct Ran {
    pub(crate) clients: Vec<Conn>,
    pub(crate) latencies: Vec<Duration>,
}

/// Sends messages on every connection at once, each connection one after another on its own
/// task, until `bound` is reached. A failed message is counted in `tally` and ends its
/// connection. After every `every` messages served (if given), the count goes to `progress`.
pub(crate) async fn run(
    clients: Vec<Conn>,
    msg: Arc<Message>,
    bound: Bound,
    tally: Arc<Tally>,
    progress: Option<(u64, Sender<u64>)>,
) -> Ran {
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            let (msg, tally, progress) = (msg.clone(), tally.clone(), progress.clone());
            async_std::task::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    if Instant::now() >= bound.deadline
                        || tally.claimed.fetch_add(1, Ordering::Relaxed) >= bound.messages
                    {
                        return (Some(client), latencies);
                    }
                    let started = Instant::now();
                    if let Err(error) = message(&mut client, &msg).await {
                        tally.record(&error);
                        return (None, latencies);
                    }
                    latencies.push(started.elapsed());
                    let served = tally.served.fetch_add(1, Ordering::Relaxed) + 1;
                    if let Some((every, tx)) = &progress {
                        if served % every == 0 {
                            let _ = tx.send(served);
                        }
                    }
                }
            })
        })
        .collect();
    let mut ran = Ran {
        clients: Vec::new(),
        latencies: Vec::new(),
    };
    for task in tasks {
        let (client, latencies) = task.await;
        ran.clients.extend(client);
        ran.latencies.extend(latencies);
    }
    ran
}

/// Ends every connection with QUIT, `parallel` at a time; returns how many failed to.
pub(crate) async fn quit_all(clients: Vec<Conn>, parallel: usize) -> u64 {
    let mut clients = clients.into_iter();
    let mut pending = FuturesUnordered::new();
    let mut failed = 0;
    loop {
        while pending.len() < parallel {
            let Some(mut client) = clients.next() else {
                break;
            };
            pending.push(async move { client.quit().await });
        }
        match pending.next().await {
            Some(Ok(())) => {}
            Some(Err(_)) => failed += 1,
            None => return failed,
        }
    }
}

/// The `p`-th quantile of sorted latencies, in milliseconds.
pub(crate) fn quantile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1e3
}
