//! The hand-over point between the connection driver and a running filter.
//!
//! The driver pushes events in and reads back whether the filter has taken them and is
//! waiting for more; the filter's session drains events and parks. Both run in the same
//! task and never at the same time, so the lock is never contended; it exists to keep the
//! filter future `Send`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;

use super::connection_data::ConnectionData;
use super::event::Event;
use super::phase::Phase;
use super::state::ConnectionState;
use crate::proto::ReplyCode;

/// A reply the filter chose for one event (a recipient) while going on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum EventReply {
    Reject,
    Tempfail,
    Reply(ReplyCode),
}

#[derive(Debug)]
pub(crate) struct Mailbox {
    /// The connection data as the connection core last published it.
    conn: Arc<ConnectionData>,
    /// The filter's own connection state, kept here between calls (a session takes it on
    /// first use and hands it back when dropped, even by a panic or an abort).
    state: Option<ConnectionState>,
    queue: VecDeque<Event>,
    /// The waker of the session await that parked last: the filter may poll it inside its
    /// own combinators (`join`, `select`, `FuturesUnordered`), which only poll what was woken.
    waker: Option<Waker>,
    /// Sequence number of the newest command pushed.
    seq: u64,
    /// Sequence number of the newest command answered on the wire.
    answered: u64,
    /// The phase an awaiting session waits for, set during the latest poll only.
    parked: Option<Phase>,
    reply: Option<(u64, EventReply)>,
    aborted: bool,
    /// The filter asked for PROGRESS to be sent now.
    progress: bool,
}

/// Shared handle to a mailbox.
pub(crate) type SharedMailbox = Arc<Mutex<Mailbox>>;

