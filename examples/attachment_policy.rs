//! Rejects messages that carry executable attachments, at end of message with
//! `550 5.7.1 attachment "NAME" refused: executable content is not accepted here`.
//!
//! The headers and the body are collected as they stream in and parsed with `mail-parser`
//! once the message is complete; every MIME part is checked, nested `message/rfc822` parts
//! included. A part is executable when its file name (`Content-Disposition` `filename` or
//! `Content-Type` `name`, RFC 2047/2231 decoded) ends in one of [`EXTENSIONS`], or when its
//! content type is one of [`CONTENT_TYPES`]. The name comes from the sender, so the reply
//! is built with `ReplyCode::sanitized`: a CR or LF in it cannot start a reply line.
//!
//! Past `--max-size` bytes (default [`MAX_SIZE`]) the filter stops collecting, lets the rest
//! of the body stream past, and accepts the message unparsed with
//! `X-Attachment-Policy: not checked, larger than N bytes`, so that a big message is neither
//! held in memory nor refused for its size (the MTA's own size limit is the place for that).
//!
//! Run: `cargo run --example attachment_policy [SOCKET] [--max-size BYTES]` (default
//! `inet:7357@127.0.0.1`).

use async_milter::proto::{Actions, Events, ReplyCode};
use async_milter::server::{Server, ServerConfig, termination_signal};
use async_milter::{Error, Filter, Needs, Session, Verdict};
use log::info;
use mail_parser::{Message, MessageParser, MimeHeaders};

/// Messages larger than this (headers and body) are accepted unparsed.
const MAX_SIZE: usize = 10 * 1024 * 1024;

/// File name extensions refused (compared without case, after trailing dots and spaces,
/// which Windows ignores, are removed).
const EXTENSIONS: &[&str] = &[
    "exe", "scr", "bat", "cmd", "com", "pif", "js", "jse", "vbs", "vbe", "wsf", "jar", "msi",
    "ps1", "hta", "cpl", "lnk",
];

/// Content types refused whatever the file name.
const CONTENT_TYPES: &[&str] = &[
    "application/x-msdownload",
    "application/x-dosexec",
    "application/x-msdos-program",
    "application/x-ms-installer",
];

struct AttachmentPolicy {
    max_size: usize,
}

/// Why a part is refused, for the reply.
fn refusal(part: &mail_parser::MessagePart<'_>) -> Option<String> {
    if let Some(name) = part.attachment_name() {
        let trimmed = name.trim_end_matches(['.', ' ']);
        if let Some((_, extension)) = trimmed.rsplit_once('.') {
            if EXTENSIONS.iter().any(|e| extension.eq_ignore_ascii_case(e)) {
                return Some(format!("attachment \"{name}\""));
            }
        }
    }
    let content_type = part.content_type()?;
    let full = format!(
        "{}/{}",
        content_type.ctype(),
        content_type.subtype().unwrap_or("")
    );
    CONTENT_TYPES
        .iter()
        .any(|t| full.eq_ignore_ascii_case(t))
        .then(|| format!("attachment of type {full}"))
}

/// The first executable part of `message` or of a message nested in it.
fn find_executable(message: &Message<'_>) -> Option<String> {
    message
        .parts
        .iter()
        .find_map(|part| refusal(part).or_else(|| part.message().and_then(find_executable)))
}

impl Filter for AttachmentPolicy {
    fn needs(&self) -> Needs {
        // Headers and body to parse, nothing answered before end of message; a header is
        // added to a message too large to check.
        Needs::new()
            .events(Events::HEADER | Events::EOH | Events::BODY)
            .actions(Actions::ADD_HEADERS)
    }

    async fn filter(&self, session: &mut Session) -> Result<Verdict, Error> {
        let mut raw = Vec::new();
        while let Some(header) = session.next_header().await? {
            header.write_raw(&mut raw);
        }
        raw.extend_from_slice(b"\r\n");
        let mut size = raw.len();
        while let Some(chunk) = session.next_body_chunk().await? {
            size += chunk.len();
            if size <= self.max_size {
                raw.extend_from_slice(&chunk);
            } else if !raw.is_empty() {
                raw = Vec::new(); // released at once; the rest streams past
            }
        }
        let id = session.connection_id();
        if size > self.max_size {
            info!("[{id}] {size} bytes, over {}: not checked", self.max_size);
            let note = format!("not checked, larger than {} bytes", self.max_size);
            session.add_header("X-Attachment-Policy", &note)?;
            return Ok(Verdict::Accept);
        }
        let found = MessageParser::default()
            .parse(&raw)
            .and_then(|message| find_executable(&message));
        let Some(what) = found else {
            return Ok(Verdict::Continue);
        };
        info!("[{id}] refused: {}", what.escape_debug());
        let text = format!("{what} refused: executable content is not accepted here");
        Ok(Verdict::Reply(ReplyCode::sanitized(550, "5.7.1", &text)?))
    }
}

fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut spec = "inet:7357@127.0.0.1".to_owned();
    let mut max_size = MAX_SIZE;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--max-size" {
            let value = args.next().unwrap_or_default();
            max_size = value.parse().map_err(|_| {
                std::io::Error::other(format!("--max-size wants a byte count, not {value:?}"))
            })?;
        } else {
            spec = arg;
        }
    }
    async_std::task::block_on(async {
        let server = Server::bind_with(&spec, ServerConfig::default()).await?;
        let filter = AttachmentPolicy { max_size };
        server.serve_until(filter, termination_signal()).await
    })
}
