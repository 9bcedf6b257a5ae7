//! One connection's protocol state, with no I/O, no runtime and no clock.
//!
//! The driver feeds it what arrived ([`Core::on_command`], [`Core::on_macro`]) and what the
//! filter call did ([`Core::finished`], [`Core::answer`]); the core says what to do next
//! (end the open message, start a call, what to answer and whether, when the message is
//! over) and owns the connection data that sessions read. Tested as tables below.

use std::sync::Arc;

use log::{debug, error, info, warn};

use super::answer::{Answer, Decided, after_verdict, while_running};
use super::config::ConnectionConfig;
use crate::proto::{Agreed, CommandKind, EncodeError, MacroStage, ProtocolFlags, Response};
use crate::session::{ConnectionData, EditQueue, Event, EventReply, HeaderLayout, Phase, Verdict};

/// Where the current message stands, for telling where one ends and the next begins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transaction {
    /// No message is open.
    Closed,
    /// A MAIL-stage macro packet arrived: the message has begun.
    Open,
    /// The MAIL command, or a packet of a later stage, arrived: a further MAIL-stage packet
    /// starts a new message even without ABORT.
    PastMail,
}

/// What the driver does with a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub(crate) struct Inbound {
    /// The open message ended (ABORT, `QUIT_NC`, or a new message began without ABORT):
    /// abort the running call first.
    pub(crate) abort_call: bool,
    /// Then this.
    pub(crate) then: Then,
}

/// The second half of [`Inbound`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Then {
    /// Nothing more (ABORT, `QUIT_NC`).
    Nothing,
    /// Close the connection (QUIT).
    Close,
    /// Hand the packet to the message's call.
    Deliver,
    /// Start the message's call, then hand it the packet.
    StartAndDeliver,
}

impl Inbound {
    const NOTHING: Self = Self {
        abort_call: false,
        then: Then::Nothing,
    };
}

/// How a filter call stands after the driver delivered an event and polled it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CallState {
    /// No call is running (it returned earlier, or none started).
    Idle,
    /// The filter took the event and waits for a later phase.
    Parked(Phase),
    /// The filter returned while handling this event (its outcome is recorded).
    Finished,
}

/// How a filter call ended, as the call unit reports it.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The filter returned a verdict, with the edits it queued.
    Returned(Verdict, EditQueue),
    /// The filter returned the abort error after the message was aborted.
    Aborted,
    /// The filter returned an error.
    Failed(String),
    /// The filter panicked.
    Panicked(String),
}

/// What to send for one command, and whether the message is over afterwards.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub(crate) struct Outbound {
    /// The reply, or `None` where the MTA waits for none.
    pub(crate) answer: Option<Answer>,
    /// The message ended here (end of message, or a verdict for the whole message): end
    /// the call; the MTA sends nothing more for this message.
    pub(crate) message_over: bool,
}

/// One negotiated connection's protocol state.
#[derive(Debug)]
pub(crate) struct Core {
    id: u64,
    /// The connection data sessions read; replaced (not mutated in place) when it changes,
    /// so a session's copy stays whole.
    conn: Arc<ConnectionData>,
    error_verdict: Verdict,
    sendmail_header_templates: u32,
    transaction: Transaction,
    /// A call for the current message was started.
    call_started: bool,
    decided: Option<Decided>,
    edits: Option<EditQueue>,
    message_no: u64,
    /// The MTA's queue id (macro `i`) for log lines, once sent.
    queue_id: Option<String>,
    /// The MTA has shown itself to be Postfix (macros before a header or body chunk, which
    /// Sendmail never sends); decides how header positions are numbered.
    postfix: bool,
    /// A verdict was held at an event declared as not answered; logged once per connection.
    warned_unanswered: bool,
}

