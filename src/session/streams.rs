//! Recipients, headers and body chunks: the parts of a message that come many at a time.
//!
//! One scheme for each: await the next one (`next_recipient`, `next_header`,
//! `next_body_chunk`), which leaves the session free for edits between items, or look at
//! what has arrived so far (`recipients`, `headers`).

use bytes::Bytes;

use super::api::{Arrived, Session};
use super::edits::HeaderHandle;
use super::error::{Error, Misuse, Unavailable};
use super::event::Address;
use super::mailbox::{EventReply, SharedMailbox, lock};
use super::phase::Phase;
use super::text::Text;
use crate::proto::{CommandKind, Events, ReplyCode};

impl Session {
    /// The next recipient, or `None` once the MTA has moved past RCPT.
    ///
    /// Fails with [`Misuse::PhasePassed`](super::Misuse::PhasePassed) when called after headers began. A call that was
    /// already waiting when the MTA moved on ends with `None`, whatever came next (DATA, or
    /// a header when DATA is not sent).
    pub async fn next_recipient(&mut self) -> Result<Option<Recipient>, Error> {
        if self.phase >= Phase::Header {
            return Err(Error::phase_passed(Phase::Rcpt, self.phase));
        }
        loop {
            if let Some(arrived) = self.recipients.get(self.rcpt_cursor) {
                let recipient = self.recipient(arrived);
                self.rcpt_cursor += 1;
                return Ok(Some(recipient));
            }
            if self.phase > Phase::Rcpt {
                return Ok(None);
            }
            self.next_event(Phase::Rcpt).await?;
        }
    }

    /// The next unknown SMTP command, or `None` when the conversation moves on first.
    ///
    /// Returns at once a command that arrived and was not returned yet; otherwise waits
    /// until one arrives, or until a command of the ordered flow (HELO, MAIL, RCPT, DATA…)
    /// arrives first, which gives `None` ([`Session::phase`] tells where the conversation
    /// is). From DATA on no SMTP command can arrive before end of message, so it gives
    /// `None` at once. To answer every unknown command before the message content:
    ///
    /// ```
    /// use async_milter::{Error, Phase, ReplyCode, Session, Verdict};
    ///
    /// async fn no_extensions(session: &mut Session) -> Result<Verdict, Error> {
    ///     while session.phase() < Phase::Data {
    ///         if let Some(command) = session.next_unknown().await? {
    ///             command.reply(ReplyCode::permanent(502, "5.5.1", "not here")?)?;
    ///         }
    ///     }
    ///     Ok(Verdict::Continue)
    /// }
    /// ```
    ///
    /// The filter must declare [`Events::UNKNOWN`](crate::Events::UNKNOWN) (and, to
    /// answer, list it in [`Needs::answers`](crate::Needs::answers)); otherwise, or below
    /// protocol version 3, it fails with
    /// [`Unavailable::UnknownNotSent`](super::Unavailable::UnknownNotSent).
    pub async fn next_unknown(&mut self) -> Result<Option<UnknownCommand>, Error> {
        if !self.conn.agreed.sends(Events::UNKNOWN) {
            return Err(Error::Unavailable(Unavailable::UnknownNotSent));
        }
        let flow_before = self.flow_commands;
        loop {
            if let Some((line, seq)) = self.unknown.get(self.unknown_cursor) {
                let command = self.unknown_command(line, *seq);
                self.unknown_cursor += 1;
                return Ok(Some(command));
            }
            if self.flow_commands != flow_before || self.phase >= Phase::Data {
                return Ok(None);
            }
            let wanted = self.phase.max(Phase::Connect);
            self.next_event(wanted).await?;
        }
    }

    fn recipient(&self, arrived: &Arrived) -> Recipient {
        Recipient {
            address: arrived.address.clone(),
            seq: arrived.seq,
            rejected: arrived.rejected,
            mailbox: self.mailbox.clone(),
            answerable: self.conn.agreed.expects_reply(CommandKind::Rcpt)
                && self.answers.contains(Events::RCPT),
        }
    }

    fn unknown_command(&self, line: &Text, seq: u64) -> UnknownCommand {
        UnknownCommand {
            line: line.clone(),
            seq,
            mailbox: self.mailbox.clone(),
            answerable: self.conn.agreed.expects_reply(CommandKind::Unknown)
                && self.answers.contains(Events::UNKNOWN),
        }
    }

    /// A handle to the newest recipient (the hook style's RCPT); every handle stays
    /// answerable only while its command is the newest.
    pub(crate) fn newest_recipient(&mut self) -> Recipient {
        self.rcpt_cursor = self.recipients.len();
        match self.recipients.last() {
            Some(arrived) => self.recipient(arrived),
            None => unreachable!("called after a RCPT was applied"),
        }
    }

    /// A handle to the newest unknown command.
    pub(crate) fn newest_unknown(&mut self) -> UnknownCommand {
        self.unknown_cursor = self.unknown.len();
        match self.unknown.last() {
            Some((line, seq)) => self.unknown_command(line, *seq),
            None => unreachable!("called after an UNKNOWN was applied"),
        }
    }

