//! `Session`: what a filter holds while it looks at one message.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;

use super::connection_data::ConnectionData;
use super::edits::{EditQueue, EditStorage, HeaderHandle, HeaderPosition};
use super::error::{Error, Misuse, Unavailable};
use super::event::{Address, Client, Event};
use super::macros::MacroStore;
use super::mailbox::{SharedMailbox, lock};
use super::phase::Phase;
use super::state::ConnectionState;
use super::streams::{HeaderField, Recipient, UnknownCommand};
use super::text::Text;
use crate::proto::{Actions, Agreed, Events, MacroStage, ProtocolFlags};

/// One message's view of a milter connection, handed to the filter.
///
/// Await the parts of the message in the order the MTA sends them ([`Session::helo`],
/// [`Session::envelope_from`], [`Session::next_recipient`], [`Session::next_header`],
/// [`Session::next_body_chunk`], [`Session::end_of_message`]), or look at what has arrived
/// ([`Session::recipients`], [`Session::headers`]); events the filter does not await are
/// answered for it. Connection data (client, HELO, connect-stage macros) stays the same
/// for every message of the connection; message data starts afresh with each call.
///
/// Edits ([`Session::add_header`] and the rest) are checked when queued and sent at end of
/// message, before the verdict.
#[derive(Debug)]
pub struct Session {
    pub(crate) mailbox: SharedMailbox,
    pub(crate) conn: Arc<ConnectionData>,
    pub(crate) message: u64,
    pub(crate) phase: Phase,
    pub(crate) sender: Option<Address>,
    /// Recipients in arrival order, with the sequence number of their RCPT command.
    pub(crate) recipients: Vec<Arrived>,
    pub(crate) rcpt_cursor: usize,
    /// Unknown SMTP commands of this call, with the sequence number of each.
    pub(crate) unknown: Vec<(Text, u64)>,
    pub(crate) unknown_cursor: usize,
    /// How many commands of the ordered flow (CONNECT to end of message) were applied.
    pub(crate) flow_commands: u64,
    pub(crate) headers: Vec<HeaderField>,
    pub(crate) header_cursor: usize,
    pub(crate) body_chunk: Option<Bytes>,
    pub(crate) body_chunk_fresh: bool,
    pub(crate) macros: MacroStore,
    pub(crate) edits: EditQueue,
    /// Bytes of header names and values received for the message.
    pub(crate) header_bytes: usize,
    /// Set when the message has more header than the connection allows; every await fails.
    pub(crate) header_overflow: Option<HeaderOverflow>,
    /// The connection state, taken from the mailbox on first use, handed back on drop.
    pub(crate) state: Option<ConnectionState>,
    /// The events this filter may answer (its declared answers).
    pub(crate) answers: Events,
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(state) = self.state.take() {
            lock(&self.mailbox).return_state(state);
        }
    }
}

/// One command as [`Session::next_arrival`] hands it over.
#[derive(Debug)]
pub(crate) enum Arrival {
    Connect(Client),
    Helo(Text),
    Mail(Address),
    Rcpt(Recipient),
    Data,
    Header(HeaderField),
    EndOfHeaders,
    Body(Bytes),
    /// With the data libmilter allows in the end-of-message packet, as a last body chunk.
    EndOfMessage(Option<Bytes>),
    Unknown(UnknownCommand),
}

/// How [`Session::next_arrival`] builds its answer for one event.
enum Taken {
    Now(Arrival),
    Recipient,
    Header,
    Body,
    EndOfMessage,
    Unknown,
}

/// Which header limit a message went over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeaderOverflow {
    Count,
    Bytes,
}

impl Session {
    /// The error every await returns once the message went over a header limit.
    fn header_limit_error(&self, overflow: HeaderOverflow) -> Error {
        let limits = self.conn.header_limits;
        Error::Unavailable(match overflow {
            HeaderOverflow::Count => Unavailable::TooManyHeaders(limits.count),
            HeaderOverflow::Bytes => Unavailable::HeadersTooLarge(limits.bytes),
        })
    }
}

/// A recipient as it arrived.
#[derive(Debug)]
pub(crate) struct Arrived {
    pub(crate) address: Address,
    /// The sequence number of its RCPT command.
    pub(crate) seq: u64,
    /// The MTA rejected it already (`{rcpt_mailer}` is `error`).
    pub(crate) rejected: bool,
}

/// What a finished filter call leaves for the driver.
pub(crate) struct Finished {
    pub(crate) edits: EditQueue,
    pub(crate) recycled: Recycled,
}

