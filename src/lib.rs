#![doc = include_str!("../README.md")]
//!
//! # The life of a filter call
//!
//! **One call per message.** The filter (a plain `async fn(&mut Session)`, a [`filter_fn`]
//! closure, or a type implementing [`Filter`]) is called once per message. The first call
//! of a connection starts at the first command after negotiation (normally CONNECT), so
//! [`Session::client`], and anything else the MTA sent before the call began, is readable
//! from its first line. Later calls start with the next message's first command, after the
//! previous message ended: its end-of-message reply, ABORT, or a new MAIL without ABORT.
//! [`Session::message_number`] counts the messages of the connection from 1.
//!
//! **What lasts.** Connection data (client, HELO name, CONNECT and HELO macros) stays the
//! same for every message of the connection; message data (sender, recipients, headers,
//! message macros, queued edits) starts afresh with each call.
//! [`Session::connection_state`] keeps a value of the filter's own for the whole
//! connection (libmilter's `smfi_setpriv`), dropped when the connection closes.
//!
//! **Reading the message.** Await each part as the MTA sends it ([`Session::helo`],
//! [`Session::envelope_from`], [`Session::next_recipient`], [`Session::next_header`],
//! [`Session::next_body_chunk`], [`Session::end_of_message`]) or look at what has arrived
//! ([`Session::recipients`], [`Session::headers`]). Events the filter does not await are
//! answered for it. Awaiting a part that has passed is a typed error, never a panic. The
//! awaits honour the waker contract, so a filter can `join` or `select` them with its own
//! I/O (a DNS lookup started at MAIL while recipients keep arriving).
//!
//! **Where a verdict lands.** The verdict a filter returns is sent at the first event where
//! it means what the filter meant:
//!
//! | returned during | applies to |
//! |---|---|
//! | CONNECT or HELO | the whole SMTP connection (`Accept`: no more filtering for it; `Reject`/`Tempfail`: refused; `Discard`: held until the message) |
//! | MAIL, DATA, headers, body, end of message | the message |
//! | RCPT | held until the next message-wide event (DATA, a header, end of headers, a body chunk or end of message): sent at RCPT it would refuse one recipient only |
//!
//! A single recipient is refused through its handle ([`Recipient::reject`],
//! [`Recipient::reply`]) while the filter goes on. A passing verdict with queued edits
//! waits for end of message (body chunks are then answered with Skip where negotiated).
//! A filter that fails or panics gets [`ConnectionConfig::error_verdict`] (tempfail by
//! default), for that message only; the connection and every other connection go on.
//!
//! **Declared answers.** [`Needs::answers`] lists the events a filter may answer with
//! something other than continue; the others are negotiated as no-reply, so the MTA does
//! not wait for them (the main performance lever). A verdict returned at such an event
//! cannot reach the MTA there: it is held until the next event the MTA waits for a reply
//! to (at the latest end of message), and the connection logs a warning once. A recipient
//! refused at an undeclared RCPT fails at once with [`session::Misuse::Unanswerable`].
//! Declare what the filter answers; `Needs::everything()` (what a plain `async fn` gets)
//! answers everything.
//!
//! **Edits** are checked when queued ([`Error::Misuse`] or [`Error::Unavailable`] at once,
//! never a silent drop) and sent at end of message, before the verdict, in one write.
//!
//! **Abort, EOF and close.** After ABORT (or a new MAIL without it) the filter's next await
//! returns [`Error::Aborted`] and its queued edits are dropped; when the MTA closes the
//! connection the filter's future is dropped at once.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub mod client;
pub mod connection;
#[doc(hidden)]
pub mod fuzzing;
pub mod hooks;
mod list;
pub mod metrics;
pub mod proto;
pub mod rt;
pub mod server;
pub mod session;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

// The everyday types, so a filter needs one `use` line.
pub use bytes::Bytes;
pub use connection::ConnectionConfig;
pub use list::FilterList;
pub use proto::{Actions, Events, MacroStage, Needs, ProtocolFlags, ReplyCode};
pub use server::{Server, ServerConfig};
pub use session::{
    Address, Client, Error, Filter, FnFilter, HeaderField, HeaderHandle, HeaderPosition, Phase,
    Recipient, Session, Text, UnknownCommand, Verdict, filter_fn,
};
