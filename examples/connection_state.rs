//! Lets each SMTP connection deliver at most three messages: the fourth and every later one
//! is refused at MAIL with `451 4.7.1 too many messages in one connection`, so the client
//! comes back on a new connection.
//!
//! The count lives in the filter's state for the connection
//! ([`Session::connection_state`], what `smfi_setpriv` holds in libmilter): made on the first
//! message, kept from message to message, dropped when the connection closes (its `Drop`
//! logs the tally).
//!
//! Run: `cargo run --example connection_state [SOCKET]` (default `inet:7357@127.0.0.1`).

use async_milter::proto::{Events, ReplyCode};
use async_milter::server::{Server, ServerConfig, termination_signal};
use async_milter::session::FnFilter;
use async_milter::{Error, Needs, Session, Verdict};
use log::info;

/// Messages a connection may deliver before the next ones are tempfailed.
const MESSAGES_PER_CONNECTION: u32 = 3;

/// What the filter remembers about one connection.
#[derive(Default)]
struct Tally {
    connection: u64,
    passed: u32,
    refused: u32,
}

impl Drop for Tally {
    fn drop(&mut self) {
        info!(
            "[{}] closed: {} messages passed, {} refused",
            self.connection, self.passed, self.refused
        );
    }
}

async fn connection_state(session: &mut Session) -> Result<Verdict, Error> {
    let connection = session.connection_id();
    let message = session.message_number();
    let tally = session.connection_state::<Tally>();
    tally.connection = connection;
    if tally.passed < MESSAGES_PER_CONNECTION {
        tally.passed += 1;
        return Ok(Verdict::Continue);
    }
    tally.refused += 1;
    info!("[{connection}] message {message}: over {MESSAGES_PER_CONNECTION} per connection");
    Ok(Verdict::Reply(ReplyCode::temporary(
        451,
        "4.7.1",
        "too many messages in one connection",
    )?))
}

fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let spec = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "inet:7357@127.0.0.1".to_owned());
    // It awaits nothing, but its verdict goes out as the answer to MAIL, so a refused
    // message is refused before its body travels: MAIL is seen and answered.
    let needs = Needs::new().events(Events::MAIL).answers(Events::MAIL);
    async_std::task::block_on(async {
        let server = Server::bind_with(&spec, ServerConfig::default()).await?;
        server
            .serve_until(
                FnFilter::new(connection_state).with_needs(needs),
                termination_signal(),
            )
            .await
    })
}