pub(crate) fn lock(mailbox: &Mutex<Mailbox>) -> MutexGuard<'_, Mailbox> {
    // A panic in a filter is caught at the driver; the data stays consistent, so a
    // poisoned lock is used as is.
    mailbox.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Mailbox {
    pub(crate) fn new(conn: Arc<ConnectionData>) -> Self {
        Self {
            conn,
            state: None,
            queue: VecDeque::new(),
            waker: None,
            seq: 0,
            answered: 0,
            parked: None,
            reply: None,
            aborted: false,
            progress: false,
        }
    }

    // ===== driver side =====

    /// Replaces the connection data sessions see.
    pub(crate) fn publish(&mut self, conn: &Arc<ConnectionData>) {
        if !Arc::ptr_eq(&self.conn, conn) {
            self.conn = conn.clone();
        }
    }

    /// Called before each poll of the filter by the task that polls it: forgets whether the
    /// filter was waiting, and wakes the parked await if events wait for it and it was
    /// registered by a waker other than the task's own (a combinator inside the filter).
    pub(crate) fn before_poll(&mut self, task: &Waker) {
        self.parked = None;
        if self.queue.is_empty() && !self.aborted {
            return;
        }
        if let Some(waker) = self.waker.take() {
            if !waker.will_wake(task) {
                waker.wake();
            }
        }
    }

    /// Queues a macro packet (no reply, no sequence number).
    ///
    /// Packets of one stage replace each other so a peer sending macros without commands
    /// cannot grow the queue, while the order between stages stays as on the wire (a
    /// packet clears the stages after it): a packet with pairs removes every queued packet
    /// of its stage, an empty one only the queued empty ones; either then goes to the back.
    /// At most two packets per stage wait.
    pub(crate) fn push_macro(&mut self, event: Event) {
        let Event::Macro { stage, raw } = &event else {
            return;
        };
        let (stage, empty) = (*stage, raw.is_empty());
        self.queue.retain(|queued| match queued {
            Event::Macro { stage: s, raw: r } => *s != stage || (empty && !r.is_empty()),
            _ => true,
        });
        self.queue.push_back(event);
    }

    /// Queues a command and returns its sequence number.
    pub(crate) fn push_command(&mut self, event: Event) -> u64 {
        self.queue.push_back(event);
        self.seq += 1;
        self.reply = None;
        self.seq
    }

    /// Whether the filter has taken every queued event.
    pub(crate) fn drained(&self) -> bool {
        self.queue.is_empty()
    }

    /// The phase the filter waits for, if it parked during the latest poll.
    pub(crate) fn parked(&self) -> Option<Phase> {
        self.parked
    }

    /// Takes the filter's own reply to command `seq` and marks the command answered.
    pub(crate) fn answer(&mut self, seq: u64) -> Option<EventReply> {
        self.answered = self.answered.max(seq);
        match self.reply.take() {
            Some((for_seq, reply)) if for_seq == seq => Some(reply),
            _ => None,
        }
    }

    /// Whether the filter asked for PROGRESS since the last look; clears the request.
    pub(crate) fn take_progress_request(&mut self) -> bool {
        std::mem::take(&mut self.progress)
    }

    /// Ends the current message: queued events are dropped and every await fails.
    pub(crate) fn abort(&mut self) {
        self.queue.clear();
        self.reply = None;
        self.aborted = true;
    }

    /// Readies the mailbox for the next filter call.
    pub(crate) fn reset(&mut self) {
        self.progress = false;
        self.queue.clear();
        self.waker = None;
        self.parked = None;
        self.reply = None;
        self.aborted = false;
    }

    // ===== session side =====

    pub(crate) fn is_aborted(&self) -> bool {
        self.aborted
    }

    pub(crate) fn pop(&mut self) -> Option<Event> {
        self.queue.pop_front()
    }

    /// Sequence number of the newest command.
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }

    /// Asks the connection to send PROGRESS.
    pub(crate) fn request_progress(&mut self) {
        self.progress = true;
    }

    pub(crate) fn park(&mut self, phase: Phase, waker: &Waker) {
        self.parked = Some(phase);
        match &mut self.waker {
            Some(kept) if kept.will_wake(waker) => {}
            kept => *kept = Some(waker.clone()),
        }
    }

    /// Takes the filter's connection state (made empty on first use).
    pub(crate) fn take_state(&mut self) -> ConnectionState {
        self.state.take().unwrap_or_default()
    }

    /// Gives the connection state back at the end of a call.
    pub(crate) fn return_state(&mut self, state: ConnectionState) {
        self.state = Some(state);
    }

    /// The newest connection data.
    pub(crate) fn connection_data(&self) -> Arc<ConnectionData> {
        self.conn.clone()
    }

    /// Whether the connection data changed since `seen` was taken.
    pub(crate) fn connection_changed(&self, seen: &Arc<ConnectionData>) -> bool {
        !Arc::ptr_eq(&self.conn, seen)
    }

    /// Records the filter's reply to command `seq`; false if it was answered already.
    pub(crate) fn set_reply(&mut self, seq: u64, reply: EventReply) -> bool {
        if seq != self.seq || self.answered >= seq || self.aborted {
            return false;
        }
        self.reply = Some((seq, reply));
        true
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::{Event, Mailbox};
    use crate::proto::MacroStage;

    fn mailbox() -> Mailbox {
        Mailbox::new(crate::session::connection_data::tests::data())
    }

    fn macros(stage: MacroStage, raw: &'static [u8]) -> Event {
        Event::Macro {
            stage,
            raw: Bytes::from_static(raw),
        }
    }

    #[test]
    fn a_macro_flood_keeps_a_bounded_queue_in_wire_order() {
        let mut mailbox = mailbox();
        for _ in 0..10_000 {
            mailbox.push_macro(macros(MacroStage::Helo, b"x\0y\0"));
            mailbox.push_macro(macros(MacroStage::Helo, b""));
        }
        mailbox.push_macro(macros(MacroStage::Mail, b"i\0Q1\0"));
        assert!(
            matches!(mailbox.pop(), Some(Event::Macro { stage: MacroStage::Helo, raw }) if &raw[..] == b"x\0y\0")
        );
        assert!(
            matches!(mailbox.pop(), Some(Event::Macro { stage: MacroStage::Helo, raw }) if raw.is_empty())
        );
        assert!(matches!(
            mailbox.pop(),
            Some(Event::Macro {
                stage: MacroStage::Mail,
                ..
            })
        ));
        assert!(mailbox.pop().is_none());
    }

    #[test]
    fn a_newer_packet_goes_after_packets_of_other_stages() {
        let mut mailbox = mailbox();
        mailbox.push_macro(macros(MacroStage::Rcpt, b"a\0A\0"));
        mailbox.push_macro(macros(MacroStage::Data, b"x\0X\0"));
        mailbox.push_macro(macros(MacroStage::Rcpt, b"a\0B\0"));
        let mut store = crate::session::macros::MacroStore::default();
        while let Some(Event::Macro { stage, raw }) = mailbox.pop() {
            store.set(stage, &raw);
        }
        assert_eq!(store.get("a"), Some(&b"B"[..]));
        assert_eq!(
            store.get("x"),
            None,
            "RCPT after DATA clears DATA, as on the wire"
        );
    }
}
