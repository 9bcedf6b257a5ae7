//! What a hook sees besides its own value: the message so far, macros, edits, its reply.

use crate::proto::{Agreed, MacroStage, ReplyCode};
use crate::session::{
    Address, Client, Error, HeaderField, HeaderHandle, HeaderPosition, Phase, Session, Text,
};

/// Per-hook-call values that outlive the [`Context`] (which is borrowed for its whole life).
#[derive(Debug, Default)]
pub(crate) struct CallExtras {
    /// Set by [`Context::set_reply`].
    pub(crate) reply: Option<ReplyCode>,
    /// The current RCPT was rejected by the MTA itself.
    pub(crate) rejected_recipient: bool,
}

/// A hook's view of the connection and message (libmilter's `SMFICTX`): look-ups, macros
/// (`smfi_getsymval`), edits, and the reply for a reject or tempfail (`smfi_setreply`).
///
/// Edits may be queued from any hook of a message; like every edit of this crate they are
/// checked when queued (an error at once, never a silent drop) and sent at end of message,
/// before the verdict. Queue them from the end-of-message hook, as libmilter requires, unless
/// there is a reason not to (a body rewritten chunk by chunk from the body hook).
#[derive(Debug)]
pub struct Context<'a> {
    session: &'a mut Session,
    extras: &'a mut CallExtras,
}

impl<'a> Context<'a> {
    pub(crate) fn new(session: &'a mut Session, extras: &'a mut CallExtras) -> Self {
        Self { session, extras }
    }

    /// Tells the MTA the end-of-message hook is still working (`smfi_progress`); see
    /// [`Session::progress`].
    pub fn progress(&mut self) {
        self.session.progress();
    }

    // ===== the reply =====

    /// The reply used if this hook returns [`Status::Reject`](super::Status::Reject) (for a
    /// 5xx `reply`) or [`Status::Tempfail`](super::Status::Tempfail) (for a 4xx one), as
    /// `smfi_setreply` does; ignored otherwise. It applies to this hook call only.
    pub fn set_reply(&mut self, reply: ReplyCode) {
        self.extras.reply = Some(reply);
    }

    // ===== look-ups =====

    /// The connection's id, as it appears in log lines.
    #[must_use]
    pub fn connection_id(&self) -> u64 {
        self.session.connection_id()
    }

    /// This message's number within its connection, from 1.
    #[must_use]
    pub fn message_number(&self) -> u64 {
        self.session.message_number()
    }

    /// What was negotiated with the MTA.
    #[must_use]
    pub fn negotiated(&self) -> &Agreed {
        self.session.negotiated()
    }

    /// Where the conversation is.
    #[must_use]
    pub fn phase(&self) -> Phase {
        self.session.phase()
    }

    /// The SMTP client, known from connect on.
    #[must_use]
    pub fn client(&self) -> Option<&Client> {
        self.session.client()
    }

    /// The HELO or EHLO name, once sent.
    #[must_use]
    pub fn helo_name(&self) -> Option<&Text> {
        self.session.helo_name()
    }

    /// The sender, once MAIL has arrived.
    #[must_use]
    pub fn sender(&self) -> Option<&Address> {
        self.session.sender()
    }

    /// The recipients the MTA accepted so far.
    pub fn recipients(&self) -> impl Iterator<Item = &Address> {
        self.session.recipients()
    }

    /// In the RCPT hook: whether the MTA rejected this recipient itself (sent only when
    /// asked for with [`Hooks::options`](super::Hooks::options) and
    /// [`ProtocolFlags::RCPT_REJECTED`](crate::ProtocolFlags::RCPT_REJECTED)); its answer
    /// changes nothing then.
    #[must_use]
    pub fn recipient_rejected_by_mta(&self) -> bool {
        self.extras.rejected_recipient
    }

    /// The headers seen so far, in message order, with handles for edits.
    #[must_use]
    pub fn headers(&self) -> &[HeaderField] {
        self.session.headers()
    }

    /// The first header seen so far with this name (case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&HeaderField> {
        self.session.header(name)
    }

    /// A macro's value (`smfi_getsymval`): `i`, `{auth_authen}` (braces optional), newest
    /// stage first.
    #[must_use]
    pub fn macro_value(&self, name: &str) -> Option<&[u8]> {
        self.session.macro_value(name)
    }

    /// A macro's value as UTF-8.
    #[must_use]
    pub fn macro_str(&self, name: &str) -> Option<&str> {
        self.session.macro_str(name)
    }

    /// The macros of one stage, in the order the MTA sent them.
    pub fn macros_of(&self, stage: MacroStage) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.session.macros_of(stage)
    }

    /// The queue id (macro `i`) once the MTA has sent it.
    #[must_use]
    pub fn queue_id(&self) -> Option<&str> {
        self.session.queue_id()
    }

    // ===== edits =====

    /// Adds a header below every header (`smfi_addheader`).
    pub fn add_header(
        &mut self,
        name: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<(), Error> {
        self.session.add_header(name, value)
    }

    /// Inserts a header at a position relative to the headers seen (`smfi_insheader`).
    pub fn insert_header(
        &mut self,
        at: HeaderPosition,
        name: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<(), Error> {
        self.session.insert_header(at, name, value)
    }

    /// Replaces a header's value (`smfi_chgheader`), by the handle of a header seen.
    pub fn change_header(
        &mut self,
        header: HeaderHandle,
        value: impl AsRef<[u8]>,
    ) -> Result<(), Error> {
        self.session.change_header(header, value)
    }

    /// Deletes a header (`smfi_chgheader` with no value).
    pub fn delete_header(&mut self, header: HeaderHandle) -> Result<(), Error> {
        self.session.delete_header(header)
    }

    /// Replaces the body (`smfi_replacebody`, the whole new body at once).
    pub fn replace_body(&mut self, body: impl AsRef<[u8]>) -> Result<(), Error> {
        self.session.replace_body(body)
    }

    /// Appends a piece to the replacement body, starting one if there is none
    /// (`smfi_replacebody` called repeatedly).
    pub fn append_body(&mut self, piece: impl AsRef<[u8]>) -> Result<(), Error> {
        self.session.append_body(piece)
    }

    /// Changes the envelope sender, with optional ESMTP arguments (`smfi_chgfrom`).
    pub fn change_sender(
        &mut self,
        address: impl AsRef<[u8]>,
        args: Option<&str>,
    ) -> Result<(), Error> {
        self.session.change_sender(address, args)
    }

    /// Adds a recipient, with optional ESMTP arguments (`smfi_addrcpt`,
    /// `smfi_addrcpt_par`).
    pub fn add_recipient(
        &mut self,
        address: impl AsRef<[u8]>,
        args: Option<&str>,
    ) -> Result<(), Error> {
        self.session.add_recipient(address, args)
    }

    /// Removes a recipient, given as it arrived in RCPT (`smfi_delrcpt`).
    pub fn remove_recipient(&mut self, address: impl AsRef<[u8]>) -> Result<(), Error> {
        self.session.remove_recipient(address)
    }

    /// Holds the message in quarantine with a reason (`smfi_quarantine`).
    pub fn quarantine(&mut self, reason: impl AsRef<[u8]>) -> Result<(), Error> {
        self.session.quarantine(reason)
    }
}
