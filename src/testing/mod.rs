//! The MTA side of the protocol, for testing filters: a client that drives any milter over a
//! stream, behaving like Postfix or Sendmail.
//!
//! Use it to unit-test a filter without a mail server: get a [`MilterClient`] for the filter
//! ([`connect`] to a socket spec such as `inet:7357@127.0.0.1` or `unix:/path`,
//! [`in_process`] for a filter of this crate, or [`MilterClient::new`] over any stream such
//! as `async_std::os::unix::net::UnixStream::pair()`), negotiate, and either step through
//! the commands one by one or hand [`MilterClient::send_message`] a whole message. The
//! [`Outcome`] holds every reply, the modifications, the verdict, and the message as the MTA
//! would deliver it ([`Delivered`]).
//!
//! This module needs the `testing` cargo feature, off by default; a filter's own tests turn
//! it on with a dev-dependency:
//!
//! ```toml
//! [dev-dependencies]
//! async-milter = { version = "0.1", features = ["testing"] }
//! ```
//!
//! The client is generic over any `futures::io::{AsyncRead, AsyncWrite} + Unpin` stream;
//! only the timeouts, [`connect`] and [`in_process`] use async-std, and those work under any
//! executor.
//!
//! # Example
//!
//! A filter listening on a socket (for example one served by this crate) is tested like this:
//!
//! ```no_run
//! use async_milter::proto::Family;
//! use async_milter::testing::{Envelope, Profile, Reply, connect};
//!
//! # async_std::task::block_on(async {
//! let mut client = connect("inet:7357@127.0.0.1", Profile::sendmail()).await?;
//! client.negotiate().await?;
//! client.connect("client.example.com", Family::Inet, 50000, "192.0.2.1").await?;
//! client.helo("client.example.com").await?;
//! let envelope = Envelope::new("<alice@example.com>", &["<bob@example.net>"]);
//! let outcome = client.send_message(&envelope, b"Subject: hi\r\n\r\nHello\r\n").await?;
//! assert_eq!(outcome.verdict, Reply::Accept);
//! assert_eq!(outcome.delivered.unwrap().header("X-Scanned"), Some(" clean"));
//! client.quit().await?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # });
//! ```
//!
//! The same over an in-memory stream, here against a filter scripted with [`crate::proto`]
//! that adds a header at end of message and accepts:
//!
//! ```
//! use async_milter::proto::Family;
//! use async_milter::testing::{Envelope, MilterClient, Modification, Profile, Reply};
//! use async_std::os::unix::net::UnixStream;
//! # use async_milter::proto::{Actions, Command, FrameDecoder, OptNeg, OptNegReply, ProtocolFlags, Response};
//! # use futures::{AsyncReadExt, AsyncWriteExt};
//! #
//! # /// A scripted filter: continue everywhere, add a header and accept at end of message.
//! # async fn filter(mut stream: UnixStream) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! #     let mut decoder = FrameDecoder::new();
//! #     let mut buf = [0; 4096];
//! #     loop {
//! #         while let Some(frame) = decoder.decode()? {
//! #             let mut out = Vec::new();
//! #             match Command::decode_frame(&frame)? {
//! #                 Command::OptNeg(_) => {
//! #                     let options = OptNeg { version: 6, actions: Actions::ADD_HEADERS, protocol: ProtocolFlags::EMPTY };
//! #                     Response::OptNeg(OptNegReply::new(options, &[])).encode(&mut out)?;
//! #                 }
//! #                 Command::EndOfMessage(_) => {
//! #                     Response::AddHeader { name: "X-Scanned".into(), value: "clean".into() }.encode(&mut out)?;
//! #                     Response::Accept.encode(&mut out)?;
//! #                 }
//! #                 Command::Quit => return Ok(()),
//! #                 command if command.kind().expects_reply() => Response::Continue.encode(&mut out)?,
//! #                 _ => {}
//! #             }
//! #             stream.write_all(&out).await?;
//! #         }
//! #         let read = stream.read(&mut buf).await?;
//! #         if read == 0 { return Ok(()) }
//! #         decoder.push(&buf[..read]);
//! #     }
//! # }
//! # async_std::task::block_on(async {
//! let (mta_side, filter_side) = UnixStream::pair()?;
//! let filter = async_std::task::spawn(filter(filter_side));
//!
//! let mut client = MilterClient::new(mta_side, Profile::postfix());
//! client.negotiate().await?;
//! assert_eq!(
//!     client.connect("client.example.com", Family::Inet, 50000, "192.0.2.1").await?,
//!     Reply::Continue
//! );
//! client.helo("client.example.com").await?;
//! let envelope = Envelope::new("<alice@example.com>", &["<bob@example.net>"]);
//! let outcome = client.send_message(&envelope, b"Subject: hi\n\nHello\n").await?;
//! assert_eq!(outcome.verdict, Reply::Accept);
//! assert_eq!(
//!     outcome.modifications,
//!     [Modification::AddHeader { name: "X-Scanned".into(), value: "clean".into() }]
//! );
//! let delivered = outcome.delivered.expect("accepted");
//! // The MTA puts a space after the colon (no HDR_LEADSPC was negotiated).
//! assert_eq!(delivered.header("X-Scanned"), Some(" clean"));
//! // Postfix puts its own Received: header on top; the filter never saw it.
//! assert_eq!(delivered.headers[0].name, "Received");
//! assert_eq!(delivered.body, b"Hello\r\n");
//! client.quit().await?;
//! filter.await.expect("filter ran");
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! # }).expect("example runs");
//! ```
//!
//! # Profiles
//!
//! [`Profile::postfix`] and [`Profile::sendmail`] reproduce the MTA behaviours a portable
//! filter must survive (§6 of the protocol notes): which MACRO packets precede which
//! commands and with which default values, the ABORT pattern, the `IPv6:` address prefix,
//! the UNKNOWN payload, what happens after a connection-level verdict, and which answers are
//! allowed where. Every field is public, so a test can change the offer (version 2 to 6,
//! actions, protocol flags), the macro lists and values, the queue ID, the body chunk size
//! and the timeout. Macro lists the filter requests in its OPTNEG reply are honoured as the
//! MTA would ([`Profile`] describes the per-MTA rules).
//!
//! # Strictness
//!
//! The client treats as errors ([`ClientError`]) what a real MTA would treat as a filter
//! failure, plus a few things only one MTA tolerates, so that a filter passing these tests is
//! portable: a response not allowed at that point (a modification or QUARANTINE before end
//! of message, SKIP except after BODY with `SKIP` negotiated, DISCARD at CONNECT, HELO or
//! UNKNOWN, SHUTDOWN or PROGRESS before end of message with Sendmail), a modification whose
//! action was not negotiated, interrupted REPLBODY runs, malformed reply codes, unsolicited
//! packets (a reply after a command covered by an `NR_*` flag, detected before the next
//! command is written, or anything after a final answer), and OPTNEG replies outside the
//! offer. Every wait is bounded by [`Profile::timeout`] (10 s by default), so a hung filter
//! fails the test with [`ClientError::Timeout`] instead of hanging it.
//!
//! # How modifications are applied
//!
//! [`Outcome::delivered`] models the MTA's header list and envelope; the rules follow what
//! Postfix 3.7 and Sendmail 8.17 do (§4.3):
//!
//! * **Leading space.** Unless `HDR_LEADSPC` was negotiated the MTA puts one space after the
//!   colon of every added, inserted or changed header; with it, the value is stored as sent.
//!   [`DeliveredHeader::value`] and [`Delivered::header`] give everything after the colon,
//!   untrimmed, so a test sees whether the space is there.
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
//! [`MilterClient::send_message`]: crate::testing::MilterClient::send_message
//! [`ClientError::Timeout`]: crate::testing::ClientError::Timeout
//! [`ClientError`]: crate::testing::ClientError
//! [`MilterClient`]: crate::testing::MilterClient
//! [`MilterClient::new`]: crate::testing::MilterClient::new
//! [`connect`]: crate::testing::connect
//! [`in_process`]: crate::testing::in_process
//! [`Delivered`]: crate::testing::Delivered
//! [`Delivered::header`]: crate::testing::Delivered::header
//! [`DeliveredHeader::value`]: crate::testing::DeliveredHeader::value
//! [`Outcome::delivered`]: crate::testing::Outcome::delivered
//! [`Outcome::quarantined`]: crate::testing::Outcome::quarantined
//! [`Outcome`]: crate::testing::Outcome
//! [`Profile::hidden_received`]: crate::testing::Profile::hidden_received
//! [`Profile::postfix`]: crate::testing::Profile::postfix
//! [`Profile::sendmail`]: crate::testing::Profile::sendmail
//! [`Profile::timeout`]: crate::testing::Profile::timeout
//! [`Profile`]: crate::testing::Profile

mod client;
mod delivery;
mod driver;
mod error;
mod in_process;
mod io;
mod message;
mod profile;
mod reply;
mod socket;

pub use client::MilterClient;
pub use delivery::{Delivered, DeliveredRecipient};
pub use driver::Outcome;
pub use error::{ClientError, NegotiationError};
pub use in_process::{in_process, in_process_with};
pub use message::{DeliveredHeader, Envelope};
pub use profile::{MtaKind, Profile, QueueIdTiming};
pub use reply::{EndOfMessage, Modification, Negotiated, Reply};
pub use socket::{MilterStream, connect};