    /// The next header, or `None` at end of headers.
    ///
    /// Fails with [`Misuse::PhasePassed`](super::Misuse::PhasePassed) when called once the body has begun. A call that
    /// was already waiting when the headers ended returns `None`, whatever came next (end
    /// of headers, or a body chunk or end of message when those are not sent).
    pub async fn next_header(&mut self) -> Result<Option<HeaderField>, Error> {
        if self.phase >= Phase::Body {
            return Err(Error::phase_passed(Phase::Header, self.phase));
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

/// One recipient; while it is the newest, the filter can refuse it without ending the
/// message.
#[derive(Debug, Clone)]
pub struct Recipient {
    address: Address,
    seq: u64,
    rejected: bool,
    mailbox: SharedMailbox,
    answerable: bool,
}

/// Records the filter's reply to command `seq`, if the filter may answer it and it is still
/// the newest command.
fn answer_command(
    mailbox: &SharedMailbox,
    seq: u64,
    answerable: Result<(), Misuse>,
    reply: EventReply,
) -> Result<(), Error> {
    answerable?;
    if lock(mailbox).set_reply(seq, reply) {
        Ok(())
    } else {
        Err(Error::Misuse(Misuse::StaleHandle))
    }
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

    /// Whether the MTA rejected this recipient itself before the filter saw it (its
    /// `{rcpt_mailer}` macro is `error`; `{rcpt_host}` holds the status code and
    /// `{rcpt_addr}` the text, readable with [`Session::macro_str`] while it is the newest
    /// recipient). Such recipients arrive only for a filter that asked for them with
    /// [`ProtocolFlags::RCPT_REJECTED`](crate::ProtocolFlags::RCPT_REJECTED) in
    /// [`Needs::options`](crate::Needs::options); they stay rejected whatever the filter
    /// answers.
    #[must_use]
    pub fn is_rejected(&self) -> bool {
        self.rejected
    }

    fn answer(&self, reply: EventReply) -> Result<(), Error> {
        let answerable = if self.answerable {
            Ok(())
        } else {
            Err(Misuse::Unanswerable(Phase::Rcpt))
        };
        answer_command(&self.mailbox, self.seq, answerable, reply)
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

// ===== unknown commands =====

/// An SMTP command the MTA did not recognise; while it is the newest command, the filter
/// can refuse it (the refusal changes only the SMTP reply to that command).
#[derive(Debug, Clone)]
pub struct UnknownCommand {
    line: Text,
    seq: u64,
    mailbox: SharedMailbox,
    answerable: bool,
}

impl UnknownCommand {
    /// The command as the MTA sent it: Postfix sends the command word only (`XFOO`),
    /// Sendmail the whole line (`XFOO bar baz`).
    #[must_use]
    pub fn line(&self) -> &Text {
        &self.line
    }

    fn answer(&self, reply: EventReply) -> Result<(), Error> {
        let answerable = if self.answerable {
            Ok(())
        } else {
            Err(Misuse::UnknownUnanswerable)
        };
        answer_command(&self.mailbox, self.seq, answerable, reply)
    }

    /// Refuses the command with the MTA's default 5xx reply.
    pub fn reject(&self) -> Result<(), Error> {
        self.answer(EventReply::Reject)
    }

    /// Refuses the command with the MTA's default 4xx reply.
    pub fn tempfail(&self) -> Result<(), Error> {
        self.answer(EventReply::Tempfail)
    }

    /// Refuses the command with a custom reply (4xx or 5xx).
    pub fn reply(&self, reply: ReplyCode) -> Result<(), Error> {
        self.answer(EventReply::Reply(reply))
    }
}

// ===== headers =====

/// One header as the MTA sent it, with a stable handle for edits.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeaderField {
    /// The name, without the colon.
    pub name: Text,
    /// The value without the space after the colon, the same whether or not
    /// `HEADER_LEADING_SPACE` was negotiated; folded lines are joined by LF (each
    /// continuation keeps its own leading whitespace).
    pub value: Text,
    /// Refers to this header in [`Session::change_header`], [`Session::delete_header`] and
    /// [`Session::insert_header`].
    pub handle: HeaderHandle,
    /// Everything after the colon exactly as sent, when the MTA sent it exactly
    /// (`HEADER_LEADING_SPACE` negotiated).
    exact: Option<Text>,
}

impl HeaderField {
    /// A header from a HEADER packet's value: `exact` when `HEADER_LEADING_SPACE` was
    /// negotiated (the value keeps its leading whitespace), else the MTA removed one space.
    pub(crate) fn new(name: Text, sent: Text, exact: bool, handle: HeaderHandle) -> Self {
        if !exact {
            return Self {
                name,
                value: sent,
                handle,
                exact: None,
            };
        }
        let value = match sent.as_bytes().first() {
            Some(b' ') => sent.slice_from(1),
            _ => sent.clone(),
        };
        Self {
            name,
            value,
            handle,
            exact: Some(sent),
        }
    }

    /// Appends the field as it stands in the message: `Name:`, the value with the space
    /// after the colon (exactly as sent when `HEADER_LEADING_SPACE` was negotiated, else
    /// the one space the MTA removed), folded lines with CRLF, and a closing CRLF. What
    /// DKIM, ARC and MIME code hash or parse.
    ///
    /// ```
    /// # use async_milter::session::HeaderField;
    /// # fn show(field: &HeaderField) -> Vec<u8> {
    /// let mut raw = Vec::new();
    /// field.write_raw(&mut raw); // b"Subject: hello\r\n\tworld\r\n" for a folded Subject
    /// # raw }
    /// ```
    pub fn write_raw(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.name.as_bytes());
        out.push(b':');
        let value = if let Some(exact) = &self.exact {
            exact.as_bytes()
        } else {
            if !self.value.is_empty() {
                out.push(b' ');
            }
            self.value.as_bytes()
        };
        for (i, line) in value.split(|&b| b == b'\n').enumerate() {
            if i > 0 {
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
        }
        out.extend_from_slice(b"\r\n");
    }
}
