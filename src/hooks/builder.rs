//! [`Hooks`]: the builder, the negotiation it derives, and the filter it is.

use std::marker::PhantomData;
use std::sync::Arc;

use bytes::Bytes;

use super::context::{CallExtras, Context};
use super::home::{CloseFn, HomeEntry, Lease, run_close};
use super::hook_fn::{Erased, Hook, HookResult, HookWith, NoArg, Status, WithArg};
use crate::proto::{Actions, Events, MacroStage, Needs, ProtocolFlags};
use crate::session::{
    Address, Arrival, Client, Error, Filter, HeaderField, Phase, Session, Text, Verdict,
};

type Slot<S, A> = Option<Box<dyn Erased<S, A>>>;

/// A milter written as callbacks: one value of type `S` per connection, and an async hook
/// per event that matters. See the [module docs](super) for the whole picture.
pub struct Hooks<S> {
    factory: Box<dyn Fn() -> S + Send + Sync>,
    connect: Slot<S, Client>,
    helo: Slot<S, Text>,
    mail: Slot<S, Address>,
    rcpt: Slot<S, Address>,
    data: Slot<S, ()>,
    header: Slot<S, HeaderField>,
    eoh: Slot<S, ()>,
    body: Slot<S, Bytes>,
    eom: Slot<S, ()>,
    abort: Slot<S, ()>,
    unknown: Slot<S, Text>,
    close: Option<CloseFn<S>>,
    events: Events,
    answers: Events,
    actions: Actions,
    optional_actions: Actions,
    options: ProtocolFlags,
    macros: Vec<(MacroStage, String)>,
}

impl<S: Send + 'static> std::fmt::Debug for Hooks<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("needs", &self.needs())
            .field("close", &self.close.is_some())
            .finish_non_exhaustive()
    }
}