/// Storage a finished session hands to the next message's, emptied, so that steady state
/// does not allocate the recipient and header lists and the macro blocks anew.
#[derive(Debug, Default)]
pub(crate) struct Recycled {
    recipients: Vec<Arrived>,
    headers: Vec<HeaderField>,
    macros: MacroStore,
    edits: EditStorage,
}

impl Recycled {
    /// Adds the storage of the last message's edit queue, back from the connection core.
    pub(crate) fn with_edits(mut self, edits: EditStorage) -> Self {
        self.edits = edits;
        self
    }
}

impl Session {
    pub(crate) fn new(
        mailbox: SharedMailbox,
        conn: Arc<ConnectionData>,
        message: u64,
        phase: Phase,
        recycled: Recycled,
    ) -> Self {
        let allowed = conn.agreed.options.actions;
        let exact_values = conn
            .agreed
            .options
            .protocol
            .contains(ProtocolFlags::HEADER_LEADING_SPACE);
        let Recycled {
            mut recipients,
            mut headers,
            mut macros,
            edits,
        } = recycled;
        recipients.clear();
        headers.clear();
        macros.clear();
        Self {
            mailbox,
            conn,
            message,
            phase,
            sender: None,
            recipients,
            rcpt_cursor: 0,
            unknown: Vec::new(),
            unknown_cursor: 0,
            flow_commands: 0,
            headers,
            header_cursor: 0,
            body_chunk: None,
            body_chunk_fresh: false,
            macros,
            edits: EditQueue::with_storage(allowed, edits).with_leading_space(exact_values),
            header_bytes: 0,
            header_overflow: None,
            state: None,
            answers: Events::ALL,
        }
    }

    /// Limits edits to `allowed` and answers to `answers`: what this filter declared, on a
    /// connection whose negotiation may serve several filters.
    pub(crate) fn declared(mut self, allowed: Actions, answers: Events) -> Self {
        self.edits.restrict(allowed);
        self.answers = answers;
        self
    }

    pub(crate) fn finish(mut self) -> Finished {
        // Emptied here, so the message's byte buffers are released as the call ends.
        self.recipients.clear();
        self.headers.clear();
        self.macros.clear();
        Finished {
            edits: std::mem::replace(
                &mut self.edits,
                EditQueue::new(crate::proto::Actions::EMPTY),
            ),
            recycled: Recycled {
                recipients: std::mem::take(&mut self.recipients),
                headers: std::mem::take(&mut self.headers),
                macros: std::mem::take(&mut self.macros),
                // The queue goes to the connection core; its storage comes back through
                // `Recycled::with_edits` when the next call starts.
                edits: EditStorage::default(),
            },
        }
    }

    // ===== connection data =====

    /// The connection's id, as it appears in log lines.
    #[must_use]
    pub fn connection_id(&self) -> u64 {
        self.conn.id
    }

    /// This message's number within its connection, from 1.
    #[must_use]
    pub fn message_number(&self) -> u64 {
        self.message
    }

