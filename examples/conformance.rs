//! The filter the end-to-end suite checks on real Postfix and Sendmail.
//!
//! - `MAIL FROM:<reject@example.com>`: rejected with `550 5.7.1 go away`.
//! - `RCPT TO:<tempfail@example.com>`: that recipient alone gets a 4xx.
//! - At end of message: adds `X-Conformance: seen`, prefixes the subject with
//!   `[conformance] `, adds `<added@example.com>`, removes `<removeme@example.com>`, replaces
//!   the body by its ASCII upper case (chunk by chunk) and changes the sender to
//!   `<changed-sender@example.com>`; a subject containing "quarantine" also quarantines.
//! - `X-Conformance-Run` headers are never touched.
//!
//! Run: `cargo run --example conformance [SOCKET] [--runtime async-std|tokio|smol]`
//! (default `inet:7357@127.0.0.1` on async-std).
//!
//! `--runtime tokio` serves on a multi-thread tokio runtime (what `#[tokio::main]` builds),
//! `--runtime smol` on smol's global executor; the filter and the `Server` are the same.
//! The end-to-end suite runs the conformance checks on async-std and again on tokio.

use async_milter::proto::{Actions, Events, ReplyCode};
use async_milter::rt::{AsyncStd, Runtime, Smol, Tokio};
use async_milter::server::{Server, ServerConfig, termination_signal};
use async_milter::session::FnFilter;
use async_milter::{Error, Needs, Session, Verdict};

async fn conformance(session: &mut Session) -> Result<Verdict, Error> {
    let from = session.envelope_from().await?;
    if from.address.eq_ignore_ascii_case("<reject@example.com>") {
        return Ok(Verdict::Reply(ReplyCode::permanent(
            550, "5.7.1", "go away",
        )?));
    }
    while let Some(rcpt) = session.next_recipient().await? {
        if rcpt
            .address()
            .eq_ignore_ascii_case("<tempfail@example.com>")
        {
            rcpt.tempfail()?;
        }
    }
    let mut subject = None;
    while let Some(header) = session.next_header().await? {
        if subject.is_none() && header.name.eq_ignore_ascii_case("Subject") {
            subject = Some(header);
        }
    }
    session.replace_body(b"")?;
    while let Some(chunk) = session.next_body_chunk().await? {
        session.append_body(chunk.to_ascii_uppercase())?;
    }

    session.add_header("X-Conformance", "seen")?;
    if let Some(subject) = subject {
        let mut tagged = b"[conformance] ".to_vec();
        tagged.extend_from_slice(subject.value.as_bytes());
        session.change_header(subject.handle, tagged)?;
        if subject
            .value
            .as_bytes()
            .to_ascii_lowercase()
            .windows(10)
            .any(|w| w == b"quarantine")
        {
            session.quarantine("conformance quarantine")?;
        }
    }
    session.add_recipient("<added@example.com>", None)?;
    session.remove_recipient("<removeme@example.com>")?;
    session.change_sender("<changed-sender@example.com>", None)?;
    Ok(Verdict::Accept)
}

/// Refuses at MAIL and RCPT, reads headers and body, makes every kind of edit (each required:
/// an MTA that cannot take one is refused at negotiation rather than failing every message).
/// CONNECT and HELO are not awaited but still asked for: miltertest
/// (`scripts/e2e.d/conformance.lua`) sends them and refuses to when they are negotiated away.
fn needs() -> Needs {
    Needs::new()
        .events(
            Events::CONNECT
                | Events::HELO
                | Events::MAIL
                | Events::RCPT
                | Events::HEADER
                | Events::EOH
                | Events::BODY,
        )
        .answers(Events::MAIL | Events::RCPT)
        .actions(
            Actions::ADD_HEADERS
                | Actions::CHANGE_HEADERS
                | Actions::CHANGE_BODY
                | Actions::ADD_RCPT
                | Actions::DELETE_RCPT
                | Actions::QUARANTINE
                | Actions::CHANGE_FROM,
        )
}

const USAGE: &str = "usage: conformance [SOCKET] [--runtime async-std|tokio|smol]";

fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut spec = "inet:7357@127.0.0.1".to_owned();
    let mut runtime = "async-std".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--runtime" {
            runtime = args.next().unwrap_or_default();
        } else if let Some(name) = arg.strip_prefix("--runtime=") {
            name.clone_into(&mut runtime);
        } else if arg.starts_with("--") {
            eprintln!("{USAGE}");
            std::process::exit(2);
        } else {
            spec = arg;
        }
    }
    match runtime.as_str() {
        "async-std" => async_std::task::block_on(serve_on(AsyncStd, &spec)),
        "tokio" => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(serve_on(Tokio, &spec)),
        "smol" => smol::block_on(serve_on(Smol, &spec)),
        _ => {
            eprintln!("unknown runtime {runtime:?}; {USAGE}");
            std::process::exit(2);
        }
    }
}

/// Binds `spec` on `runtime` and serves the conformance filter until SIGINT/SIGTERM.
async fn serve_on<R: Runtime>(runtime: R, spec: &str) -> std::io::Result<()> {
    let server = Server::bind_on(runtime, spec, ServerConfig::default()).await?;
    server
        .serve_until(
            FnFilter::new(conformance).with_needs(needs()),
            termination_signal(),
        )
        .await
}
