//! A fault-injection target: a filter that misbehaves on demand, served with limits short
//! enough to be reached in a test. `tests/hostile.rs` runs it as a separate process, so that
//! the server's memory can be read from `/proc`, and sends it hostile input over TCP.
//!
//! The MTA side picks the fault by name. A name `KIND-at-STAGE` makes the filter fail at that
//! stage, with KIND one of
//!
//! - `error`: the filter returns an error;
//! - `panic`: it panics with a message; `panic-number` panics with a value that is no string;
//! - `hang`: it awaits something that never happens (the filter never returns);
//! - `block`: it blocks its thread with synchronous work (a sleep) for `--block-ms`, then
//!   goes on as usual;
//!
//! and STAGE one of `connect`, `helo` (named by the CONNECT host name or the HELO name), and
//! `mail`, `rcpt` (after the first recipient), `header` (after the first header), `eoh`,
//! `body` (after the first chunk), `eom` (named by the envelope sender, `<KIND-at-STAGE@x>`).
//! Connect and HELO faults act only in the call that begins at CONNECT.
//!
//! Other senders:
//!
//! - `<panic-on-drop@x>`: the filter holds a value that panics when dropped, which happens
//!   only if the message is cut short (ABORT, end of stream); a message that ends normally
//!   is accepted.
//! - `<edits-10000@x>`: queues 10,000 `X-Edit` headers at end of message.
//! - `<edits-beyond-limit@x>`: queues headers until the library refuses one, then returns
//!   that error.
//! - `<oversize-header-edit@x>`: tries to add a header whose packet would exceed the
//!   protocol's 65,535-byte payload limit, and goes on as usual when the library refuses it
//!   at the call; fails the message (error) if the library takes it.
//! - `<replace-body-64m@x>`: replaces the body with 64 MiB of text.
//!
//! Every message that gets through adds `X-Fault-Target: ok` and is accepted.
//!
//! Run: `cargo run --example fault_target [SOCKET] [--negotiation-timeout-ms N]
//! [--read-timeout-ms N] [--write-timeout-ms N] [--progress-interval-ms N] [--max-headers N]
//! [--max-header-bytes N] [--block-ms N]` (default socket `inet:7358@127.0.0.1`; each flag
//! sets the `ConnectionConfig` field of that name, unset ones keep the library's defaults;
//! `--block-ms` is how long a `block` fault blocks, 300 ms by default).

use std::fmt;
use std::time::Duration;

use async_milter::connection::ConnectionConfig;
use async_milter::server::{Server, ServerConfig, termination_signal};
use async_milter::session::Phase;
use async_milter::{Error, Events, Filter, Needs, Session, Verdict};

/// How the filter misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Error,
    Panic,
    PanicNumber,
    Hang,
    Block,
}

/// Where in the message it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Connect,
    Helo,
    Mail,
    Rcpt,
    Header,
    Eoh,
    Body,
    Eom,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connect => "connect",
            Self::Helo => "helo",
            Self::Mail => "mail",
            Self::Rcpt => "rcpt",
            Self::Header => "header",
            Self::Eoh => "eoh",
            Self::Body => "body",
            Self::Eom => "eom",
        })
    }
}

const STAGES: [Stage; 8] = [
    Stage::Connect,
    Stage::Helo,
    Stage::Mail,
    Stage::Rcpt,
    Stage::Header,
    Stage::Eoh,
    Stage::Body,
    Stage::Eom,
];

/// A `KIND-at-STAGE` fault.
#[derive(Clone, Copy, Debug)]
struct Fault {
    kind: Kind,
    stage: Stage,
}

impl Fault {
    /// Reads `KIND-at-STAGE`; anything else is no fault.
    fn parse(name: &str) -> Option<Self> {
        let (kind, stage) = name.split_once("-at-")?;
        let kind = match kind {
            "error" => Kind::Error,
            "panic" => Kind::Panic,
            "panic-number" => Kind::PanicNumber,
            "hang" => Kind::Hang,
            "block" => Kind::Block,
            _ => return None,
        };
        let stage = *STAGES.iter().find(|s| s.to_string() == stage)?;
        Some(Self { kind, stage })
    }
}

/// The filter, with how long a `block` fault blocks.
struct FaultTarget {
    block: Duration,
}

impl FaultTarget {
    /// Misbehaves if `fault` is for `stage`.
    async fn trip(&self, fault: Option<Fault>, stage: Stage) -> Result<(), Error> {
        let Some(fault) = fault.filter(|f| f.stage == stage) else {
            return Ok(());
        };
        match fault.kind {
            Kind::Error => Err(Error::filter(format!("fault injected at {stage}"))),
            Kind::Panic => panic!("fault injected at {stage}"),
            Kind::PanicNumber => std::panic::panic_any(42_u32),
            Kind::Hang => std::future::pending().await,
            Kind::Block => {
                // Synchronous work on the runtime's thread, as a careless filter does.
                std::thread::sleep(self.block);
                Ok(())
            }
        }
    }