impl Core {
    /// The state of a connection that has just negotiated `agreed`.
    pub(crate) fn new(id: u64, agreed: Agreed, config: &ConnectionConfig) -> Self {
        log_negotiation(id, &agreed);
        Self {
            id,
            conn: Arc::new(ConnectionData::new(
                id,
                Arc::new(agreed),
                config.max_headers,
            )),
            error_verdict: config.error_verdict.clone(),
            sendmail_header_templates: config.sendmail_header_templates,
            transaction: Transaction::Closed,
            call_started: false,
            decided: None,
            edits: None,
            message_no: 0,
            queue_id: None,
            postfix: false,
            warned_unanswered: false,
        }
    }

    /// The connection data, as sessions see it.
    pub(crate) fn connection_data(&self) -> &Arc<ConnectionData> {
        &self.conn
    }

    /// The number of the message the current (or next) call belongs to, from 1.
    pub(crate) fn message_no(&self) -> u64 {
        self.message_no
    }

    /// Whether a message is open (a shutdown waits for it to end).
    pub(crate) fn in_transaction(&self) -> bool {
        self.transaction != Transaction::Closed
    }

    fn agreed(&self) -> &Agreed {
        &self.conn.agreed
    }

    // ===== input =====

    /// A macro packet arrived (`for_command`: the command byte it precedes).
    pub(crate) fn on_macro(&mut self, for_command: u8, event: &Event) -> Inbound {
        let Event::Macro { stage, raw } = event else {
            return Inbound::NOTHING;
        };
        // Sendmail never sends macros before a header or a body chunk; Postfix does.
        if matches!(for_command, b'L' | b'B') {
            self.postfix = true;
        }
        if let Some(queue_id) = find_queue_id(raw) {
            // Postfix repeats it before every command: keep the copy made the first time.
            if self.queue_id.as_deref().map(str::as_bytes) != Some(queue_id) {
                self.queue_id = Some(String::from_utf8_lossy(queue_id).into_owned());
            }
        }
        let abort_call = self.at_boundary(stage_phase(*stage), false);
        if matches!(stage, MacroStage::Connect | MacroStage::Helo) {
            Arc::make_mut(&mut self.conn).apply(event);
        }
        Inbound {
            abort_call,
            then: Then::Deliver,
        }
    }

    /// A command other than a macro packet arrived.
    pub(crate) fn on_command(&mut self, kind: CommandKind, event: Option<&Event>) -> Inbound {
        match kind {
            CommandKind::Quit => {
                return Inbound {
                    abort_call: false,
                    then: Then::Close,
                };
            }
            // Outside a message ABORT means nothing: Postfix sends it after every message
            // and after a repeated HELO, which must not end a call that began at connect.
            CommandKind::Abort => {
                let abort_call = self.in_transaction();
                if abort_call {
                    self.end_message(true);
                }
                return Inbound {
                    abort_call,
                    then: Then::Nothing,
                };
            }
            CommandKind::QuitNewConnection => {
                self.end_message(true);
                Arc::make_mut(&mut self.conn).reset();
                return Inbound {
                    abort_call: true,
                    then: Then::Nothing,
                };
            }
            _ => {}
        }
        let Some(event) = event else {
            return Inbound::NOTHING;
        };
        if let Event::Unknown(line) = event {
            debug!("connection {}: unknown SMTP command {line}", self.id);
        }
        let abort_call = match Phase::of(kind) {
            Some(phase) => self.at_boundary(phase, kind == CommandKind::Mail),
            None => false,
        };
        if matches!(event, Event::Connect(_) | Event::Helo(_)) {
            Arc::make_mut(&mut self.conn).apply(event);
        }
        let start_call = !self.call_started;
        if start_call {
            self.call_started = true;
            self.message_no += 1;
            self.decided = None;
            self.edits = None;
        }
        Inbound {
            abort_call,
            then: if start_call {
                Then::StartAndDeliver
            } else {
                Then::Deliver
            },
        }
    }

