#![doc = include_str!("../README.md")]
//!
//! # Reading guide
//!
//! The sections above and below, in the order a filter author needs them:
//!
//! 1. **Lifecycle of a connection and a message**: [the life of a filter
//!    call](#the-life-of-a-filter-call) (one call per message, what lasts, where a verdict
//!    lands, abort and close).
//! 2. **Negotiation**: [declare what the filter needs](#negotiation-declare-what-the-filter-needs),
//!    and why it matters.
//! 3. **Edits and header positions**: [what a filter can change and where headers
//!    land](#edits-and-header-positions).
//! 4. **MTA differences**: [differences a filter may notice](#differences-a-filter-may-notice)
//!    between Postfix and Sendmail.
//! 5. **Testing your filter**: [in-process tests](#testing-a-filter) with the
//!    `testing` feature, and [`milter-check`](#checking-a-milter-from-the-shell) against a
//!    running filter.
//! 6. **Deployment**: [wiring into Postfix and Sendmail](#wiring-a-filter-into-the-mta),
//!    [socket activation](#socket-activation), [running as a service](#running-as-a-service)
//!    with the systemd units in `contrib/systemd`, [metrics](#metrics) and
//!    [logging](#logging).
//! 7. **Performance**: [figures and what drives them](#performance); the main lever is
//!    declaring answers (below).
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
//!
//! # Negotiation: declare what the filter needs
//!
//! At the start of every connection the MTA offers a protocol version, the actions it allows
//! (edits) and the events it can leave out or stop waiting for; the filter answers with what
//! it takes. The library computes that answer ([`proto::negotiate`]) from the filter's
//! [`Needs`]:
//!
//! - **events** ([`Needs::events`]): what the MTA sends at all. An event left out is not
//!   sent (no packets, no wake-ups); awaiting it is an error, not a hang.
//! - **answers** ([`Needs::answers`]): what the MTA waits for. Every other event is
//!   negotiated as no-reply, so the MTA streams headers and body without a round trip per
//!   packet (see "Declared answers" above).
//! - **actions** ([`Needs::actions`], [`Needs::optional_actions`]): the edits the filter
//!   may make. A required action the MTA does not offer refuses the connection at once,
//!   rather than failing later on a message; an optional one missing makes that edit fail
//!   when queued.
//! - **macros** ([`Needs::macros`]): the macros wanted per stage (`{auth_authen}` at MAIL,
//!   say, as `examples/rate_limit.rs` asks). MTAs send few macros by default; a filter that
//!   needs one must ask, or the value is simply absent.
//!
//! A plain `async fn` filter gets [`Needs::everything`]: correct, but the MTA then sends
//! and waits for every event. A [`FilterList`] asks for the union of its filters' needs.
//! `milter-check` prints what was negotiated, which is the quickest way to see what a
//! declaration turns into on the wire.
//!
//! # Edits and header positions
//!
//! Edits are methods on [`Session`], queued during the call and sent at end of message:
//! headers ([`Session::add_header`], [`Session::insert_header`],
//! [`Session::change_header`], [`Session::delete_header`]), the body
//! ([`Session::replace_body`], which can be called chunk by chunk so a body is never
//! assembled), recipients ([`Session::add_recipient`], [`Session::remove_recipient`]), the
//! sender ([`Session::change_sender`]) and quarantine ([`Session::quarantine`]).
//!
//! A header to change or delete is named by the [`HeaderHandle`] of a header the filter was
//! shown, never by a raw index, so the *n*-th `Received:` is the one meant even after other
//! edits. [`HeaderPosition`] places an inserted header: `Top` (above everything, the MTA's
//! own `Received:` included: where DKIM signatures and `Authentication-Results:` go),
//! `Before` or `After` a header the filter saw, or `End`. Postfix and Sendmail number
//! header positions differently; the library translates, so the result is the same on both
//! (checked by the end-to-end suite; see [differences](#differences-a-filter-may-notice)
//! for the one Sendmail assumption).
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
