//! Signs each message with DKIM (RFC 6376, `mail-auth`) and puts `DKIM-Signature:` above
//! every header, the MTA's own `Received:` included.
//!
//! The key file is PEM, PKCS#8 (RSA or Ed25519) or PKCS#1 (RSA); its kind chooses
//! `rsa-sha256` or `ed25519-sha256`; relaxed/relaxed canonicalization. Headers are taken
//! exactly as sent (`HEADER_LEADING_SPACE`), the body with CRLF line ends. Only the headers
//! of [`SIGNED`] that are present are signed: an MTA adds a missing `Date:` or `Message-ID:`
//! after the filter has run, and an absent header named in `h=` would then break the
//! signature. Put it where mail leaves (submission, `non_smtpd_milters`). Messages over
//! [`MAX_SIZE`] pass unsigned.
//!
//! Run: `cargo run --example dkim_sign -- [SOCKET] --key PATH --selector S --domain D`
//! (default socket `inet:7357@127.0.0.1`).

use async_milter::server::{Server, ServerConfig, termination_signal};
use async_milter::{Actions, Error, Events, Filter, HeaderPosition, Needs, ProtocolFlags};
use async_milter::{Session, Verdict};
use log::{info, warn};
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256, SigningKey};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done, Signature};
use rustls_pki_types::{PrivateKeyDer, pem::PemObject};

/// The headers signed when present.
const SIGNED: &str = "From Sender Reply-To To Cc Subject Date Message-ID In-Reply-To References \
    MIME-Version Content-Type Content-Transfer-Encoding";

/// Larger messages (headers and body) are passed unsigned rather than held in memory.
const MAX_SIZE: usize = 25 * 1024 * 1024;

/// The private key as DER, parsed again per message (microseconds): mail-auth's signer
/// owns its key, and its key types are not `Clone`.
enum Key {
    Rsa(PrivateKeyDer<'static>),
    Ed25519(Vec<u8>),
}

fn load_key(path: &str) -> std::io::Result<Key> {
    let bad = |e: &dyn std::fmt::Display| std::io::Error::other(format!("key {path}: {e}"));
    let der = PrivateKeyDer::from_pem_file(path).map_err(|e| bad(&e))?;
    if let PrivateKeyDer::Pkcs8(pkcs8) = &der {
        if Ed25519Key::from_pkcs8_der(pkcs8.secret_pkcs8_der()).is_ok() {
            return Ok(Key::Ed25519(pkcs8.secret_pkcs8_der().to_vec()));
        }
    }
    RsaKey::<Sha256>::from_key_der(der.clone_key()).map_err(|e| bad(&e))?;
    Ok(Key::Rsa(der))
}

struct DkimSign {
    key: Key,
    domain: String,
    selector: String,
}

impl DkimSign {
    fn sign(&self, headers: &[&str], message: &[u8]) -> mail_auth::Result<Signature> {
        match &self.key {
            Key::Rsa(der) => self
                .signer(RsaKey::<Sha256>::from_key_der(der.clone_key())?, headers)
                .sign(message),
            Key::Ed25519(der) => self
                .signer(Ed25519Key::from_pkcs8_der(der)?, headers)
                .sign(message),
        }
    }

    fn signer<T: SigningKey>(&self, key: T, headers: &[&str]) -> DkimSigner<T, Done> {
        DkimSigner::from_key(key)
            .domain(&self.domain)
            .selector(&self.selector)
            .headers(headers.iter().copied())
            .header_canonicalization(Canonicalization::Relaxed)
            .body_canonicalization(Canonicalization::Relaxed)
    }
}

impl Filter for DkimSign {
    fn needs(&self) -> Needs {
        Needs::new() // answers at end of message only
            .events(Events::HEADER | Events::EOH | Events::BODY)
            .actions(Actions::ADD_HEADERS)
            .options(ProtocolFlags::HEADER_LEADING_SPACE)
    }

    async fn filter(&self, session: &mut Session) -> Result<Verdict, Error> {
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
        let id = session.connection_id();
        let present: Vec<&str> = SIGNED
            .split_whitespace()
            .filter(|n| session.header(n).is_some())
            .collect();
        if too_big || !present.contains(&"From") {
            warn!("[{id}] not signed: over {MAX_SIZE} bytes, or no From: header");
            return Ok(Verdict::Accept);
        }
        match self.sign(&present, &raw) {
            Ok(signature) => {
                let field = signature.to_header(); // "DKIM-Signature: v=1; ...\r\n"
                let value = field.split_once(": ").map_or("", |(_, v)| v).trim_end();
                session.insert_header(HeaderPosition::Top, "DKIM-Signature", value)?;
                info!("[{id}] signed d={} s={}", self.domain, self.selector);
            }
            Err(e) => warn!("[{id}] not signed: {e}"),
        }
        Ok(Verdict::Accept)
    }
}

const USAGE: &str = "usage: dkim_sign [SOCKET] --key PATH --selector S --domain D";

fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut spec = "inet:7357@127.0.0.1".to_owned();
    let (mut key, mut selector, mut domain) = (None, None, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--key" => key = args.next(),
            "--selector" => selector = args.next(),
            "--domain" => domain = args.next(),
            _ if arg.starts_with("--") => return Err(std::io::Error::other(USAGE)),
            _ => spec = arg,
        }
    }
    let usage = || std::io::Error::other(USAGE);
    let (domain, selector) = (domain.ok_or_else(usage)?, selector.ok_or_else(usage)?);
    let key = load_key(&key.ok_or_else(usage)?)?;
    let filter = DkimSign {
        key,
        domain,
        selector,
    };
    async_std::task::block_on(async {
        let server = Server::bind_with(&spec, ServerConfig::default()).await?;
        server.serve_until(filter, termination_signal()).await
    })
}
