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
//! The client itself lives in [`crate::client`] (feature `client`), which documents the
//! profiles, what the client refuses, and how modifications are applied; this module
//! re-exports it and adds [`in_process`], which serves a filter of this crate in the same
//! process. It needs the `testing` cargo feature (which turns on `client`), off by default;
//! a filter's own tests turn it on with a dev-dependency:
//!
//! ```toml
//! [dev-dependencies]
//! async-milter = { version = "0.1", features = ["testing"] }
//! ```
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
//! [`MilterClient::send_message`]: crate::testing::MilterClient::send_message
//! [`MilterClient`]: crate::testing::MilterClient
//! [`MilterClient::new`]: crate::testing::MilterClient::new
//! [`connect`]: crate::testing::connect
//! [`in_process`]: crate::testing::in_process
//! [`Delivered`]: crate::testing::Delivered
//! [`Outcome`]: crate::testing::Outcome

mod in_process;

pub use crate::client::{
    ClientError, Delivered, DeliveredHeader, DeliveredRecipient, EndOfMessage, Envelope,
    MilterClient, MilterStream, Modification, MtaKind, Negotiated, NegotiationError, Outcome,
    Profile, QueueIdTiming, Reply, connect,
};
pub use in_process::{in_process, in_process_with};
