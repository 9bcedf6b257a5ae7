//! Checks SPF at MAIL (client address, HELO, envelope sender) and the DKIM signatures at
//! end of message with `mail-auth`; puts the results in `Authentication-Results:` (RFC
//! 8601) above every header, the MTA's own `Received:` included:
//!
//! ```text
//! Authentication-Results: mx.example.org; spf=pass (...) smtp.mailfrom=alice@example.com;
//!     dkim=pass header.d=example.com header.s=sel header.b=AbCdEf
//! ```
//! DNS answers come from `Records` (mail-auth's `ResolverCache` over fixed TXT records:
//! put your own resolver there), then `dns` (hickory, system configuration). `--records
//! FILE` fills the table (lines `NAME TXT-VALUE`) and leaves `dns` without a server.
//!
//! Run: `cargo run --example dkim_verify -- [SOCKET] --authserv-id HOST [--records FILE]`
//! (default socket `inet:7357@127.0.0.1`). It serves on tokio: hickory needs it.

use async_milter::rt::Tokio;
use async_milter::server::{Server, ServerConfig, termination_signal};
use async_milter::{Actions, Client, Error, Events, Filter, HeaderPosition, Needs};
use async_milter::{ProtocolFlags, Session, Verdict};
use log::info;
use mail_auth::common::{parse::TxtRecordParser, verify::DomainKey};
use mail_auth::hickory_resolver::config::{ResolverConfig, ResolverOpts};
use mail_auth::spf::{Spf, verify::SpfParameters};
use mail_auth::{AuthenticatedMessage, AuthenticationResults, MessageAuthenticator};
use mail_auth::{Parameters, ResolverCache, Txt};

const MAX_SIZE: usize = 25 * 1024 * 1024; // larger: not kept, `dkim=none`

/// Fixed TXT records by name (lower case, with the final dot), parsed once: a DKIM key
/// for names under `_domainkey`, else an SPF policy. Anything else goes to `dns`.
#[derive(Default)]
struct Records(std::collections::HashMap<Box<str>, Txt>);

fn load_records(file: &str) -> Records {
    let records = file.lines().filter_map(|line| {
        let (name, value) = line.trim().split_once(char::is_whitespace)?;
        let name = format!("{}.", name.trim_end_matches('.').to_ascii_lowercase());
        let value = value.trim().trim_matches('"').as_bytes();
        let record = if name.contains("._domainkey.") {
            Txt::from(DomainKey::parse(value))
        } else {
            Txt::from(Spf::parse(value))
        };
        Some((name.into_boxed_str(), record))
    });
    Records(records.collect())
}

impl ResolverCache<Box<str>, Txt> for Records {
    fn get<Q: std::hash::Hash + Eq + ?Sized>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: std::borrow::Borrow<Q>,
    {
        self.0.get(name).cloned()
    }
    fn remove<Q: std::hash::Hash + Eq + ?Sized>(&self, _: &Q) -> Option<Txt>
    where
        Box<str>: std::borrow::Borrow<Q>,
    {
        None // fixed: never forgotten, and nothing learnt from `dns` is kept here
    }
    fn insert(&self, _: Box<str>, _: Txt, _: std::time::Instant) {}
}

struct DkimVerify {
    dns: MessageAuthenticator,
    records: Records,
    /// The authserv-id: this host, as named in the header.
    host: String,
}

impl Filter for DkimVerify {
    fn needs(&self) -> Needs {
        Needs::new() // answers at end of message only; header values exactly as sent
            .events(Events::ALL.difference(Events::RCPT | Events::DATA | Events::UNKNOWN))
            .actions(Actions::ADD_HEADERS)
            .options(ProtocolFlags::HEADER_LEADING_SPACE)
    }

    async fn filter(&self, session: &mut Session) -> Result<Verdict, Error> {
        let sender = session.envelope_from().await?;
        let sender = sender.bare().unwrap_or_default();
        let helo = session
            .helo_name()
            .map_or("", |h| h.to_str().unwrap_or_default());
        let mut results = AuthenticationResults::new(&self.host);
        if let Some(ip) = session.client().and_then(Client::ip) {
            let spf = SpfParameters::verify_mail_from(ip, helo, &self.host, sender);
            let params = Parameters::new(spf).with_txt_cache(&self.records);
            let spf = self.dns.verify_spf(params).await;
            results = results.with_spf_mailfrom_result(&spf, ip, sender, helo);
        }
        let mut raw = Vec::new();
        while let Some(header) = session.next_header().await? {
            header.write_raw(&mut raw);
        }
        raw.extend_from_slice(b"\r\n");
        let mut too_big = false; // then the rest streams past, not kept
        while let Some(chunk) = session.next_body_chunk().await? {
            too_big |= raw.len() + chunk.len() > MAX_SIZE;
            if !too_big {
                raw.extend_from_slice(&chunk);
            }
        }
        let message = AuthenticatedMessage::parse(&raw).filter(|_| !too_big);
        let value = match message {
            Some(message) if !message.dkim_headers.is_empty() => {
                let params = Parameters::new(&message).with_txt_cache(&self.records);
                let dkim = self.dns.verify_dkim(params).await;
                results.with_dkim_results(&dkim, message.from()).to_string()
            }
            _ => results.to_string() + ";\r\n\tdkim=none",
        };
        let id = session.connection_id();
        info!("[{id}] {}", value.replace("\r\n\t", " "));
        session.insert_header(HeaderPosition::Top, "Authentication-Results", value)?;
        Ok(Verdict::Accept)
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let usage = || std::io::Error::other("dkim_verify [SOCKET] --authserv-id ID [--records FILE]");
    let mut spec = "inet:7357@127.0.0.1".to_owned();
    let (mut authserv_id, mut records) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--authserv-id" => authserv_id = args.next(),
            "--records" => records = args.next(),
            _ if arg.starts_with("--") => return Err(usage()),
            _ => spec = arg,
        }
    }
    let host = authserv_id.ok_or_else(usage)?;
    let (dns, records) = match records {
        Some(path) => {
            let no_server = ResolverConfig::from_parts(None, vec![], vec![]);
            let dns = MessageAuthenticator::new(no_server, ResolverOpts::default());
            (dns, load_records(&std::fs::read_to_string(path)?))
        }
        None => (MessageAuthenticator::new_system_conf(), Records::default()),
    };
    let dns = dns.map_err(|e| std::io::Error::other(format!("resolver: {e}")))?;
    let filter = DkimVerify { dns, records, host };
    let server = Server::bind_on(Tokio, &spec, ServerConfig::default()).await?;
    server.serve_until(filter, termination_signal()).await
}
