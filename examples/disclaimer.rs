//! Appends a disclaimer to plain-text messages, rewriting the body chunk by chunk.
//!
//! Multipart and non-text messages pass untouched. The body is streamed into the
//! replacement as it arrives, so the filter never assembles it.
//!
//! Run: `cargo run --example disclaimer [SOCKET]` (default `inet:7357@127.0.0.1`).

use async_milter::proto::{Actions, Events};
use async_milter::server::{Server, ServerConfig, termination_signal};
use async_milter::session::FnFilter;
use async_milter::{Error, Needs, Session, Verdict};

const DISCLAIMER: &str = "-- \r\nThis message was checked by async-milter.\r\n";

fn is_plain_text(session: &Session) -> bool {
    match session.header("Content-Type") {
        None => true,
        Some(header) => header.value.to_str().is_ok_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("text/plain")
        }),
    }
}

async fn disclaimer(session: &mut Session) -> Result<Verdict, Error> {
    while session.next_header().await?.is_some() {}
    if !is_plain_text(session) {
        return Ok(Verdict::Continue);
    }
    let mut ends_with_newline = true;
    session.replace_body(b"")?;
    while let Some(chunk) = session.next_body_chunk().await? {
        ends_with_newline = chunk.ends_with(b"\n");
        session.append_body(&chunk)?;
    }
    if !ends_with_newline {
        session.append_body(b"\r\n")?;
    }
    session.append_body(DISCLAIMER)?;
    Ok(Verdict::Accept)
}

fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let spec = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "inet:7357@127.0.0.1".to_owned());
    // Headers (to tell plain text) and the body; nothing answered before end of message; the
    // body replaced.
    let needs = Needs::new()
        .events(Events::HEADER | Events::EOH | Events::BODY)
        .actions(Actions::CHANGE_BODY);
    async_std::task::block_on(async {
        let server = Server::bind_with(&spec, ServerConfig::default()).await?;
        server
            .serve_until(
                FnFilter::new(disclaimer).with_needs(needs),
                termination_signal(),
            )
            .await
    })
}
