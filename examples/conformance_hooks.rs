//! `examples/conformance.rs` written with hooks: the same behaviour, checked by the same
//! tests and end-to-end suite.
//!
//! - `MAIL FROM:<reject@example.com>`: rejected with `550 5.7.1 go away`.
//! - `RCPT TO:<tempfail@example.com>`: that recipient alone gets a 4xx.
//! - At end of message: adds `X-Conformance: seen`, prefixes the subject with
//!   `[conformance] `, adds `<added@example.com>`, removes `<removeme@example.com>`, replaces
//!   the body by its ASCII upper case (chunk by chunk) and changes the sender to
//!   `<changed-sender@example.com>`; a subject containing "quarantine" also quarantines.
//! - `X-Conformance-Run` headers are never touched.
//!
//! Negotiated from the hooks below: CONNECT and HELO sent but not answered (hooks returning
//! nothing: miltertest insists on sending them), MAIL and RCPT answered, headers, end of
//! headers and body sent but not answered, DATA and unknown commands not sent.
//!
//! Run: `cargo run --example conformance_hooks [SOCKET]` (default `inet:7357@127.0.0.1`).

use async_milter::hooks::{Context, Hooks, Status};
use async_milter::proto::{Actions, ReplyCode};
use async_milter::server::{Server, ServerConfig, termination_signal};
use async_milter::session::{Address, Client, HeaderField};
use async_milter::{Bytes, Error, Text};

/// One per connection; the message fields start afresh at MAIL.
#[derive(Default)]
struct Conformance {
    subject: Option<HeaderField>,
    saw_body: bool,
}

// Hooks are async fns by contract; most of these have nothing to await.
#[allow(clippy::unused_async)]
impl Conformance {
    async fn connect(&mut self, _ctx: &mut Context<'_>, _client: Client) {}

    async fn helo(&mut self, _ctx: &mut Context<'_>, _name: Text) {}

    async fn mail(&mut self, ctx: &mut Context<'_>, from: Address) -> Result<Status, Error> {
        self.subject = None;
        self.saw_body = false;
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

    async fn header(&mut self, _ctx: &mut Context<'_>, field: HeaderField) {
        if self.subject.is_none() && field.name.eq_ignore_ascii_case("Subject") {
            self.subject = Some(field);
        }
    }

    async fn eoh(&mut self, _ctx: &mut Context<'_>) {}

    async fn body(&mut self, ctx: &mut Context<'_>, chunk: Bytes) -> Result<(), Error> {
        if !self.saw_body {
            self.saw_body = true;
            ctx.replace_body(b"")?;
        }
        ctx.append_body(chunk.to_ascii_uppercase())
    }

    async fn eom(&mut self, ctx: &mut Context<'_>) -> Result<Status, Error> {
        if !self.saw_body {
            ctx.replace_body(b"")?;
        }
        ctx.add_header("X-Conformance", "seen")?;
        if let Some(subject) = &self.subject {
            let mut tagged = b"[conformance] ".to_vec();
            tagged.extend_from_slice(subject.value.as_bytes());
            ctx.change_header(subject.handle, tagged)?;
            if subject
                .value
                .as_bytes()
                .to_ascii_lowercase()
                .windows(10)
                .any(|w| w == b"quarantine")
            {
                ctx.quarantine("conformance quarantine")?;
            }
        }
        ctx.add_recipient("<added@example.com>", None)?;
        ctx.remove_recipient("<removeme@example.com>")?;
        ctx.change_sender("<changed-sender@example.com>", None)?;
        Ok(Status::Accept)
    }
}

fn hooks() -> Hooks<Conformance> {
    Hooks::new(Conformance::default)
        .on_connect(Conformance::connect)
        .on_helo(Conformance::helo)
        .on_mail(Conformance::mail)
        .on_rcpt(Conformance::rcpt)
        .on_header(Conformance::header)
        .on_eoh(Conformance::eoh)
        .on_body(Conformance::body)
        .on_eom(Conformance::eom)
        // Each edit required, as in conformance.rs: an MTA that cannot take one is refused
        // at negotiation rather than failing every message.
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

fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let spec = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "inet:7357@127.0.0.1".to_owned());
    async_std::task::block_on(async {
        let server = Server::bind_with(&spec, ServerConfig::default()).await?;
        server.serve_until(hooks(), termination_signal()).await
    })
}
