//! Logs every event and macro of every message, and accepts it: a window on what an MTA
//! sends.
//!
//! Run: `RUST_LOG=info cargo run --example inspect [SOCKET]` (default `inet:7357@127.0.0.1`).

use async_milter::proto::{Events, MacroStage};
use async_milter::server::{Server, ServerConfig, termination_signal};
use async_milter::session::FnFilter;
use async_milter::{Error, Needs, Session, Verdict};
use log::info;

fn log_macros(session: &Session, stage: MacroStage) {
    for (name, value) in session.macros_of(stage) {
        info!(
            "[{}] macro {stage:?} {}={}",
            session.connection_id(),
            name.escape_ascii(),
            value.escape_ascii()
        );
    }
}

async fn inspect(session: &mut Session) -> Result<Verdict, Error> {
    let id = session.connection_id();
    if let Some(client) = session.client() {
        info!(
            "[{id}] client {} [{}]:{} ({:?})",
            client.hostname, client.address, client.port, client.family
        );
    }
    log_macros(session, MacroStage::Connect);
    if let Some(helo) = session.helo().await? {
        info!("[{id}] helo {helo}");
        log_macros(session, MacroStage::Helo);
    }
    let from = session.envelope_from().await?;
    info!("[{id}] mail from {} {:?}", from.address, from.args);
    log_macros(session, MacroStage::Mail);
    while let Some(rcpt) = session.next_recipient().await? {
        info!(
            "[{id}] rcpt to {} {:?}",
            rcpt.address(),
            rcpt.envelope().args
        );
        log_macros(session, MacroStage::Rcpt);
    }
    while let Some(header) = session.next_header().await? {
        info!("[{id}] header {}: {}", header.name, header.value);
    }
    log_macros(session, MacroStage::EndOfHeaders);
    let (mut chunks, mut bytes) = (0, 0);
    while let Some(chunk) = session.next_body_chunk().await? {
        chunks += 1;
        bytes += chunk.len();
    }
    info!("[{id}] body: {bytes} bytes in {chunks} chunks");
    session.end_of_message().await?;
    log_macros(session, MacroStage::EndOfMessage);
    info!(
        "[{id}] end of message, queue id {}",
        session.queue_id().unwrap_or("-")
    );
    Ok(Verdict::Accept)
}

fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let spec = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "inet:7357@127.0.0.1".to_owned());
    // Every event it awaits; it answers none of them before end of message and edits nothing.
    let needs = Needs::new().events(
        Events::CONNECT
            | Events::HELO
            | Events::MAIL
            | Events::RCPT
            | Events::HEADER
            | Events::EOH
            | Events::BODY,
    );
    async_std::task::block_on(async {
        let server = Server::bind_with(&spec, ServerConfig::default()).await?;
        server
            .serve_until(
                FnFilter::new(inspect).with_needs(needs),
                termination_signal(),
            )
            .await
    })
}
