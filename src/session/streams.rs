//! Recipients, headers and body chunks: the parts of a message that come many at a time.
//!
//! Each can be read with a `Session` method (`next_recipient`, `next_header`,
//! `next_body_chunk`), which leaves the session free for edits between items, or through
//! the stream types here.

use bytes::Bytes;

use super::api::Session;
use super::edits::HeaderHandle;
use super::error::Error;
use super::event::Address;
use super::mailbox::{EventReply, SharedMailbox, lock};
use super::phase::Phase;
use super::text::Text;
use crate::proto::{CommandKind, ReplyCode};

impl Session {
    /// The next recipient, or `None` once the MTA has moved past RCPT.
    ///
    /// Fails with [`Error::PhasePassed`] when called after headers began. A call that was
    /// already waiting when the MTA moved on ends with `None`, whatever came next (DATA, or
    /// a header when DATA is not sent).
    pub async fn next_recipient(&mut self) -> Result<Option<Recipient>, Error> {
        if self.phase >= Phase::Header {
            return Err(Error::PhasePassed {
                wanted: Phase::Rcpt,
                current: self.phase,
            });
        }
        loop {
            if let Some((address, seq)) = self.recipients.get(self.rcpt_cursor) {
                self.rcpt_cursor += 1;
                return Ok(Some(Recipient {
                    address: address.clone(),
                    seq: *seq,
                    mailbox: self.mailbox.clone(),
                    answerable: self.conn.agreed.expects_reply(CommandKind::Rcpt),
                }));
            }
            if self.phase > Phase::Rcpt {
                return Ok(None);
            }
            self.next_event(Phase::Rcpt).await?;
        }
    }

    /// The next header, or `None` at end of headers.
    ///
    /// Fails with [`Error::PhasePassed`] when called once the body has begun. A call that
    /// was already waiting when the headers ended returns `None`, whatever came next (end
    /// of headers, or a body chunk or end of message when those are not sent).
    pub async fn next_header(&mut self) -> Result<Option<HeaderField>, Error> {
        if self.phase >= Phase::Body {
            return Err(Error::PhasePassed {
                wanted: Phase::Header,
                current: self.phase,
            });
        }
        loop {
            if let Some(field) = self.headers.get(self.header_cursor) {
                self.header_cursor += 1;
                return Ok(Some(field.clone()));
            }
            if self.phase > Phase::Header {
                return Ok(None);
            }
            self.next_event(Phase::Header).await?;
        }
    }

    /// The next body chunk, or `None` at end of message.
    ///
    /// The chunk is a shared slice of the read buffer: no copy, no allocation. Dropping it
    /// before asking for the next one lets the buffer be reused in place.
    pub async fn next_body_chunk(&mut self) -> Result<Option<Bytes>, Error> {
        loop {
            if self.body_chunk_fresh {
                self.body_chunk_fresh = false;
                return Ok(self.body_chunk.take());
            }
            if self.phase >= Phase::EndOfMessage {
                return Ok(None);
            }
            self.next_event(Phase::Body).await?;
        }
    }
}

// ===== recipients =====

/// Recipients as the MTA announces them. See [`Session::recipients`].
#[derive(Debug)]
pub struct Recipients<'s> {
    session: &'s mut Session,
}

impl<'s> Recipients<'s> {
    pub(crate) fn new(session: &'s mut Session) -> Self {
        Self { session }
    }

    /// The next recipient; see [`Session::next_recipient`].
    pub async fn next(&mut self) -> Result<Option<Recipient>, Error> {
        self.session.next_recipient().await
    }
}

/// One recipient; while it is the newest, the filter can refuse it without ending the
/// message.
#[derive(Debug, Clone)]
pub struct Recipient {
    address: Address,
    seq: u64,
    mailbox: SharedMailbox,
    answerable: bool,
}

impl Recipient {
    /// The address as sent in RCPT (normally in angle brackets).
    #[must_use]
    pub fn address(&self) -> &Text {
        &self.address.address
    }

    /// The address and its ESMTP arguments.
    #[must_use]
    pub fn envelope(&self) -> &Address {
        &self.address
    }

    fn answer(&self, reply: EventReply) -> Result<(), Error> {
        if !self.answerable {
            return Err(Error::Unanswerable(Phase::Rcpt));
        }
        if lock(&self.mailbox).set_reply(self.seq, reply) {
            Ok(())
        } else {
            Err(Error::StaleHandle)
        }
    }

    /// Rejects this recipient with the MTA's default 5xx reply.
    pub fn reject(&self) -> Result<(), Error> {
        self.answer(EventReply::Reject)
    }

    /// Fails this recipient temporarily with the MTA's default 4xx reply.
    pub fn tempfail(&self) -> Result<(), Error> {
        self.answer(EventReply::Tempfail)
    }

    /// Refuses this recipient with a custom reply (4xx or 5xx).
    pub fn reply(&self, reply: ReplyCode) -> Result<(), Error> {
        self.answer(EventReply::Reply(reply))
    }
}

// ===== headers =====

/// One header: name and value as sent (one leading space removed unless leading space
/// was negotiated; folded lines joined by LF), with a stable handle for edits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderField {
    /// The name, without the colon.
    pub name: Text,
    /// The value.
    pub value: Text,
    /// Refers to this header in [`Session::change_header`], [`Session::delete_header`] and
    /// [`Session::insert_header`].
    pub handle: HeaderHandle,
}

/// Headers as they arrive. See [`Session::headers`].
#[derive(Debug)]
pub struct Headers<'s> {
    session: &'s mut Session,
    only: Vec<String>,
}

impl<'s> Headers<'s> {
    pub(crate) fn new(session: &'s mut Session) -> Self {
        Self {
            session,
            only: Vec::new(),
        }
    }

    /// Yields only headers with one of these names (case-insensitive); the others pass by.
    #[must_use]
    pub fn only<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.only = names.into_iter().map(Into::into).collect();
        self
    }

    /// The next wanted header; see [`Session::next_header`].
    pub async fn next(&mut self) -> Result<Option<HeaderField>, Error> {
        while let Some(field) = self.session.next_header().await? {
            if self.only.is_empty() || self.only.iter().any(|n| field.name.eq_ignore_ascii_case(n))
            {
                return Ok(Some(field));
            }
        }
        Ok(None)
    }
}

// ===== body =====

/// Body chunks as they arrive. See [`Session::body`].
#[derive(Debug)]
pub struct Body<'s> {
    session: &'s mut Session,
    current: Option<Bytes>,
}

impl<'s> Body<'s> {
    pub(crate) fn new(session: &'s mut Session) -> Self {
        Self {
            session,
            current: None,
        }
    }

    /// The next chunk, borrowed from the read buffer (CRLF line ends; boundaries fall
    /// anywhere), or `None` at end of message. It stays valid until the next call.
    pub async fn next(&mut self) -> Result<Option<&[u8]>, Error> {
        // Hand the previous chunk's buffer back before waiting for the next one.
        self.current = None;
        self.current = self.session.next_body_chunk().await?;
        Ok(self.current.as_deref())
    }
}