    /// Ends the open message if a packet of `phase` starts a new one without ABORT, then
    /// records that a packet of `phase` arrived (`is_mail_command`: the MAIL command itself,
    /// as opposed to its macros). Returns whether a message ended.
    fn at_boundary(&mut self, phase: Phase, is_mail_command: bool) -> bool {
        let new_message = match phase {
            Phase::Connect | Phase::Helo => self.transaction != Transaction::Closed,
            Phase::Mail => self.transaction == Transaction::PastMail,
            _ => false,
        };
        if new_message {
            self.end_message(true);
        }
        if phase > Phase::Mail || is_mail_command {
            self.transaction = Transaction::PastMail;
        } else if phase == Phase::Mail && self.transaction == Transaction::Closed {
            self.transaction = Transaction::Open;
        }
        new_message
    }

    /// Forgets the current message; the next command starts a new call.
    pub(crate) fn end_message(&mut self, aborted: bool) {
        if aborted && self.call_started {
            debug!("connection {}: message aborted", self.id);
        }
        self.decided = None;
        self.edits = None;
        self.call_started = false;
        self.transaction = Transaction::Closed;
        self.queue_id = None;
    }

    /// Records how the message's filter call ended.
    pub(crate) fn finished(&mut self, outcome: Outcome) {
        let id = self.id;
        let (verdict, edits, message_only) = match outcome {
            Outcome::Returned(verdict, edits) => (verdict, Some(edits), false),
            Outcome::Aborted => {
                debug!("connection {id}: filter returned after abort");
                (Verdict::Continue, None, true)
            }
            Outcome::Failed(error) => {
                error!(
                    "connection {id}: filter failed: {error}; answering {:?}",
                    self.error_verdict
                );
                (self.error_verdict.clone(), None, true)
            }
            Outcome::Panicked(message) => {
                error!(
                    "connection {id}: filter panicked: {message}; answering {:?}",
                    self.error_verdict
                );
                (self.error_verdict.clone(), None, true)
            }
        };
        let queue_id = self.queue_id.as_deref().unwrap_or("-");
        info!(
            "connection {id}: message {} (queue id {queue_id}): verdict {verdict:?}",
            self.message_no
        );
        self.decided = Some(Decided {
            verdict,
            has_edits: edits.as_ref().is_some_and(|e| !e.is_empty()),
            message_only,
            sent: false,
        });
        self.edits = edits;
    }

    // ===== output =====

    /// What to answer `kind`, given how the call stands after the event was delivered and
    /// the filter's own reply to it (a refused recipient); the reply is appended to `out`.
    pub(crate) fn answer(
        &mut self,
        kind: CommandKind,
        call: &CallState,
        own: Option<EventReply>,
        out: &mut Vec<u8>,
    ) -> Result<Outbound, EncodeError> {
        let phase = Phase::of(kind);
        let skip_allowed = self.agreed().options.protocol.contains(ProtocolFlags::SKIP);
        let at_eom = kind == CommandKind::EndOfMessage;
        let mut message_verdict = false;
        let answer = match (call, own) {
            (_, Some(reply)) => reply.into(),
            (CallState::Parked(waits_for), None) => {
                while_running(phase, None, *waits_for, skip_allowed)
            }
            (CallState::Finished | CallState::Idle, None) => {
                message_verdict = true;
                match &self.decided {
                    Some(decided) => after_verdict(decided, phase, skip_allowed),
                    None => Answer::Continue,
                }
            }
        };
        let replies = at_eom || self.agreed().expects_reply(kind);
        let is_verdict = matches!(answer, Answer::Verdict(_) | Answer::EditsThen(_));
        if replies && message_verdict && is_verdict {
            if let Some(decided) = &mut self.decided {
                decided.sent = true;
            }
        }
        if !replies && is_verdict && !self.warned_unanswered {
            self.warned_unanswered = true;
            warn!(
                "connection {}: the filter decided {answer:?} at {}, an event it declared it \
                 does not answer (Needs::answers); the MTA gets it at the next event it waits \
                 for a reply to",
                self.id,
                phase.map_or_else(|| "UNKNOWN".to_owned(), |p| p.to_string()),
            );
        }
        if replies {
            self.encode(&answer, out)?;
        }
        // After end of message, or a verdict for the whole message, the MTA sends nothing
        // more for it (Sendmail not even ABORT), so the message ends here.
        let message_over = at_eom
            || (message_verdict
                && matches!(answer, Answer::Verdict(_))
                && phase.is_some_and(Phase::is_message_wide)
                && self.decided.as_ref().is_some_and(|d| d.sent));
        if message_over {
            self.end_message(false);
        }
        Ok(Outbound {
            answer: replies.then_some(answer),
            message_over,
        })
    }

