//! Refuses recipients one by one while the message goes on to the others.
//!
//! `<nobody@…>` gets `550 5.1.1 no such user`, `<full@…>` a temporary `452 4.2.2 mailbox
//! full`; a message left with no accepted recipient is not the filter's business (the
//! MTA refuses DATA itself).
//!
//! Run: `cargo run --example recipient_policy [SOCKET]` (default `inet:7357@127.0.0.1`).

use async_milter::proto::{Events, ReplyCode};
use async_milter::server::{Server, ServerConfig, termination_signal};
use async_milter::session::FnFilter;
use async_milter::{Error, Needs, Session, Verdict};

async fn recipient_policy(session: &mut Session) -> Result<Verdict, Error> {
    while let Some(rcpt) = session.next_recipient().await? {
        let local_part = rcpt
            .envelope()
            .bare()
            .and_then(|a| a.split('@').next())
            .unwrap_or("");
        match local_part.to_ascii_lowercase().as_str() {
            "nobody" => rcpt.reply(ReplyCode::permanent(550, "5.1.1", "no such user")?)?,
            "full" => rcpt.reply(ReplyCode::temporary(452, "4.2.2", "mailbox full")?)?,
            _ => {}
        }
    }
    Ok(Verdict::Continue)
}

fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let spec = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "inet:7357@127.0.0.1".to_owned());
    // Recipients only: everything else is negotiated away, so the MTA never waits on us.
    let needs = Needs::new().events(Events::RCPT).answers(Events::RCPT);
    async_std::task::block_on(async {
        let server = Server::bind_with(&spec, ServerConfig::default()).await?;
        let filter = FnFilter::new(recipient_policy).with_needs(needs);
        server.serve_until(filter, termination_signal()).await
    })
}
