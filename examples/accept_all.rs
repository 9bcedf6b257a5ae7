//! The smallest milter: accepts every message.
//!
//! Run: `cargo run --example accept_all [SOCKET]` (default `inet:7357@127.0.0.1`; `systemd`
//! when started by socket activation).

use async_milter::server::{Server, ServerConfig, termination_signal};
use async_milter::session::FnFilter;
use async_milter::{Error, Needs, Session, Verdict};

async fn accept_all(_session: &mut Session) -> Result<Verdict, Error> {
    Ok(Verdict::Accept)
}

fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let spec = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "inet:7357@127.0.0.1".to_owned());
    async_std::task::block_on(async {
        let server = Server::bind_with(&spec, ServerConfig::default()).await?;
        server
            .serve_until(
                // Awaits nothing and edits nothing: the MTA sends only end of message.
                FnFilter::new(accept_all).with_needs(Needs::new()),
                termination_signal(),
            )
            .await
    })
}