    /// Writes `answer` to `out`: at end of message the queued edits, then the verdict.
    /// Edits that cannot be encoded (a bug: they are checked when queued) become a tempfail.
    fn encode(&self, answer: &Answer, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match answer {
            Answer::Continue => Response::Continue.encode(out)?,
            Answer::Skip => Response::Skip.encode(out)?,
            Answer::Verdict(verdict) => verdict.encode(out),
            Answer::EditsThen(verdict) => {
                if let Some(edits) = &self.edits {
                    let start = out.len();
                    if let Err(error) = edits.encode(out, self.header_layout()) {
                        error!("connection {}: cannot send edits: {error}", self.id);
                        out.truncate(start);
                        return Response::Tempfail.encode(out);
                    }
                }
                verdict.encode(out);
            }
        }
        Ok(())
    }

    /// How this MTA numbers header positions: Postfix when it has sent macros before a
    /// header or body chunk (Sendmail never does), or its connect macro `v` names it;
    /// Sendmail when it sent connect macros otherwise (both MTAs do by default); plain
    /// (libmilter's documentation read literally) for a peer that sent none, such as
    /// miltertest.
    pub(crate) fn header_layout(&self) -> HeaderLayout {
        let named_postfix = self
            .conn
            .macros
            .get_in(MacroStage::Connect, "v")
            .is_some_and(|v| v.starts_with(b"Postfix"));
        if self.postfix || named_postfix {
            HeaderLayout::Postfix
        } else if self.conn.macros.pairs(MacroStage::Connect).next().is_some() {
            HeaderLayout::Sendmail {
                templates: self.sendmail_header_templates,
            }
        } else {
            HeaderLayout::Plain
        }
    }
}

fn stage_phase(stage: MacroStage) -> Phase {
    match stage {
        MacroStage::Connect => Phase::Connect,
        MacroStage::Helo => Phase::Helo,
        MacroStage::Mail => Phase::Mail,
        MacroStage::Rcpt => Phase::Rcpt,
        MacroStage::Data => Phase::Data,
        MacroStage::EndOfHeaders => Phase::EndOfHeaders,
        MacroStage::EndOfMessage => Phase::EndOfMessage,
    }
}

fn log_negotiation(id: u64, agreed: &Agreed) {
    info!(
        "connection {id}: negotiated version {} actions {:?} protocol {:?}",
        agreed.options.version, agreed.options.actions, agreed.options.protocol
    );
    if !agreed.missing_actions.is_empty() {
        warn!(
            "connection {id}: MTA does not allow {:?}; those edits will be refused",
            agreed.missing_actions
        );
    }
    if !agreed.missing_options.is_empty() {
        warn!(
            "connection {id}: MTA does not offer {:?}",
            agreed.missing_options
        );
    }
    if !agreed.missing_events.is_empty() {
        warn!(
            "connection {id}: protocol version {} never sends {:?}",
            agreed.options.version, agreed.missing_events
        );
    }
}

/// The value of macro `i` in a MACRO packet's pairs, if present.
fn find_queue_id(raw: &[u8]) -> Option<&[u8]> {
    let mut parts = raw.split(|&b| b == 0);
    while let (Some(name), Some(value)) = (parts.next(), parts.next()) {
        if (name == b"i" || name == b"{i}") && !value.is_empty() {
            return Some(value);
        }
    }
    None
}
