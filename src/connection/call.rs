//! The life of one filter call: start, poll, park, finish, panic capture, recycling.
//!
//! The call's future is polled directly by the connection's task, so an event reaches the
//! filter without a channel hop; the mailbox is where events go in and where the filter
//! says what it waits for.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use super::core::Outcome;
use crate::proto::{Actions, Events};
use crate::session::{
    BoxCallFuture, ConnectionData, EditStorage, Error, Event, EventReply, Finished, Mailbox,
    Member, Phase, Recycled, Session, SharedMailbox, Verdict, lock,
};

/// What a call ends with: its result and the session's storage, or the panic it raised.
type CallOutput = Result<(Result<Verdict, Error>, Finished), Box<dyn Any + Send>>;
/// The filter's call; the call itself is the one allocation. Polled through [`poll_call`].
type CallFuture = BoxCallFuture;

/// One filter's calls on a connection, one message at a time.
pub(crate) struct FilterCall {
    member: Member,
    /// The edit actions this filter may use: what it declared, as far as the MTA agreed.
    allowed: Actions,
    /// The events this filter may answer: what it declared.
    answers: Events,
    mailbox: SharedMailbox,
    running: Option<CallFuture>,
    /// Storage the last finished session left for the next one.
    recycled: Option<Recycled>,
    /// The message the running call belongs to, for log lines.
    message_no: u64,
}

impl FilterCall {
    pub(crate) fn new(member: Member, conn: Arc<ConnectionData>) -> Self {
        let needs = member.filter.needs();
        let allowed =
            conn.agreed.options.actions & (needs.get_actions() | needs.get_optional_actions());
        let answers = needs.get_answers() & needs.get_events();
        Self {
            member,
            allowed,
            answers,
            mailbox: Arc::new(Mutex::new(Mailbox::new(conn))),
            running: None,
            recycled: None,
            message_no: 0,
        }
    }

    /// Whether a call is running.
    pub(crate) fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Shows sessions the newest connection data (the core is its only writer).
    pub(crate) fn publish(&self, conn: &Arc<ConnectionData>) {
        lock(&self.mailbox).publish(conn);
    }

    /// Starts the call for message `message_no`, with the events already queued.
    pub(crate) fn start(&mut self, message_no: u64, edits: EditStorage) {
        let conn = lock(&self.mailbox).connection_data();
        let phase = if conn.helo.is_some() {
            Phase::Helo
        } else if conn.client.is_some() {
            Phase::Connect
        } else {
            Phase::Start
        };
        self.message_no = message_no;
        let recycled = self.recycled.take().unwrap_or_default().with_edits(edits);
        let session = Session::new(self.mailbox.clone(), conn, message_no, phase, recycled)
            .declared(self.allowed, self.answers);
        let call = Arc::clone(&self.member.filter).call_owned(session);
        self.running = Some(call);
    }

    /// Queues a command for the filter; returns its sequence number.
    pub(crate) fn deliver(&mut self, event: Event) -> u64 {
        lock(&self.mailbox).push_command(event)
    }

    /// Queues a macro packet for the filter.
    pub(crate) fn deliver_macro(&mut self, event: Event) {
        lock(&self.mailbox).push_macro(event);
    }

    /// Whether the filter asked for PROGRESS since the last look.
    pub(crate) fn take_progress_request(&mut self) -> bool {
        lock(&self.mailbox).take_progress_request()
    }

    /// Takes the filter's own reply to command `seq` and marks the command answered.
    pub(crate) fn take_reply(&mut self, seq: u64) -> Option<EventReply> {
        lock(&self.mailbox).answer(seq)
    }

