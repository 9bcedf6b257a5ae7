//! Tags the subject of mail from outside the local networks with `[EXTERNAL]`.
//!
//! Run: `cargo run --example subject_tagger [SOCKET]` (default `inet:7357@127.0.0.1`).

use async_milter::proto::{Actions, Events};
use async_milter::server::{Server, ServerConfig, termination_signal};
use async_milter::{Error, Filter, Needs, Session, Verdict};

/// Only the subject matters: no body, no answers before end of message.
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
    fn needs(&self) -> Needs {
        // The client address and the headers; nothing answered before end of message; the
        // subject changed, or added when missing.
        Needs::new()
            .events(Events::CONNECT | Events::HEADER | Events::EOH)
            .actions(Actions::CHANGE_HEADERS | Actions::ADD_HEADERS)
    }

    async fn filter(&self, session: &mut Session) -> Result<Verdict, Error> {
        let external = !is_internal(session);
        let mut subject = None;
        while let Some(header) = session.next_header().await? {
            if subject.is_none() && header.name.eq_ignore_ascii_case("Subject") {
                subject = Some(header);
            }
        }
        session.end_of_message().await?;
        if external {
            match subject {
                Some(subject) if !subject.value.as_bytes().starts_with(self.tag.as_bytes()) => {
                    let mut value = format!("{} ", self.tag).into_bytes();
                    value.extend_from_slice(subject.value.as_bytes());
                    session.change_header(subject.handle, value)?;
                }
                Some(_) => {}
                None => session.add_header("Subject", self.tag)?,
            }
        }
        Ok(Verdict::Accept)
    }
}

fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let spec = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "inet:7357@127.0.0.1".to_owned());
    async_std::task::block_on(async {
        let server = Server::bind_with(&spec, ServerConfig::default()).await?;
        server
            .serve_until(SubjectTagger { tag: "[EXTERNAL]" }, termination_signal())
            .await
    })
}