    async fn run(&self, s: &mut Session) -> Result<Verdict, Error> {
        // Connect and HELO faults belong to the call that begins at CONNECT.
        if s.phase() <= Phase::Connect {
            let host = s.client().and_then(|c| c.hostname.to_str().ok());
            self.trip(host.and_then(Fault::parse), Stage::Connect)
                .await?;
            let helo = s.helo().await?;
            let helo = helo.as_ref().and_then(|h| h.to_str().ok());
            self.trip(helo.and_then(Fault::parse), Stage::Helo).await?;
        }
        let from = s.envelope_from().await?;
        let name = from
            .bare()
            .and_then(|a| a.split_once('@'))
            .map_or("", |(local, _)| local)
            .to_owned();
        let fault = Fault::parse(&name);
        let drop_bomb = if name == "panic-on-drop" {
            Some(PanicOnDrop)
        } else {
            None
        };
        self.trip(fault, Stage::Mail).await?;

        let mut first = true;
        while s.next_recipient().await?.is_some() {
            if std::mem::take(&mut first) {
                self.trip(fault, Stage::Rcpt).await?;
            }
        }
        let mut first = true;
        while s.next_header().await?.is_some() {
            if std::mem::take(&mut first) {
                self.trip(fault, Stage::Header).await?;
            }
        }
        self.trip(fault, Stage::Eoh).await?;
        let mut first = true;
        while s.next_body_chunk().await?.is_some() {
            if std::mem::take(&mut first) {
                self.trip(fault, Stage::Body).await?;
            }
        }
        s.end_of_message().await?;
        self.trip(fault, Stage::Eom).await?;

        match name.as_str() {
            "edits-10000" => {
                for i in 0..10_000 {
                    s.add_header("X-Edit", i.to_string())?;
                }
            }
            "edits-beyond-limit" => loop {
                s.add_header("X-Edit", "more")?;
            },
            "oversize-header-edit" => oversize_header_edit(s)?,
            "replace-body-64m" => {
                let line = [&[b'x'; 78][..], b"\r\n"].concat();
                s.replace_body(line.repeat(64 * 1024 * 1024 / line.len()))?;
            }
            _ => {}
        }
        s.add_header("X-Fault-Target", "ok")?;
        // The message ended normally: nothing to panic about.
        std::mem::forget(drop_bomb);
        Ok(Verdict::Accept)
    }
}

/// Tries a header whose ADDHEADER packet would exceed the 65,535-byte payload limit: the
/// library must refuse it at the call.
fn oversize_header_edit(s: &mut Session) -> Result<(), Error> {
    match s.add_header("X-Oversize", "v".repeat(70_000)) {
        Err(_) => Ok(()),
        Ok(()) => Err(Error::filter("a header edit over 64 KiB was queued")),
    }
}

/// Panics when dropped: a filter whose cleanup fails.
struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("fault injected: panic while the filter is dropped");
    }
}

impl Filter for FaultTarget {
    fn needs(&self) -> Needs {
        Needs::everything().events(Events::ALL)
    }

    async fn filter(&self, session: &mut Session) -> Result<Verdict, Error> {
        self.run(session).await
    }
}

const USAGE: &str = "usage: fault_target [SOCKET] [--negotiation-timeout-ms N] \
                     [--read-timeout-ms N] [--write-timeout-ms N] [--progress-interval-ms N] \
                     [--max-headers N] [--max-header-bytes N] [--block-ms N]";

/// Exits with the usage line.
fn usage() -> ! {
    eprintln!("{USAGE}");
    std::process::exit(2);
}

fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut spec = "inet:7358@127.0.0.1".to_owned();
    let mut connection = ConnectionConfig::default();
    let mut block = Duration::from_millis(300);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if !arg.starts_with("--") {
            spec = arg;
            continue;
        }
        let value: u64 = args
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| usage());
        let millis = Duration::from_millis(value);
        match arg.as_str() {
            "--read-timeout-ms" => connection.read_timeout = Some(millis),
            "--negotiation-timeout-ms" => connection.negotiation_timeout = Some(millis),
            "--write-timeout-ms" => connection.write_timeout = Some(millis),
            "--progress-interval-ms" => connection.progress_interval = Some(millis),
            "--max-headers" => {
                connection.max_headers = usize::try_from(value).unwrap_or_else(|_| usage());
            }
            "--max-header-bytes" => {
                connection.max_header_bytes = usize::try_from(value).unwrap_or_else(|_| usage());
            }
            "--block-ms" => block = millis,
            _ => usage(),
        }
    }
    let config = ServerConfig {
        connection,
        ..ServerConfig::default()
    };
    async_std::task::block_on(async {
        let server = Server::bind_with(&spec, config).await?;
        server
            .serve_until(FaultTarget { block }, termination_signal())
            .await
    })
}
