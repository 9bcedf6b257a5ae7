//! The MTA side of the protocol: a milter client that connects to a filter, negotiates,
//! sends each stage of an SMTP session and reads typed replies and modifications, with
//! timeouts. For Rust MTAs and proxies that call milters, and for tools that check them
//! (the crate's own `milter-check` is built on it; the [`testing`](crate::testing) kit
//! re-exports it for filter tests).
//!
//! This module needs the `client` cargo feature, off by default (`testing` turns it on):
//!
//! ```toml
//! [dependencies]
//! async-milter = { version = "0.1", features = ["client"] }
//! ```
//!
//! # Pieces
//!
//! * [`connect`] opens a socket spec (`inet:PORT@HOST`, `unix:/path`, `HOST:PORT`, …) and
//!   returns a [`MilterClient`]; [`MilterClient::new`] wraps any other stream.
//! * [`MilterClient::negotiate`] sends the OPTNEG offer of the [`Profile`] and checks the
//!   reply ([`Negotiated`]).
//! * One method per command ([`connect`](MilterClient::connect),
//!   [`helo`](MilterClient::helo), [`mail`](MilterClient::mail),
//!   [`rcpt`](MilterClient::rcpt), [`data`](MilterClient::data),
//!   [`header`](MilterClient::header), [`end_of_headers`](MilterClient::end_of_headers),
//!   [`body`](MilterClient::body), [`end_of_message`](MilterClient::end_of_message),
//!   [`abort`](MilterClient::abort), [`unknown`](MilterClient::unknown),
//!   [`quit`](MilterClient::quit)), each sending the profile's MACRO packet first and
//!   returning a typed [`Reply`]; end of message returns the [`Modification`]s too
//!   ([`EndOfMessage`]).
//! * [`MilterClient::send_message`] plays a whole transaction from an RFC 5322 message and an
//!   [`Envelope`], and returns an [`Outcome`]: every reply, the verdict, and the message as
//!   the MTA would deliver it after the edits ([`Delivered`]).
//! * Every wait is bounded by [`Profile::timeout`]; every misbehaviour of the filter is a
//!   [`ClientError`].
//!
//! The client is generic over any `futures::io::{AsyncRead, AsyncWrite} + Unpin` stream;
//! only the timeouts and [`connect`] use async-std, and those work under any executor.
//!
//! # Example
//!
//! ```no_run
//! use async_milter::client::{Envelope, Modification, Profile, Reply, connect};
//! use async_milter::proto::Family;
//!
//! # async_std::task::block_on(async {
//! let mut client = connect("inet:7357@127.0.0.1", Profile::postfix()).await?;
//! let negotiated = client.negotiate().await?;
//! println!("filter may use {:?}", negotiated.actions);
//! client.connect("client.example.com", Family::Inet, 50000, "192.0.2.1").await?;
//! client.helo("client.example.com").await?;
//! let envelope = Envelope::new("<alice@example.com>", &["<bob@example.net>"]);
//! let outcome = client.send_message(&envelope, b"Subject: hi\r\n\r\nHello\r\n").await?;
//! for modification in &outcome.modifications {
//!     if let Modification::AddHeader { name, value } = modification {
//!         println!("filter adds {name}:{value}");
//!     }
//! }
//! if outcome.verdict.is_refusal() {
//!     println!("filter refused the message: {:?}", outcome.verdict);
//! }
//! client.quit().await?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # });
//! ```
//!
//! # Profiles
//!
//! [`Profile::postfix`] and [`Profile::sendmail`] reproduce the MTA behaviours a portable
//! filter must survive (§6 of the protocol notes): which MACRO packets precede which
//! commands and with which default values, the ABORT pattern, the `IPv6:` address prefix,
//! the UNKNOWN payload, what happens after a connection-level verdict, and which answers are
//! allowed where. Every field is public, so a caller can change the offer (version 2 to 6,
//! actions, protocol flags), the macro lists and values, the queue ID, the body chunk size
//! and the timeout. Macro lists the filter requests in its OPTNEG reply are honoured as the
//! MTA would ([`Profile`] describes the per-MTA rules).
//!
//! # Strictness
//!
//! The client treats as errors ([`ClientError`]) what a real MTA would treat as a filter
//! failure, plus a few things only one MTA tolerates, so that a filter that passes is portable: a response not allowed at that point (a modification or QUARANTINE before end
//! of message, SKIP except after BODY with `SKIP` negotiated, DISCARD at CONNECT, HELO or
//! UNKNOWN, SHUTDOWN or PROGRESS before end of message with Sendmail), a modification whose
//! action was not negotiated, interrupted REPLBODY runs, malformed reply codes, unsolicited
//! packets (a reply after a command covered by an `NR_*` flag, detected before the next
//! command is written, or anything after a final answer), and OPTNEG replies outside the
//! offer. Every wait is bounded by [`Profile::timeout`] (10 s by default), so a hung filter
//! fails with [`ClientError::Timeout`] instead of hanging the caller.
//!
//! # How modifications are applied
//!
//! [`Outcome::delivered`] models the MTA's header list and envelope; the rules follow what
//! Postfix 3.7 and Sendmail 8.17 do (§4.3):
//!
//! * **Leading space.** Unless `HDR_LEADSPC` was negotiated the MTA puts one space after the
//!   colon of every added, inserted or changed header; with it, the value is stored as sent.
//!   [`DeliveredHeader::value`] and [`Delivered::header`] give everything after the colon,
//!   untrimmed, so a caller sees whether the space is there.
//! * **ADDHEADER** appends after the last header.
//! * **CHGHEADER** addresses the *n*-th header of that name (1-based, case-insensitive;
//!   index 0 counts as 1) among the headers the filter could see: the message's headers and
//!   those added earlier in the same end of message, not the MTA's hidden `Received:`. An
//!   empty value deletes the header; deleting one that does not exist does nothing; a
//!   non-empty value past the last instance appends a new header. With the Postfix profile a
//!   deleted header leaves the list, so later indexes of that name shift down within the same
//!   end of message; with the Sendmail profile it is only marked deleted and indexes stay put.
//! * **INSHEADER** index 0 is the top; *n* places the header after the *n*-th entry of the
//!   MTA's list; past the end appends. With the Postfix profile the list starts with
//!   Postfix's own `Received:` header (`Received: from HELO (HOST [ADDR]) by HOSTNAME
//!   (Postfix) with ESMTP id QUEUEID`), which the filter never receives but which is counted
//!   and delivered ([`Profile::hidden_received`]). The Sendmail profile has no such header
//!   (where Sendmail really inserts is uncertain, §9).
//! * **CHGFROM** replaces the sender and its parameters (split at spaces). Postfix really
//!   honours only `RET` and `ENVID`; the model keeps them all.
//! * **ADDRCPT** / **`ADDRCPT_PAR`** append a recipient (with its parameters).
//! * **DELRCPT** removes every recipient whose address matches, comparing with angle
//!   brackets stripped and the domain case-insensitively.
//! * **REPLBODY** replaces the body with the concatenated run. Real MTAs store lines with LF
//!   and send CRLF on delivery; the model keeps the body with CRLF line ends (a bare LF in the
//!   replacement becomes CRLF), the same form as the body sent to the filter.
//! * **QUARANTINE** does not change the message; the reason lands in
//!   [`Outcome::quarantined`] (Postfix itself discards the text).
//!
//! Modifications are applied only when the end-of-message verdict is CONTINUE or ACCEPT.
//!
//! [`Delivered::header`]: crate::client::Delivered::header
//! [`DeliveredHeader::value`]: crate::client::DeliveredHeader::value
//! [`Outcome::delivered`]: crate::client::Outcome::delivered
//! [`Outcome::quarantined`]: crate::client::Outcome::quarantined
//! [`Profile::hidden_received`]: crate::client::Profile::hidden_received
//! [`Profile::postfix`]: crate::client::Profile::postfix
//! [`Profile::sendmail`]: crate::client::Profile::sendmail

mod connection;
mod delivery;
mod driver;
mod error;
mod io;
mod message;
mod profile;
mod reply;
mod socket;

pub use connection::MilterClient;
pub use delivery::{Delivered, DeliveredRecipient};
pub use driver::Outcome;
pub use error::{ClientError, NegotiationError};
pub use message::{DeliveredHeader, Envelope};
pub use profile::{MtaKind, Profile, QueueIdTiming};
pub use reply::{EndOfMessage, Modification, Negotiated, Reply};
pub use socket::{MilterStream, connect};