    /// Polls the running filter: ready when it returned, when it took every queued event
    /// and waits for a later phase, or when none runs; pending while it works on something
    /// of its own.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Polled> {
        let Some(running) = &mut self.running else {
            return Poll::Ready(Polled::Idle);
        };
        lock(&self.mailbox).before_poll(cx.waker());
        if let Poll::Ready(output) = poll_call(running, cx) {
            self.running = None;
            return Poll::Ready(Polled::Returned(self.outcome(output)));
        }
        let mailbox = lock(&self.mailbox);
        match mailbox.parked() {
            Some(phase) if mailbox.drained() => Poll::Ready(Polled::Parked(phase)),
            _ => Poll::Pending,
        }
    }

    /// Ends the message: on `abort` a running filter's awaits fail with [`Error::Aborted`]
    /// and it gets one last poll to return; then it is dropped and the mailbox readied for
    /// the next message.
    pub(crate) fn end(&mut self, abort: bool, cx: &mut Context<'_>) {
        if let Some(mut running) = self.running.take() {
            if abort {
                lock(&self.mailbox).abort();
                // The core logged the abort with the queue id; this is the filter's side.
                match poll_call(&mut running, cx) {
                    Poll::Ready(Ok((Err(error), finished))) => {
                        log::debug!("{}ended after abort: {error}", self.who());
                        self.recycled = Some(finished.recycled);
                    }
                    Poll::Ready(Err(panic)) => {
                        log::error!(
                            "{}panicked after abort: {}",
                            self.who(),
                            panic_message(&*panic)
                        );
                    }
                    _ => {}
                }
            }
            self.drop_call(running);
        }
        lock(&self.mailbox).reset();
    }

    /// Drops a running filter at once (the connection is closing).
    pub(crate) fn drop_running(&mut self) {
        if let Some(running) = self.running.take() {
            self.drop_call(running);
        }
    }

    /// Drops a call's future; a panic in the filter's own drop code (a local's destructor)
    /// is logged and goes no further, so it costs that call only, not the connection.
    fn drop_call(&self, running: CallFuture) {
        let dropped = std::panic::catch_unwind(AssertUnwindSafe(move || drop(running)));
        if let Err(panic) = dropped {
            log::error!(
                "{}panicked while being dropped: {}",
                self.who(),
                panic_message(&*panic)
            );
        }
    }

    /// `connection 3: message 2: the filter ` (or the filter's name), for log lines.
    fn who(&self) -> String {
        let id = lock(&self.mailbox).connection_data().id;
        let name = self.member.name.as_deref().unwrap_or("the filter");
        format!("connection {id}: message {}: {name} ", self.message_no)
    }

    fn outcome(&mut self, output: CallOutput) -> Outcome {
        match output {
            Ok((result, finished)) => {
                self.recycled = Some(finished.recycled);
                match result {
                    Ok(verdict) => Outcome::Returned(verdict, finished.edits),
                    Err(error) if error.is_aborted() => Outcome::Aborted,
                    Err(error) => Outcome::Failed(error.to_string()),
                }
            }
            Err(panic) => Outcome::Panicked(panic_message(&*panic)),
        }
    }
}

/// Polls a call with its panics caught.
///
/// The output (the verdict and the session's storage, some 350 bytes) is moved out only
/// when the call is ready: polled through `CatchUnwind`, every pending poll copied the
/// whole `Poll` through each layer, a few `memcpy`s per event.
fn poll_call(call: &mut CallFuture, cx: &mut Context<'_>) -> Poll<CallOutput> {
    let mut output = None;
    let caught = std::panic::catch_unwind(AssertUnwindSafe(|| {
        if let Poll::Ready(ready) = call.as_mut().poll(cx) {
            output = Some(ready);
        }
    }));
    if let Err(panic) = caught {
        return Poll::Ready(Err(panic));
    }
    match output {
        Some(output) => Poll::Ready(Ok(output)),
        None => Poll::Pending,
    }
}

/// The text a panic was raised with, if it was a string.
pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

/// What one poll of the call found.
pub(crate) enum Polled {
    /// No call is running.
    Idle,
    /// The filter took every queued event and waits for this phase.
    Parked(Phase),
    /// The filter returned.
    Returned(Outcome),
}
