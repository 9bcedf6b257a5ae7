//! Three policies in one MTA slot: a [`FilterList`] of filters written each in its own style.
//!
//! - `recipients` (hooks): refuses each recipient in a blocked domain (`blocked.example`,
//!   and its subdomains) with `550 5.7.1 recipient domain blocked`; the message goes on to
//!   the others. Counts what it refused per connection and logs it when the connection
//!   closes.
//! - `tagger` (a session filter, a `Filter` struct): tags the subject of mail from outside
//!   the local networks with `[EXTERNAL]`, as `examples/subject_tagger.rs` does.
//! - `checksum` (a session filter, an `async fn`): adds `X-Body-Checksum: fnv1a-64 HEX`,
//!   an FNV-1a 64-bit checksum of the body (in its SMTP form, CRLF line ends), computed
//!   chunk by chunk as the body streams by; the body itself passes untouched. A checksum is
//!   not a signature (anyone can recompute it): it stands where a real signer, with a key,
//!   would go.
//!
//! Each filter declares only what it uses; the MTA is asked for the union (CONNECT, RCPT
//! answered, headers and body sent without waiting for a reply). Every filter sees the
//! message as the MTA sent it; the refusals of one land as they would alone, the header
//! edits of the other two are all sent at end of message.
//!
//! Run: `cargo run --example chain [SOCKET]` (default `inet:7357@127.0.0.1`).

use async_milter::hooks::{Context, Hooks, Status};
use async_milter::proto::{Actions, Events, ReplyCode};
use async_milter::server::{Server, ServerConfig, termination_signal};
use async_milter::session::{Address, FnFilter};
use async_milter::{Error, Filter, FilterList, Needs, Session, Verdict};
use log::info;

// ===== recipients: a per-recipient policy, as hooks =====

const BLOCKED_DOMAIN: &str = "blocked.example";

/// One per connection.
#[derive(Default)]
struct RecipientPolicy {
    refused: u32,
}

fn is_blocked(to: &Address) -> bool {
    let Some(domain) = to.bare().and_then(|a| a.rsplit_once('@')).map(|(_, d)| d) else {
        return false;
    };
    let domain = domain.to_ascii_lowercase();
    domain == BLOCKED_DOMAIN || domain.ends_with(&format!(".{BLOCKED_DOMAIN}"))
}

// Hooks are async fns by contract; this one has nothing to await.
#[allow(clippy::unused_async)]
impl RecipientPolicy {
    /// A reply code refuses this recipient only.
    async fn rcpt(&mut self, _ctx: &mut Context<'_>, to: Address) -> Result<Status, Error> {
        if is_blocked(&to) {
            self.refused += 1;
            return Ok(Status::Reply(ReplyCode::permanent(
                550,
                "5.7.1",
                "recipient domain blocked",
            )?));
        }
        Ok(Status::Continue)
    }

    fn close(&mut self) {
        if self.refused > 0 {
            info!(
                "recipients: {} recipient(s) in {BLOCKED_DOMAIN} refused on this connection",
                self.refused
            );
        }
    }
}

/// RCPT, answered; no edits.
fn recipient_policy() -> Hooks<RecipientPolicy> {
    Hooks::new(RecipientPolicy::default)
        .on_rcpt(RecipientPolicy::rcpt)
        .on_close(RecipientPolicy::close)
        .actions(Actions::EMPTY)
}

// ===== tagger: [EXTERNAL] in the subject, a Filter struct =====

struct SubjectTagger {
    tag: &'static str,
}

fn is_internal(session: &Session) -> bool {
    session
        .client()
        .and_then(async_milter::session::Client::ip)
        .is_some_and(|ip| match ip {
            std::net::IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
            std::net::IpAddr::V6(v6) => v6.is_loopback(),
        })
}

impl Filter for SubjectTagger {
    /// The client address and the headers; nothing answered; the subject changed, or added
    /// when missing.
    fn needs(&self) -> Needs {
        Needs::new()
            .events(Events::CONNECT | Events::HEADER | Events::EOH)
            .actions(Actions::CHANGE_HEADERS | Actions::ADD_HEADERS)
    }

    async fn filter(&self, session: &mut Session) -> Result<Verdict, Error> {
        if is_internal(session) {
            return Ok(Verdict::Accept);
        }
        let mut subject = None;
        while let Some(header) = session.next_header().await? {
            if subject.is_none() && header.name.eq_ignore_ascii_case("Subject") {
                subject = Some(header);
            }
        }
        session.end_of_message().await?;
        match subject {
            Some(subject) if !subject.value.as_bytes().starts_with(self.tag.as_bytes()) => {
                let mut value = format!("{} ", self.tag).into_bytes();
                value.extend_from_slice(subject.value.as_bytes());
                session.change_header(subject.handle, value)?;
            }
            Some(_) => {}
            None => session.add_header("Subject", self.tag)?,
        }
        Ok(Verdict::Accept)
    }
}

// ===== checksum: a header computed over the streaming body, an async fn =====

/// FNV-1a, 64 bits: a simple checksum, not a cryptographic hash.
#[derive(Clone, Copy)]
struct Fnv1a64(u64);

impl Fnv1a64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    fn new() -> Self {
        Self(Self::OFFSET_BASIS)
    }

    fn update(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(Self::PRIME);
        }
    }
}

async fn body_checksum(session: &mut Session) -> Result<Verdict, Error> {
    let mut checksum = Fnv1a64::new();
    while let Some(chunk) = session.next_body_chunk().await? {
        checksum.update(&chunk);
    }
    session.add_header("X-Body-Checksum", format!("fnv1a-64 {:016x}", checksum.0))?;
    Ok(Verdict::Accept)
}

/// The body; nothing answered; a header added.
fn body_checksum_needs() -> Needs {
    Needs::new()
        .events(Events::BODY)
        .actions(Actions::ADD_HEADERS)
}

fn chain() -> FilterList {
    FilterList::new()
        .with("recipients", recipient_policy())
        .with("tagger", SubjectTagger { tag: "[EXTERNAL]" })
        .with(
            "checksum",
            FnFilter::new(body_checksum).with_needs(body_checksum_needs()),
        )
}

fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let spec = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "inet:7357@127.0.0.1".to_owned());
    async_std::task::block_on(async {
        let server = Server::bind_with(&spec, ServerConfig::default()).await?;
        server.serve_until(chain(), termination_signal()).await
    })
}