macro_rules! with_arg_hook {
    ($(#[$doc:meta])* $method:ident, $field:ident, $arg:ty, $event:expr) => {
        $(#[$doc])*
        #[must_use]
        pub fn $method<H, R>(mut self, hook: H) -> Self
        where
            H: for<'a> HookWith<'a, S, $arg, Output = R>,
            R: HookResult,
        {
            self.$field = Some(Box::new(WithArg(hook, PhantomData)));
            self.provided($event, R::ANSWERS);
            self
        }
    };
}

macro_rules! no_arg_hook {
    ($(#[$doc:meta])* $method:ident, $field:ident, $event:expr) => {
        $(#[$doc])*
        #[must_use]
        pub fn $method<H, R>(mut self, hook: H) -> Self
        where
            H: for<'a> Hook<'a, S, Output = R>,
            R: HookResult,
        {
            self.$field = Some(Box::new(NoArg(hook, PhantomData)));
            self.provided($event, R::ANSWERS);
            self
        }
    };
}

impl<S: Send + 'static> Hooks<S> {
    /// Hooks whose per-connection value `factory` makes (pymilter's class instantiated per
    /// connection). With no hook registered the milter only sees end of message.
    ///
    /// Until [`Hooks::actions`] or [`Hooks::optional_actions`] is called, every edit the MTA
    /// allows may be used (none is required).
    #[must_use]
    pub fn new(factory: impl Fn() -> S + Send + Sync + 'static) -> Self {
        Self {
            factory: Box::new(factory),
            connect: None,
            helo: None,
            mail: None,
            rcpt: None,
            data: None,
            header: None,
            eoh: None,
            body: None,
            eom: None,
            abort: None,
            unknown: None,
            close: None,
            events: Events::EMPTY,
            answers: Events::EMPTY,
            actions: Actions::EMPTY,
            optional_actions: Actions::V6.difference(Actions::SET_MACRO_LIST),
            options: ProtocolFlags::EMPTY,
            macros: Vec::new(),
        }
    }

    /// Records that the hook for `event` exists and whether it answers.
    fn provided(&mut self, event: Events, answers: bool) {
        if event.is_empty() {
            return;
        }
        self.events |= event;
        if answers {
            self.answers |= event;
        } else {
            self.answers = self.answers.difference(event);
        }
    }

    with_arg_hook!(
        /// CONNECT (`xxfi_connect`): the SMTP client.
        on_connect, connect, Client, Events::CONNECT
    );
    with_arg_hook!(
        /// HELO or EHLO (`xxfi_helo`): its argument.
        on_helo, helo, Text, Events::HELO
    );
    with_arg_hook!(
        /// MAIL FROM (`xxfi_envfrom`): the sender with its ESMTP arguments. Where pymilter
        /// users reset their per-message fields.
        on_mail, mail, Address, Events::MAIL
    );
    with_arg_hook!(
        /// RCPT TO (`xxfi_envrcpt`): one recipient with its ESMTP arguments. Reject,
        /// tempfail and a reply code refuse this recipient only; accept and discard apply to
        /// the message (sent at the next message-wide event).
        on_rcpt, rcpt, Address, Events::RCPT
    );
    no_arg_hook!(
        /// DATA (`xxfi_data`).
        on_data, data, Events::DATA
    );
    with_arg_hook!(
        /// Each header (`xxfi_header`), with a handle for changing or deleting it at end of
        /// message.
        on_header, header, HeaderField, Events::HEADER
    );
    no_arg_hook!(
        /// End of headers (`xxfi_eoh`).
        on_eoh, eoh, Events::EOH
    );
    with_arg_hook!(
        /// Each body chunk (`xxfi_body`): a shared slice of the read buffer. Returning
        /// [`Status::Skip`] asks for no more chunks (negotiated for a body hook that
        /// returns a status).
        on_body, body, Bytes, Events::BODY
    );
    no_arg_hook!(
        /// End of message (`xxfi_eom`): the place for edits. `Continue` and `Accept` both
        /// accept the message with its edits.
        on_eom, eom, Events::EMPTY
    );
    no_arg_hook!(
        /// The MTA abandoned the message (`xxfi_abort`): ABORT, or a new message or SMTP
        /// session without it. Not called when a hook's own status ended the message, nor
        /// when the connection just closes (the close hook runs then). It runs as the
        /// message is torn down, within one poll: a hook that awaits something slow is cut
        /// off. Its status is ignored (the MTA waits for no reply).
        on_abort, abort, Events::EMPTY
    );
    with_arg_hook!(
        /// An SMTP command the MTA does not know (`xxfi_unknown`): Postfix sends the command
        /// word, Sendmail the whole line. Reject, tempfail and a reply code refuse that
        /// command only; the other statuses let it pass.
        on_unknown, unknown, Text, Events::UNKNOWN
    );

    /// The connection ended (`xxfi_close`): runs once per per-connection value, when the
    /// connection closes (or a new SMTP session starts on it with `QUIT_NC`), however it
    /// ends. It is a plain function, run as the value is dropped: it cannot await.
    #[must_use]
    pub fn on_close(mut self, close: impl Fn(&mut S) + Send + Sync + 'static) -> Self {
        self.close = Some(Arc::new(close));
        self
    }

    /// Edits the milter cannot work without (libmilter's `xxfi_flags`): an MTA lacking one
    /// is refused at negotiation. Replaces the default (every edit optional) with exactly
    /// these plus [`Hooks::optional_actions`].
    #[must_use]
    pub fn actions(mut self, actions: Actions) -> Self {
        if self.optional_actions == Actions::V6.difference(Actions::SET_MACRO_LIST) {
            self.optional_actions = Actions::EMPTY;
        }
        self.actions = actions;
        self
    }

    /// Edits used when the MTA allows them. Replaces the default (every edit).
    #[must_use]
    pub fn optional_actions(mut self, actions: Actions) -> Self {
        self.optional_actions = actions;
        self
    }

    /// Extra protocol options: [`ProtocolFlags::RCPT_REJECTED`] (the RCPT hook also sees
    /// recipients the MTA rejected, see [`Context::recipient_rejected_by_mta`]),
    /// [`ProtocolFlags::HEADER_LEADING_SPACE`]. `SKIP` is added by itself for a body hook
    /// that returns a status.
    #[must_use]
    pub fn options(mut self, options: ProtocolFlags) -> Self {
        self.options = options;
        self
    }

    /// Asks for the macros `names` at `stage` (`smfi_setsymlist`), as [`Needs::macros`].
    #[must_use]
    pub fn macros(mut self, stage: MacroStage, names: &str) -> Self {
        self.macros.push((stage, names.to_owned()));
        self
    }

    // ===== the filter =====

    /// The phase the loop waits for: a milter without a body hook, or one that skipped,
    /// wants no body chunks (answered with SKIP where negotiated).
    fn wanted(&self, skipping: bool) -> Phase {
        if self.body.is_none() || skipping {
            Phase::EndOfMessage
        } else {
            Phase::Body
        }
    }

    /// Follows one message (the first call of a connection: from CONNECT on) event by event
    /// until end of message or a status that ends it.
    async fn follow(&self, session: &mut Session, lease: &mut Lease<S>) -> Result<Verdict, Error> {
        let mut skipping = false;
        loop {
            let arrival = session.next_arrival(self.wanted(skipping)).await?;
            let (status, phase) = match arrival {
                Arrival::Connect(client) => {
                    if std::mem::replace(&mut lease.connected, true) {
                        // QUIT_NC: a new SMTP session on this connection gets a new value.
                        if let Some(mut old) = lease.value.take() {
                            run_close(lease.close(), &mut old, session.connection_id());
                        }
                        lease.value = Some((self.factory)());
                    }
                    let status = self.run(&self.connect, session, lease, client).await?;
                    (status, Phase::Connect)
                }
                Arrival::Helo(name) => (
                    self.run(&self.helo, session, lease, name).await?,
                    Phase::Helo,
                ),
                Arrival::Mail(address) => (
                    self.run(&self.mail, session, lease, address).await?,
                    Phase::Mail,
                ),
                Arrival::Rcpt(recipient) => {
                    let rejected = recipient.is_rejected();
                    let address = recipient.envelope().clone();
                    let status = self
                        .run_with(&self.rcpt, session, lease, address, rejected)
                        .await?;
                    match status {
                        Status::Reject => recipient.reject()?,
                        Status::Tempfail => recipient.tempfail()?,
                        Status::Reply(code) => recipient.reply(code)?,
                        Status::Accept => return Ok(Verdict::Accept),
                        Status::Discard => return Ok(Verdict::Discard),
                        Status::Continue | Status::Skip => {}
                    }
                    continue;
                }
                Arrival::Data => (self.run(&self.data, session, lease, ()).await?, Phase::Data),
                Arrival::Header(field) => (
                    self.run(&self.header, session, lease, field).await?,
                    Phase::Header,
                ),
                Arrival::EndOfHeaders => (
                    self.run(&self.eoh, session, lease, ()).await?,
                    Phase::EndOfHeaders,
                ),
                Arrival::Body(chunk) => {
                    if skipping {
                        continue;
                    }
                    let status = self.run(&self.body, session, lease, chunk).await?;
                    if status == Status::Skip {
                        skipping = true;
                    }
                    (status, Phase::Body)
                }
                Arrival::EndOfMessage(last_chunk) => {
                    if let Some(chunk) = last_chunk.filter(|_| !skipping) {
                        let status = self.run(&self.body, session, lease, chunk).await?;
                        if let Some(verdict) = verdict(status) {
                            return Ok(verdict);
                        }
                    }
                    let status = self.run(&self.eom, session, lease, ()).await?;
                    return Ok(verdict(status).unwrap_or(Verdict::Continue));
                }
                Arrival::Unknown(command) => {
                    match self
                        .run(&self.unknown, session, lease, command.line().clone())
                        .await?
                    {
                        Status::Reject => command.reject()?,
                        Status::Tempfail => command.tempfail()?,
                        Status::Reply(code) => command.reply(code)?,
                        _ => {}
                    }
                    continue;
                }
            };
            if let Some(verdict) = verdict(status) {
                log::debug!(
                    "connection {}: message {}: hook status at {phase} ends the message",
                    session.connection_id(),
                    session.message_number()
                );
                return Ok(verdict);
            }
        }
    }

    async fn run<A: Send + 'static>(
        &self,
        hook: &Slot<S, A>,
        session: &mut Session,
        lease: &mut Lease<S>,
        arg: A,
    ) -> Result<Status, Error> {
        self.run_with(hook, session, lease, arg, false).await
    }

    /// Calls `hook` if registered, and turns a reject or tempfail into the reply the hook
    /// set with [`Context::set_reply`] when its class matches.
    async fn run_with<A: Send + 'static>(
        &self,
        hook: &Slot<S, A>,
        session: &mut Session,
        lease: &mut Lease<S>,
        arg: A,
        rejected_recipient: bool,
    ) -> Result<Status, Error> {
        let Some(hook) = hook else {
            return Ok(Status::Continue);
        };
        let value = lease.value.get_or_insert_with(|| (self.factory)());
        let mut extras = CallExtras {
            reply: None,
            rejected_recipient,
        };
        let status = {
            let mut ctx = Context::new(session, &mut extras);
            hook.call(value, &mut ctx, arg).await?
        };
        Ok(match (status, extras.reply) {
            (Status::Reject, Some(code)) if !code.is_temporary() => Status::Reply(code),
            (Status::Tempfail, Some(code)) if code.is_temporary() => Status::Reply(code),
            (status, _) => status,
        })
    }
}

/// The verdict a status returns from the filter, or `None` to go on.
fn verdict(status: Status) -> Option<Verdict> {
    match status {
        Status::Continue | Status::Skip => None,
        Status::Accept => Some(Verdict::Accept),
        Status::Reject => Some(Verdict::Reject),
        Status::Tempfail => Some(Verdict::Tempfail),
        Status::Discard => Some(Verdict::Discard),
        Status::Reply(code) => Some(Verdict::Reply(code)),
    }
}

impl<S: Send + 'static> Filter for Hooks<S> {
    /// Derived from the hooks registered: an event without a hook is negotiated away
    /// (`NO_*`), an event whose hook returns nothing is not answered (`NR_*`).
    fn needs(&self) -> Needs {
        let mut options = self.options;
        if self.answers.contains(Events::BODY) {
            options |= ProtocolFlags::SKIP;
        }
        let mut needs = Needs::new()
            .events(self.events)
            .answers(self.answers)
            .actions(self.actions)
            .optional_actions(self.optional_actions)
            .options(options);
        for (stage, names) in &self.macros {
            needs = needs.macros(*stage, names);
        }
        needs
    }

    async fn filter(&self, session: &mut Session) -> Result<Verdict, Error> {
        let home = {
            let id = session.connection_id();
            let entry = session.connection_state::<HomeEntry<S>>();
            entry
                .0
                .get_or_insert_with(|| Arc::new(super::home::Home::new(self.close.clone(), id)))
                .clone()
        };
        let mut lease = Lease::take(home);
        if lease.value.is_none() {
            lease.value = Some((self.factory)());
        }
        let result = self.follow(session, &mut lease).await;
        if matches!(result, Err(Error::Aborted)) {
            // Best effort within the one poll an aborted call gets; the status is ignored.
            let _ = self.run(&self.abort, session, &mut lease, ()).await;
        }
        result
    }
}
