//! Limits how many messages a sender may start in a sliding window: per authenticated user
//! (the `{auth_authen}` macro, which the filter asks for at MAIL during negotiation), or per
//! client address for clients that did not authenticate. Over the limit, MAIL is refused
//! with `451 4.7.1 too many messages from KEY, try again later`, so the client's queue
//! retries later; refused attempts do not count.
//!
//! The counts live in the filter, shared by every connection of the process: one
//! `Arc<Mutex<HashMap>>` from key to the start times of its recent messages (at most
//! `--limit` of them per key, so memory stays bounded; keys idle for a whole window are
//! dropped when the map grows). Several processes do not share counts; for that, see the
//! Redis store of the greylist example.
//!
//! Run: `cargo run --example rate_limit [SOCKET] [--limit N] [--window SECONDS]` (default
//! `inet:7357@127.0.0.1`, [`LIMIT`] messages per [`WINDOW`] seconds).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_milter::proto::{Events, MacroStage, ReplyCode};
use async_milter::server::{Server, ServerConfig, termination_signal};
use async_milter::{Error, Filter, Needs, Session, Verdict};
use log::info;

/// Messages each user or address may start per window, unless `--limit` says otherwise.
const LIMIT: usize = 100;
/// The window, in seconds, unless `--window` says otherwise.
const WINDOW: u64 = 3600;
/// Past this many keys, idle ones are dropped.
const PRUNE_ABOVE: usize = 10_000;

struct RateLimit {
    limit: usize,
    window: Duration,
    /// Key (`user alice`, `address 192.0.2.1`) to the start times of its recent messages.
    recent: Arc<Mutex<HashMap<String, VecDeque<Instant>>>>,
}

impl RateLimit {
    /// Counts a message for `key` now, unless the key is at its limit: then `false`.
    fn admit(&self, key: &str) -> bool {
        let now = Instant::now();
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        if recent.len() > PRUNE_ABOVE {
            recent.retain(|_, times| times.back().is_some_and(|t| now - *t < self.window));
        }
        let times = recent.entry(key.to_owned()).or_default();
        while times.front().is_some_and(|t| now - *t >= self.window) {
            times.pop_front();
        }
        if times.len() >= self.limit {
            return false;
        }
        times.push_back(now);
        true
    }
}

impl Filter for RateLimit {
    fn needs(&self) -> Needs {
        // CONNECT for the client address; MAIL, answered, with the login name among its
        // macros.
        Needs::new()
            .events(Events::CONNECT | Events::MAIL)
            .answers(Events::MAIL)
            .macros(MacroStage::Mail, "{auth_authen}")
    }

    async fn filter(&self, session: &mut Session) -> Result<Verdict, Error> {
        session.envelope_from().await?;
        let key = match session.macro_str("{auth_authen}").filter(|u| !u.is_empty()) {
            Some(user) => format!("user {user}"),
            None => match session.client() {
                Some(client) => format!("address {}", client.address),
                None => "address unknown".to_owned(),
            },
        };
        if self.admit(&key) {
            return Ok(Verdict::Continue);
        }
        info!(
            "[{}] {key}: over {} messages",
            session.connection_id(),
            self.limit
        );
        // The user name comes from the client: sanitized.
        let text = format!("too many messages from {key}, try again later");
        Ok(Verdict::Reply(ReplyCode::sanitized(451, "4.7.1", &text)?))
    }
}

fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut spec = "inet:7357@127.0.0.1".to_owned();
    let (mut limit, mut window) = (LIMIT, WINDOW);
    let mut args = std::env::args().skip(1);
    let bad = |name: &str, value: &str| {
        std::io::Error::other(format!("{name} wants a whole number, not {value:?}"))
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--limit" | "--window" => {
                let value = args.next().unwrap_or_default();
                let number: u64 = value.parse().map_err(|_| bad(&arg, &value))?;
                if arg == "--limit" {
                    limit = usize::try_from(number).map_err(|_| bad(&arg, &value))?;
                } else {
                    window = number;
                }
            }
            _ => spec = arg,
        }
    }
    let filter = RateLimit {
        limit,
        window: Duration::from_secs(window),
        recent: Arc::default(),
    };
    async_std::task::block_on(async {
        let server = Server::bind_with(&spec, ServerConfig::default()).await?;
        server.serve_until(filter, termination_signal()).await
    })
}
