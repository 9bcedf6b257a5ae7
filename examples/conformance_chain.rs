//! `examples/conformance.rs` split across three filters served as one [`FilterList`]: the
//! same behaviour, checked by the same tests and end-to-end suite.
//!
//! - `policy` (hooks): `MAIL FROM:<reject@example.com>` is rejected with
//!   `550 5.7.1 go away`; `RCPT TO:<tempfail@example.com>`: that recipient alone gets a 4xx.
//! - `headers` (a session filter): at end of message adds `X-Conformance: seen` and prefixes
//!   the subject with `[conformance] `; `X-Conformance-Run` headers are never touched.
//! - `content` (a session filter): replaces the body by its ASCII upper case (chunk by
//!   chunk), changes the sender to `<changed-sender@example.com>`, adds
//!   `<added@example.com>`, removes `<removeme@example.com>`, and quarantines when the
//!   subject contains "quarantine".
//!
//! Each filter declares only what it uses, and the list asks the MTA for the union; the
//! result is the negotiation of `conformance` (CONNECT and HELO come from the policy, see
//! `policy()`). Every filter sees the message as the MTA sent it: `content` reads the
//! original subject, whatever `headers` does to it. The answers merge by severity (the
//! policy's refusals win), the edits of `headers` and `content` are all sent, and the message
//! is accepted outright only when all three accept.
//!
//! Run: `cargo run --example conformance_chain [SOCKET]` (default `inet:7357@127.0.0.1`).

use async_milter::hooks::{Context, Hooks, Status};
use async_milter::proto::{Actions, Events, ReplyCode};
use async_milter::server::{Server, ServerConfig, termination_signal};
use async_milter::session::{Address, Client, FnFilter};
use async_milter::{Error, FilterList, Needs, Session, Text, Verdict};

// ===== policy: MAIL and RCPT, as hooks =====

/// The policy keeps nothing between events.
#[derive(Default)]
struct Policy;

// Hooks are async fns by contract; none of these has anything to await.
#[allow(clippy::unused_async)]
impl Policy {
    async fn connect(&mut self, _ctx: &mut Context<'_>, _client: Client) {}

    async fn helo(&mut self, _ctx: &mut Context<'_>, _name: Text) {}

    async fn mail(&mut self, ctx: &mut Context<'_>, from: Address) -> Result<Status, Error> {
        if from.address.eq_ignore_ascii_case("<reject@example.com>") {
            ctx.set_reply(ReplyCode::permanent(550, "5.7.1", "go away")?);
            return Ok(Status::Reject);
        }
        Ok(Status::Continue)
    }

    async fn rcpt(&mut self, _ctx: &mut Context<'_>, to: Address) -> Status {
        if to.address.eq_ignore_ascii_case("<tempfail@example.com>") {
            Status::Tempfail
        } else {
            Status::Continue
        }
    }

    /// Nothing against the message: accept. Without this hook the policy would end with
    /// continue, and a list accepts the message outright only when every filter accepts
    /// (continue at end of message delivers it too, but `conformance` answers accept).
    async fn eom(&mut self, _ctx: &mut Context<'_>) -> Status {
        Status::Accept
    }
}

/// MAIL and RCPT answered; no edits. The connect and HELO hooks do nothing and return
/// nothing (negotiated as sent but not answered): `conformance` asks for both because
/// miltertest (`scripts/e2e.d/conformance.lua`) sends them and refuses to when they are
/// negotiated away, and the chain asks for what `conformance` asks for.
fn policy() -> Hooks<Policy> {
    Hooks::new(Policy::default)
        .on_connect(Policy::connect)
        .on_helo(Policy::helo)
        .on_mail(Policy::mail)
        .on_rcpt(Policy::rcpt)
        .on_eom(Policy::eom)
        .actions(Actions::EMPTY)
}

// ===== headers: X-Conformance and the subject prefix =====

async fn headers(session: &mut Session) -> Result<Verdict, Error> {
    let mut subject = None;
    while let Some(header) = session.next_header().await? {
        if subject.is_none() && header.name.eq_ignore_ascii_case("Subject") {
            subject = Some(header);
        }
    }
    session.end_of_message().await?;
    session.add_header("X-Conformance", "seen")?;
    if let Some(subject) = subject {
        let mut tagged = b"[conformance] ".to_vec();
        tagged.extend_from_slice(subject.value.as_bytes());
        session.change_header(subject.handle, tagged)?;
    }
    Ok(Verdict::Accept)
}

/// The headers up to their end; a header added and one changed.
fn headers_needs() -> Needs {
    Needs::new()
        .events(Events::HEADER | Events::EOH)
        .actions(Actions::ADD_HEADERS | Actions::CHANGE_HEADERS)
}

// ===== content: body, envelope, quarantine =====

async fn content(session: &mut Session) -> Result<Verdict, Error> {
    session.replace_body(b"")?;
    while let Some(chunk) = session.next_body_chunk().await? {
        session.append_body(chunk.to_ascii_uppercase())?;
    }
    // The subject as the MTA sent it (the headers arrived before the body).
    let quarantine = session.header("Subject").is_some_and(|subject| {
        subject
            .value
            .as_bytes()
            .to_ascii_lowercase()
            .windows(10)
            .any(|w| w == b"quarantine")
    });
    if quarantine {
        session.quarantine("conformance quarantine")?;
    }
    session.add_recipient("<added@example.com>", None)?;
    session.remove_recipient("<removeme@example.com>")?;
    session.change_sender("<changed-sender@example.com>", None)?;
    Ok(Verdict::Accept)
}

/// The headers (for the subject) and the body; the body, recipients and sender changed, and
/// a quarantine.
fn content_needs() -> Needs {
    Needs::new().events(Events::HEADER | Events::BODY).actions(
        Actions::CHANGE_BODY
            | Actions::ADD_RCPT
            | Actions::DELETE_RCPT
            | Actions::QUARANTINE
            | Actions::CHANGE_FROM,
    )
}

/// The three, in this order: the policy first (its refusals end the message before the
/// others' edits matter), then the header edits, then the content edits.
fn chain() -> FilterList {
    FilterList::new()
        .with("policy", policy())
        .with(
            "headers",
            FnFilter::new(headers).with_needs(headers_needs()),
        )
        .with(
            "content",
            FnFilter::new(content).with_needs(content_needs()),
        )
}

const USAGE: &str = "usage: conformance_chain [SOCKET]";

fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut spec = "inet:7357@127.0.0.1".to_owned();
    for arg in std::env::args().skip(1) {
        if arg.starts_with("--") {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
        spec = arg;
    }
    async_std::task::block_on(async {
        let server = Server::bind_with(&spec, ServerConfig::default()).await?;
        server.serve_until(chain(), termination_signal()).await
    })
}
