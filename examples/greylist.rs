//! Classic greylisting: the first time a (client address, sender, recipient) triplet is
//! seen, that recipient gets `451 4.7.1 greylisted, try again later` (the message goes on
//! to the others); retries from `--delay` seconds on pass. A triplet unseen for
//! [`LIFETIME_MS`] is forgotten. The store is shared by every connection: in memory, or with
//! `--redis URL` (`redis://127.0.0.1:6379/`) in Redis, shared by every milter process using
//! it (times are Unix milliseconds from each milter's clock). Redis is reached with its
//! blocking client on async-std's blocking threads: one short round trip per recipient does
//! not call for a second async I/O stack. If Redis fails, mail passes (logged): fail open.
//! Per connection ([`Session::connection_state`]) the filter keeps the triplets that
//! passed, so later messages skip the store, and its Redis connection.
//!
//! Run: `cargo run --example greylist [SOCKET] [--delay SECONDS] [--redis URL]` (default
//! `inet:7357@127.0.0.1`, [`DELAY`] seconds, in memory).

use std::collections::{HashMap, HashSet};
use std::io::Error as IoError;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use async_milter::proto::{Events, ReplyCode};
use async_milter::server::{Server, ServerConfig, termination_signal};
use async_milter::{Error, Filter, Needs, Session, Verdict};
use log::{info, warn};

/// Seconds before a retry passes, unless `--delay` says otherwise.
const DELAY: &str = "300";
/// A triplet not seen for this long is forgotten (postgrey's `max-age`).
const LIFETIME_MS: u64 = 35 * 24 * 3600 * 1000;

/// Where sightings are kept: triplet to (first seen, last seen), or Redis keys.
enum Store {
    Memory(Mutex<HashMap<String, (u64, u64)>>),
    Redis(redis::Client),
}

/// What a connection remembers.
#[derive(Default)]
struct Seen {
    passed: HashSet<String>,
    redis: Option<redis::Connection>,
}

struct Greylist {
    delay_ms: u64,
    store: Store,
}

/// `first_seen` in Redis (`SET NX GET` needs Redis 7), with a lifetime from now.
fn first_seen_redis(
    redis: &redis::Client,
    seen: &mut Option<redis::Connection>,
    key: &str,
    now: u64,
) -> redis::RedisResult<u64> {
    let connection = match seen {
        Some(connection) => connection,
        None => seen.insert(redis.get_connection_with_timeout(Duration::from_secs(2))?),
    };
    connection.set_read_timeout(Some(Duration::from_secs(2)))?;
    let (set, keep) = ((key, now, "NX", "GET"), (key, LIFETIME_MS));
    let first: Option<u64> = redis::cmd("SET").arg(set).query(connection)?;
    redis::cmd("PEXPIRE").arg(keep).exec(connection)?;
    Ok(first.unwrap_or(now))
}

impl Greylist {
    /// When `key` was first seen, recording `now` if it is new.
    async fn first_seen(&self, seen: &mut Seen, key: String, now: u64) -> u64 {
        let redis = match &self.store {
            Store::Redis(redis) => redis.clone(),
            Store::Memory(map) => {
                let mut map = map.lock().unwrap_or_else(PoisonError::into_inner);
                if map.len() > 100_000 {
                    map.retain(|_, (_, last)| now.saturating_sub(*last) < LIFETIME_MS);
                }
                let entry = map.entry(key).or_insert((now, now));
                let expired = now.saturating_sub(entry.1) >= LIFETIME_MS;
                *entry = (if expired { now } else { entry.0 }, now);
                return entry.0;
            }
        };
        let mut connection = seen.redis.take();
        let (result, connection) = async_std::task::spawn_blocking(move || {
            let first = first_seen_redis(&redis, &mut connection, &key, now);
            (first, connection)
        })
        .await;
        let Ok(first) = result.inspect_err(|e| warn!("redis: {e}; the recipient passes")) else {
            return 0;
        };
        seen.redis = connection;
        first
    }
}

impl Filter for Greylist {
    fn needs(&self) -> Needs {
        let events = Events::CONNECT | Events::MAIL | Events::RCPT;
        Needs::new().events(events).answers(Events::RCPT)
    }

    async fn filter(&self, session: &mut Session) -> Result<Verdict, Error> {
        let sender = session.envelope_from().await?.address.to_string();
        let client = session.client().map(|c| c.address.to_string());
        let client = client.unwrap_or_default();
        let greylisted = ReplyCode::temporary(451, "4.7.1", "greylisted, try again later")?;
        while let Some(rcpt) = session.next_recipient().await? {
            let key = format!("greylist {client} {sender} {}", rcpt.address()).to_lowercase();
            let seen = session.connection_state::<Seen>();
            if seen.passed.contains(&key) {
                continue;
            }
            let since_epoch = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH);
            let now = since_epoch.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            if now.saturating_sub(self.first_seen(seen, key.clone(), now).await) >= self.delay_ms {
                seen.passed.insert(key);
            } else {
                info!("[{}] greylisted: {key:?}", session.connection_id());
                rcpt.reply(greylisted.clone())?;
            }
        }
        Ok(Verdict::Continue)
    }
}

fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let (mut spec, mut url) = ("inet:7357@127.0.0.1".to_owned(), None);
    let mut delay = DELAY.to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--delay" => delay = args.next().unwrap_or_default(),
            "--redis" => url = args.next(),
            _ => spec = arg,
        }
    }
    let client = url.map(redis::Client::open).transpose();
    let client = client.map_err(IoError::other)?;
    let store = client.map_or_else(|| Store::Memory(Mutex::default()), Store::Redis);
    let delay: f64 = delay.parse().map_err(IoError::other)?;
    let delay = Duration::try_from_secs_f64(delay).map_err(IoError::other)?;
    let delay_ms = u64::try_from(delay.as_millis()).map_err(IoError::other)?;
    let filter = Greylist { delay_ms, store };
    async_std::task::block_on(async {
        let server = Server::bind_with(&spec, ServerConfig::default()).await?;
        server.serve_until(filter, termination_signal()).await
    })
}