    /// The filter's state for this whole connection: one value per type, made with
    /// `T::default()` on first use, the same value for every message of the connection,
    /// dropped when the connection closes (put a `Drop` impl on `T` for a close hook).
    ///
    /// ```
    /// use async_milter::{Error, Session, Verdict};
    ///
    /// #[derive(Default)]
    /// struct Seen { messages: u32 }
    ///
    /// async fn at_most_three(session: &mut Session) -> Result<Verdict, Error> {
    ///     let seen = session.connection_state::<Seen>();
    ///     seen.messages += 1;
    ///     if seen.messages > 3 {
    ///         return Ok(Verdict::Tempfail);
    ///     }
    ///     Ok(Verdict::Continue)
    /// }
    /// ```
    pub fn connection_state<T: Default + Send + 'static>(&mut self) -> &mut T {
        let mailbox = &self.mailbox;
        self.state
            .get_or_insert_with(|| lock(mailbox).take_state())
            .get_or_default()
    }

    /// What was negotiated with the MTA.
    #[must_use]
    pub fn negotiated(&self) -> &Agreed {
        &self.conn.agreed
    }

    /// The SMTP client, known from connect on; `None` if the MTA does not send CONNECT.
    #[must_use]
    pub fn client(&self) -> Option<&Client> {
        self.conn.client.as_ref()
    }

    /// The HELO or EHLO name, if one has arrived.
    #[must_use]
    pub fn helo_name(&self) -> Option<&Text> {
        self.conn.helo.as_ref()
    }

    /// Waits for HELO if it is still to come; `None` when the client sent none before MAIL
    /// (or the MTA does not send HELO).
    pub async fn helo(&mut self) -> Result<Option<Text>, Error> {
        loop {
            if let Some(name) = &self.conn.helo {
                return Ok(Some(name.clone()));
            }
            if self.phase > Phase::Helo || !self.conn.agreed.sends(Events::HELO) {
                return Ok(None);
            }
            self.next_event(Phase::Helo).await?;
        }
    }

    /// A macro's value by name (`i`, `{auth_authen}`; braces optional), newest stage first.
    #[must_use]
    pub fn macro_value(&self, name: &str) -> Option<&[u8]> {
        self.macros.get(name).or_else(|| self.conn.macros.get(name))
    }

    /// A macro's value as UTF-8.
    #[must_use]
    pub fn macro_str(&self, name: &str) -> Option<&str> {
        std::str::from_utf8(self.macro_value(name)?).ok()
    }

    /// The macros of one stage, in the order the MTA sent them.
    pub fn macros_of(&self, stage: MacroStage) -> impl Iterator<Item = (&[u8], &[u8])> {
        let store = match stage {
            MacroStage::Connect | MacroStage::Helo => &self.conn.macros,
            _ => &self.macros,
        };
        store.pairs(stage)
    }

    /// The queue id (macro `i`) once the MTA has sent it (Postfix: from the first RCPT or
    /// DATA on; Sendmail: from MAIL on).
    #[must_use]
    pub fn queue_id(&self) -> Option<&str> {
        self.macro_str("i")
    }

    /// Where the conversation is.
    #[must_use]
    pub fn phase(&self) -> Phase {
        self.phase
    }

    // ===== message data =====

    /// Waits for MAIL FROM and returns the sender.
    ///
    /// Fails with [`Misuse::PhasePassed`](super::Misuse::PhasePassed) once headers have
    /// begun, with [`Unavailable::Absent`](super::Unavailable::Absent) when the MTA was asked
    /// not to send MAIL, and with [`Unavailable::Skipped`](super::Unavailable::Skipped) when
    /// it went on to a later command without MAIL.
    pub async fn envelope_from(&mut self) -> Result<Address, Error> {
        let mut waited = false;
        loop {
            if self.phase >= Phase::Header && !waited {
                return Err(Error::phase_passed(Phase::Mail, self.phase));
            }
            if let Some(sender) = &self.sender {
                return Ok(sender.clone());
            }
            if !self.conn.agreed.sends(Events::MAIL) {
                return Err(Error::Unavailable(Unavailable::Absent(Phase::Mail)));
            }
            if self.phase > Phase::Mail {
                return Err(Error::Unavailable(Unavailable::Skipped(Phase::Mail)));
            }
            self.next_event(Phase::Mail).await?;
            waited = true;
        }
    }

    /// The sender, if MAIL has arrived.
    #[must_use]
    pub fn sender(&self) -> Option<&Address> {
        self.sender.as_ref()
    }

    /// The recipients the MTA accepted so far (await more with [`Session::next_recipient`]).
    pub fn recipients(&self) -> impl Iterator<Item = &Address> {
        self.recipients
            .iter()
            .filter(|r| !r.rejected)
            .map(|r| &r.address)
    }

    /// The recipients the MTA itself rejected so far: sent only to a filter that asked for
    /// them with [`ProtocolFlags::RCPT_REJECTED`] in [`Needs::options`](crate::Needs::options)
    /// (see [`Recipient::is_rejected`](super::Recipient::is_rejected)).
    pub fn rejected_recipients(&self) -> impl Iterator<Item = &Address> {
        self.recipients
            .iter()
            .filter(|r| r.rejected)
            .map(|r| &r.address)
    }

    /// The unknown SMTP commands of this message so far (before MAIL: of the connection
    /// since the previous message), as the MTA sent them: Postfix sends the command word
    /// only, Sendmail the whole line. Await more with [`Session::next_unknown`].
    pub fn unknown_commands(&self) -> impl Iterator<Item = &Text> {
        self.unknown.iter().map(|(line, _)| line)
    }

    /// The headers seen so far, in message order (await more with [`Session::next_header`]).
    #[must_use]
    pub fn headers(&self) -> &[HeaderField] {
        &self.headers
    }

    /// The first header seen so far with this name (case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&HeaderField> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
    }

    /// Waits for end of message: everything has arrived and edits can be decided.
    pub async fn end_of_message(&mut self) -> Result<(), Error> {
        while self.phase < Phase::EndOfMessage {
            self.next_event(Phase::EndOfMessage).await?;
        }
        Ok(())
    }

    /// Tells the MTA the filter is still working (PROGRESS), restarting its timeouts
    /// (libmilter's `smfi_progress`). Only meaningful after [`Session::end_of_message`]: the
    /// MTA accepts PROGRESS only while it waits for the end-of-message reply; earlier
    /// requests are dropped. The connection also sends it by itself every
    /// [`ConnectionConfig::progress_interval`](crate::ConnectionConfig::progress_interval);
    /// call this for a keep-alive tied to the filter's own work. It goes out the next time
    /// the filter yields.
    pub fn progress(&mut self) {
        if self.phase == Phase::EndOfMessage {
            lock(&self.mailbox).request_progress();
        }
    }

    // ===== edits =====

    /// Adds a header below every header, on both MTAs (Sendmail's own ADDHEADER would put
    /// it above an existing header of the same name; the library sends what appends).
    pub fn add_header(
        &mut self,
        name: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<(), Error> {
        self.edits.add_header(name.as_ref(), value.as_ref())
    }

    /// Inserts a header at a position relative to the headers the filter was shown.
    ///
    /// The same on Postfix and Sendmail: [`HeaderPosition::Top`] is above every header,
    /// the MTA's own `Received:` included; `Before`/`After` are just above/below that
    /// header; [`HeaderPosition::End`] is below every header. Sendmail placement assumes a
    /// `sendmail.cf` built from the stock cf.m4 (its nine header templates). The MTA is told
    /// apart by Postfix's habit of sending macros before every header and body chunk; a peer
    /// that sends no connect macros at all (miltertest) gets the plain libmilter numbering.
    pub fn insert_header(
        &mut self,
        at: HeaderPosition,
        name: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<(), Error> {
        let before = match at {
            HeaderPosition::End => return self.add_header(name, value),
            HeaderPosition::Top => None,
            HeaderPosition::Before(handle) => Some(self.check_handle(handle)?.position),
            HeaderPosition::After(handle) => Some(self.check_handle(handle)?.position + 1),
        };
        self.edits
            .insert_header(before, name.as_ref(), value.as_ref())
    }

    /// Replaces a header's value.
    pub fn change_header(
        &mut self,
        header: HeaderHandle,
        value: impl AsRef<[u8]>,
    ) -> Result<(), Error> {
        let value = value.as_ref();
        if value.is_empty() {
            return Err(Misuse::EmptyHeaderValue.into());
        }
        self.change_or_delete(header, value)
    }

    /// Deletes a header.
    pub fn delete_header(&mut self, header: HeaderHandle) -> Result<(), Error> {
        self.change_or_delete(header, b"")
    }

    fn change_or_delete(&mut self, header: HeaderHandle, value: &[u8]) -> Result<(), Error> {
        let handle = self.check_handle(header)?;
        let seen = self
            .headers
            .get(..=handle.position as usize)
            .ok_or(Error::Misuse(Misuse::StaleHandle))?;
        let name = seen
            .last()
            .map(|h| h.name.clone())
            .ok_or(Error::Misuse(Misuse::StaleHandle))?;
        // CHGHEADER counts headers of the same name (case-insensitive), from 1.
        let same_name = seen
            .iter()
            .filter(|h| h.name.as_bytes().eq_ignore_ascii_case(name.as_bytes()))
            .count();
        let index = u32::try_from(same_name).unwrap_or(u32::MAX);
        self.edits
            .change_header(index, handle.position, name.as_bytes(), value)
    }

    fn check_handle(&self, handle: HeaderHandle) -> Result<HeaderHandle, Error> {
        if handle.message == self.message && (handle.position as usize) < self.headers.len() {
            Ok(handle)
        } else {
            Err(Error::Misuse(Misuse::StaleHandle))
        }
    }

    /// Replaces the body with `body` (CRLF line ends), dropping any earlier replacement.
    pub fn replace_body(&mut self, body: impl AsRef<[u8]>) -> Result<(), Error> {
        self.edits.replace_body(body.as_ref())
    }

    /// Appends a piece to the replacement body, starting one if there is none, so a filter
    /// can rewrite the body chunk by chunk without assembling it.
    pub fn append_body(&mut self, piece: impl AsRef<[u8]>) -> Result<(), Error> {
        self.edits.append_body(piece.as_ref())
    }

    /// Changes the envelope sender, with optional ESMTP arguments (`"RET=HDRS"`; Postfix
    /// honours only `RET` and `ENVID`).
    pub fn change_sender(
        &mut self,
        address: impl AsRef<[u8]>,
        args: Option<&str>,
    ) -> Result<(), Error> {
        self.edits
            .change_from(address.as_ref(), args.map(str::as_bytes))
    }

    /// Adds a recipient, with optional ESMTP arguments (`"NOTIFY=NEVER"`; Postfix honours
    /// only `NOTIFY` and `ORCPT`).
    pub fn add_recipient(
        &mut self,
        address: impl AsRef<[u8]>,
        args: Option<&str>,
    ) -> Result<(), Error> {
        self.edits
            .add_rcpt(address.as_ref(), args.map(str::as_bytes))
    }

    /// Removes a recipient, given as it arrived in RCPT.
    pub fn remove_recipient(&mut self, address: impl AsRef<[u8]>) -> Result<(), Error> {
        self.edits.delete_rcpt(address.as_ref())
    }

    /// Holds the message in quarantine with a reason (Postfix: the hold queue).
    pub fn quarantine(&mut self, reason: impl AsRef<[u8]>) -> Result<(), Error> {
        self.edits.quarantine(reason.as_ref())
    }

    // ===== event plumbing =====

    /// Waits until at least one new event has been applied; `wanted` tells the driver what
    /// the filter waits for.
    pub(crate) async fn next_event(&mut self, wanted: Phase) -> Result<(), Error> {
        poll_fn(|cx| self.poll_event(cx, wanted)).await
    }

    fn poll_event(&mut self, cx: &mut Context<'_>, wanted: Phase) -> Poll<Result<(), Error>> {
        let mut progressed = false;
        loop {
            let event = {
                let mut mailbox = lock(&self.mailbox);
                if mailbox.is_aborted() {
                    return Poll::Ready(Err(Error::Aborted));
                }
                if mailbox.connection_changed(&self.conn) {
                    self.conn = mailbox.connection_data();
                }
                let Some(event) = mailbox.pop() else {
                    // Past the header limit the await fails now: parking would tell the
                    // driver the filter waits, while it goes on to handle the error.
                    if !progressed && self.header_overflow.is_none() {
                        mailbox.park(wanted, cx.waker());
                    }
                    break;
                };
                event
            };
            self.apply(event);
            progressed = true;
        }
        if let Some(overflow) = self.header_overflow {
            return Poll::Ready(Err(self.header_limit_error(overflow)));
        }
        if progressed {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }

    /// Waits for the next command of any kind, applies it (with the macros before it) and
    /// hands it over: the one-event-at-a-time primitive the hook style is built on. `wanted`
    /// tells the driver what the caller waits for, as in [`Session::next_event`].
    pub(crate) async fn next_arrival(&mut self, wanted: Phase) -> Result<Arrival, Error> {
        poll_fn(|cx| self.poll_arrival(cx, wanted)).await
    }

    fn poll_arrival(
        &mut self,
        cx: &mut Context<'_>,
        wanted: Phase,
    ) -> Poll<Result<Arrival, Error>> {
        loop {
            let event = {
                let mut mailbox = lock(&self.mailbox);
                if mailbox.is_aborted() {
                    return Poll::Ready(Err(Error::Aborted));
                }
                if mailbox.connection_changed(&self.conn) {
                    self.conn = mailbox.connection_data();
                }
                if let Some(overflow) = self.header_overflow {
                    // As in `poll_event`: the await fails without parking.
                    drop(mailbox);
                    return Poll::Ready(Err(self.header_limit_error(overflow)));
                }
                let Some(event) = mailbox.pop() else {
                    mailbox.park(wanted, cx.waker());
                    return Poll::Pending;
                };
                event
            };
            // What to hand over, read from the event or, for the parts the session keeps,
            // from the session once the event is applied.
            let taken = match &event {
                Event::Macro { .. } => None,
                Event::Connect(client) => Some(Taken::Now(Arrival::Connect(client.clone()))),
                Event::Helo(name) => Some(Taken::Now(Arrival::Helo(name.clone()))),
                Event::Data => Some(Taken::Now(Arrival::Data)),
                Event::EndOfHeaders => Some(Taken::Now(Arrival::EndOfHeaders)),
                Event::Mail(address) => Some(Taken::Now(Arrival::Mail(address.clone()))),
                Event::Rcpt(_) => Some(Taken::Recipient),
                Event::Header { .. } => Some(Taken::Header),
                Event::Body(_) => Some(Taken::Body),
                Event::EndOfMessage(_) => Some(Taken::EndOfMessage),
                Event::Unknown(_) => Some(Taken::Unknown),
            };
            self.apply(event);
            if let Some(overflow) = self.header_overflow {
                return Poll::Ready(Err(self.header_limit_error(overflow)));
            }
            let arrival = match taken {
                None => continue,
                Some(Taken::Now(arrival)) => arrival,
                Some(Taken::Recipient) => Arrival::Rcpt(self.newest_recipient()),
                Some(Taken::Header) => match self.headers.last() {
                    Some(field) => Arrival::Header(field.clone()),
                    None => continue,
                },
                Some(Taken::Body) => {
                    self.body_chunk_fresh = false;
                    Arrival::Body(self.body_chunk.take().unwrap_or_default())
                }
                Some(Taken::EndOfMessage) => {
                    self.body_chunk_fresh = false;
                    Arrival::EndOfMessage(self.body_chunk.take())
                }
                Some(Taken::Unknown) => Arrival::Unknown(self.newest_unknown()),
            };
            return Poll::Ready(Ok(arrival));
        }
    }

    /// The sequence number of the newest command.
    pub(crate) fn current_seq(&self) -> u64 {
        lock(&self.mailbox).seq()
    }

    pub(crate) fn apply(&mut self, event: Event) {
        let moved_to = match &event {
            Event::Macro { .. } | Event::Unknown(_) => None,
            Event::Connect(_) => Some(Phase::Connect),
            Event::Helo(_) => Some(Phase::Helo),
            Event::Mail(_) => Some(Phase::Mail),
            Event::Rcpt(_) => Some(Phase::Rcpt),
            Event::Data => Some(Phase::Data),
            Event::Header { .. } => Some(Phase::Header),
            Event::EndOfHeaders => Some(Phase::EndOfHeaders),
            Event::Body(_) => Some(Phase::Body),
            Event::EndOfMessage(_) => Some(Phase::EndOfMessage),
        };
        if let Some(phase) = moved_to {
            self.phase = self.phase.max(phase);
            self.flow_commands += 1;
        }
        match event {
            Event::Macro { stage, raw }
                if !matches!(stage, MacroStage::Connect | MacroStage::Helo) =>
            {
                self.macros.set(stage, &raw);
            }
            Event::Mail(address) => {
                self.macros.clear_after(MacroStage::Mail);
                self.sender = Some(address);
            }
            Event::Rcpt(address) => {
                let seq = self.current_seq();
                // What both MTAs send for a recipient they rejected themselves, when the
                // filter asked for those (protocol reference §2.6).
                let rejected =
                    self.macros.get_in(MacroStage::Rcpt, "rcpt_mailer") == Some(&b"error"[..]);
                self.recipients.push(Arrived {
                    address,
                    seq,
                    rejected,
                });
            }
            Event::Unknown(line) => {
                let seq = self.current_seq();
                self.unknown.push((line, seq));
            }
            Event::Header { name, value } => {
                let limits = self.conn.header_limits;
                self.header_bytes = self
                    .header_bytes
                    .saturating_add(name.as_bytes().len())
                    .saturating_add(value.as_bytes().len());
                if self.headers.len() >= limits.count {
                    self.header_overflow = Some(HeaderOverflow::Count);
                } else if self.header_bytes > limits.bytes {
                    self.header_overflow = Some(HeaderOverflow::Bytes);
                } else {
                    let position = u32::try_from(self.headers.len()).unwrap_or(u32::MAX);
                    let handle = HeaderHandle {
                        message: self.message,
                        position,
                    };
                    let exact = self
                        .conn
                        .agreed
                        .options
                        .protocol
                        .contains(ProtocolFlags::HEADER_LEADING_SPACE);
                    self.headers
                        .push(HeaderField::new(name, value, exact, handle));
                }
            }
            Event::Body(chunk) => {
                self.body_chunk = Some(chunk);
                self.body_chunk_fresh = true;
            }
            // libmilter hands data in end of message to the filter as a last chunk.
            Event::EndOfMessage(chunk) if !chunk.is_empty() => {
                self.body_chunk = Some(chunk);
                self.body_chunk_fresh = true;
            }
            _ => {}
        }
    }
}
