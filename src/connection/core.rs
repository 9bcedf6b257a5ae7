//! One connection's protocol state, with no I/O, no runtime and no clock.
//!
//! The driver feeds it what arrived ([`Core::on_command`], [`Core::on_macro`]) and what the
//! filter call did ([`Core::finished`], [`Core::answer`]); the core says what to do next
//! (end the open message, start a call, what to answer and whether, when the message is
//! over) and owns the connection data that sessions read. Tested as tables below.

use std::fmt;
use std::sync::Arc;

use log::{debug, error, info, warn};

use super::answer::{Answer, Decided, after_verdict, merge, while_running};
use super::config::ConnectionConfig;
use crate::metrics;
use crate::proto::{Agreed, CommandKind, EncodeError, MacroStage, ProtocolFlags, Response};
use crate::session::{
    ConnectionData, EditQueue, EditStorage, Event, EventReply, HeaderLayout, HeaderLimits, Phase,
    Verdict,
};

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

/// A verdict that ended the message before its end, see [`Core::answer_decided`].
#[derive(Clone, Debug, PartialEq, Eq)]
struct DecidedEarly {
    verdict: Verdict,
    /// The MTA's further commands were logged (once per message).
    logged: bool,
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
    /// The message was already decided: answer with [`Core::answer_decided`], call no
    /// filter.
    AnswerDecided,
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

/// What the core keeps about one filter's call for the current message.
#[derive(Debug, Default)]
struct CallRecord {
    /// The filter's name in log lines, when it is one of a named list.
    name: Option<Arc<str>>,
    decided: Option<Decided>,
    edits: Option<EditQueue>,
    /// The filter accepted the whole SMTP connection (Accept at CONNECT or HELO): it is not
    /// called again until a new SMTP session, and counts as accepting meanwhile.
    accepted_connection: bool,
    /// The storage of the last message's edit queue, for the next call's queue.
    spare_edits: EditStorage,
}

impl CallRecord {
    fn reset(&mut self) {
        self.decided = None;
        if let Some(edits) = self.edits.take() {
            self.spare_edits = edits.into_storage();
        }
    }
}

/// How one filter's call stands after an event was delivered: its state and its own reply
/// to the event (a refused recipient).
pub(crate) type CallAnswer = (CallState, Option<EventReply>);

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
    /// The message's calls were started.
    call_started: bool,
    /// One record per filter of the connection, in filter order.
    calls: Vec<CallRecord>,
    message_no: u64,
    /// The MTA's queue id (macro `i`) for log lines, once sent, made safe to log; empty
    /// until then. Cleared, not dropped, between messages, so its storage is reused.
    queue_id: String,
    /// The MTA has shown itself to be Postfix (macros before a header or body chunk, which
    /// Sendmail never sends); decides how header positions are numbered.
    postfix: bool,
    /// A verdict was held at an event declared as not answered; logged once per connection.
    warned_unanswered: bool,
    /// The verdict that ended the message before its end (a reject at a header, say). The
    /// MTA should send nothing more of that message; what it still sends gets this verdict
    /// again, with no filter call, until a new message or SMTP session begins. Kept only
    /// where MAIL is sent: without it a header may as well begin the next message.
    decided_early: Option<DecidedEarly>,
    /// Each filter's answer to the current event, kept to spare an allocation per event.
    answers: Vec<Answer>,
}

impl Core {
    /// The state of a connection that has just negotiated `agreed`, for filters with these
    /// names (one entry per filter; `None` for an unnamed one).
    pub(crate) fn new(
        id: u64,
        agreed: Agreed,
        config: &ConnectionConfig,
        names: Vec<Option<Arc<str>>>,
    ) -> Self {
        log_negotiation(id, &agreed);
        Self {
            id,
            conn: Arc::new(ConnectionData::new(
                id,
                Arc::new(agreed),
                HeaderLimits {
                    count: config.max_headers,
                    bytes: config.max_header_bytes,
                },
            )),
            error_verdict: config.error_verdict.clone(),
            sendmail_header_templates: config.sendmail_header_templates,
            transaction: Transaction::Closed,
            call_started: false,
            calls: names
                .into_iter()
                .map(|name| CallRecord {
                    name,
                    ..CallRecord::default()
                })
                .collect(),
            message_no: 0,
            queue_id: String::new(),
            postfix: false,
            warned_unanswered: false,
            decided_early: None,
            answers: Vec::new(),
        }
    }

    /// What every log line about this connection starts with: `connection 3`, then
    /// `: message 2` inside a message, then ` (queue id 4XyZ1)` once the MTA sent it.
    pub(crate) fn log_context(&self) -> LogContext<'_> {
        LogContext {
            id: self.id,
            message_no: self.call_started.then_some(self.message_no),
            queue_id: self.queue_id(),
        }
    }

    /// The connection data, as sessions see it.
    pub(crate) fn connection_data(&self) -> &Arc<ConnectionData> {
        &self.conn
    }

    /// The queue id for log lines, once the MTA sent it.
    fn queue_id(&self) -> Option<&str> {
        known_queue_id(&self.queue_id)
    }

    /// Takes filter `index`'s spare edit storage, for its next call's queue.
    pub(crate) fn take_spare_edits(&mut self, index: usize) -> EditStorage {
        self.calls
            .get_mut(index)
            .map(|call| std::mem::take(&mut call.spare_edits))
            .unwrap_or_default()
    }

    /// The number of the message the current (or next) call belongs to, from 1.
    pub(crate) fn message_no(&self) -> u64 {
        self.message_no
    }

    /// Whether filter `index` takes part in the next message (it has not accepted the whole
    /// connection).
    pub(crate) fn takes_part(&self, index: usize) -> bool {
        self.calls
            .get(index)
            .is_some_and(|call| !call.accepted_connection)
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
        if self.decided_early.is_some() && stage_phase(*stage) > Phase::Mail {
            return Inbound::NOTHING;
        }
        // Sendmail never sends macros before a header or a body chunk; Postfix does.
        if matches!(for_command, b'L' | b'B') {
            self.postfix = true;
        }
        if let Some(queue_id) = find_queue_id(raw) {
            // Postfix repeats it before every command: keep the copy made the first time.
            if self.queue_id.as_bytes() != queue_id {
                write_log_safe_queue_id(queue_id, &mut self.queue_id);
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
                self.decided_early = None;
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
                self.new_smtp_session();
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
        if self.decided_early.is_some() {
            if Phase::of(kind).is_some_and(|phase| phase <= Phase::Mail) {
                self.decided_early = None;
            } else {
                return Inbound {
                    abort_call: false,
                    then: Then::AnswerDecided,
                };
            }
        }
        if let Event::Unknown(line) = event {
            debug!("{}: unknown SMTP command {line}", self.log_context());
        }
        let abort_call = match Phase::of(kind) {
            Some(phase) => self.at_boundary(phase, kind == CommandKind::Mail),
            None => false,
        };
        if matches!(event, Event::Connect(_)) {
            self.new_smtp_session();
        }
        if matches!(event, Event::Connect(_) | Event::Helo(_)) {
            Arc::make_mut(&mut self.conn).apply(event);
        }
        let start_call = !self.call_started;
        if start_call {
            self.call_started = true;
            self.message_no += 1;
            self.calls.iter_mut().for_each(CallRecord::reset);
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
        let was_closed = self.transaction == Transaction::Closed;
        if phase > Phase::Mail || is_mail_command {
            self.transaction = Transaction::PastMail;
        } else if phase == Phase::Mail && self.transaction == Transaction::Closed {
            self.transaction = Transaction::Open;
        }
        if was_closed && self.transaction != Transaction::Closed {
            metrics::message_begun();
        }
        new_message
    }

    /// A new SMTP session on this milter connection: every filter takes part again.
    fn new_smtp_session(&mut self) {
        for call in &mut self.calls {
            call.accepted_connection = false;
        }
    }

    /// Forgets the current message; the next command starts a new call.
    pub(crate) fn end_message(&mut self, aborted: bool) {
        if aborted && self.call_started {
            debug!("{}: message aborted", self.log_context());
        }
        self.decided_early = None;
        self.calls.iter_mut().for_each(CallRecord::reset);
        self.call_started = false;
        self.transaction = Transaction::Closed;
        self.queue_id.clear();
    }

    /// Records how filter `index`'s call for the message ended.
    pub(crate) fn finished(&mut self, index: usize, outcome: Outcome) {
        let context = LogContext {
            id: self.id,
            message_no: Some(self.message_no),
            queue_id: known_queue_id(&self.queue_id),
        };
        let error_verdict = &self.error_verdict;
        let Some(call) = self.calls.get_mut(index) else {
            return;
        };
        let who = FilterName(call.name.as_deref());
        let (verdict, edits, message_only) = match outcome {
            Outcome::Returned(verdict, edits) => {
                info!("{context}: {who}verdict {}", VerdictText(&verdict));
                (verdict, Some(edits), false)
            }
            Outcome::Aborted => {
                debug!("{context}: {who}returned after abort");
                (Verdict::Continue, None, true)
            }
            Outcome::Failed(error) => {
                metrics::filter_failed(call.name.as_deref());
                error!(
                    "{context}: {who}filter failed: {error}; verdict {}",
                    VerdictText(error_verdict)
                );
                (error_verdict.clone(), None, true)
            }
            Outcome::Panicked(message) => {
                metrics::filter_panicked(call.name.as_deref());
                error!(
                    "{context}: {who}filter panicked: {message}; verdict {}",
                    VerdictText(error_verdict)
                );
                (error_verdict.clone(), None, true)
            }
        };
        call.decided = Some(Decided {
            verdict,
            has_edits: edits.as_ref().is_some_and(|e| !e.is_empty()),
            message_only,
            sent: false,
        });
        call.edits = edits;
    }

    // ===== output =====

    /// What to answer `kind`, given how each filter's call stands after the event was
    /// delivered (`calls`, in filter order); the reply is appended to `out`. Several
    /// filters' answers merge as [`merge`] documents.
    pub(crate) fn answer(
        &mut self,
        kind: CommandKind,
        calls: &[CallAnswer],
        out: &mut Vec<u8>,
    ) -> Result<Outbound, EncodeError> {
        let phase = Phase::of(kind);
        let skip_allowed = self.agreed().options.protocol.contains(ProtocolFlags::SKIP);
        let at_eom = kind == CommandKind::EndOfMessage;
        let mut answers = std::mem::take(&mut self.answers);
        answers.clear();
        answers.extend(self.calls.iter().zip(calls).map(|(record, (state, own))| {
            match (state, own) {
                _ if record.accepted_connection => Answer::Verdict(Verdict::Accept),
                (_, Some(reply)) => reply.clone().into(),
                (CallState::Parked(waits_for), None) => {
                    while_running(phase, None, *waits_for, skip_allowed)
                }
                (CallState::Finished | CallState::Idle, None) => match &record.decided {
                    Some(decided) => after_verdict(decided, phase, skip_allowed),
                    None => Answer::Continue,
                },
            }
        }));
        let answer = merge(&answers);
        let replies = at_eom || self.agreed().expects_reply(kind);
        let is_verdict = matches!(answer, Answer::Verdict(_) | Answer::EditsThen(_));
        if matches!(phase, Some(Phase::Connect | Phase::Helo)) {
            // Accept at CONNECT or HELO is for the whole connection, whatever the others do.
            for (record, given) in self.calls.iter_mut().zip(&answers) {
                let whole = record.decided.as_ref().is_some_and(|d| !d.message_only);
                if whole && *given == Answer::Verdict(Verdict::Accept) {
                    record.accepted_connection = true;
                }
            }
        }
        if replies && is_verdict {
            // A decided verdict that went out is not repeated at later events (a verdict
            // at connect applies to the whole connection).
            for ((record, (_, own)), given) in self.calls.iter_mut().zip(calls).zip(&answers) {
                if let (Some(decided), None, Answer::Verdict(_) | Answer::EditsThen(_)) =
                    (&mut record.decided, own, given)
                {
                    decided.sent = true;
                }
            }
        }
        if replies {
            self.note_sent(kind, &answers, &answer);
        }
        if !replies && is_verdict && !self.warned_unanswered {
            self.warned_unanswered = true;
            warn!(
                "{}: the filter decided {answer:?} at {}, an event it declared it does not \
                 answer (Needs::answers); the MTA gets it at the next event it waits for a \
                 reply to",
                self.log_context(),
                phase.map_or_else(|| "UNKNOWN".to_owned(), |p| p.to_string()),
            );
        }
        if replies {
            self.encode(&answer, out)?;
        }
        // After end of message, or a verdict for the whole message, the MTA sends nothing
        // more for it (Sendmail not even ABORT), so the message ends here.
        let message_over = at_eom
            || (replies
                && matches!(answer, Answer::Verdict(_))
                && phase.is_some_and(Phase::is_message_wide));
        if message_over {
            self.end_message(false);
            // Only where every message begins with MAIL can a command be told to belong to
            // the decided message rather than begin the next one.
            let mail_sent = !self
                .agreed()
                .options
                .protocol
                .contains(ProtocolFlags::NO_MAIL);
            if let (false, true, Answer::Verdict(verdict)) = (at_eom, mail_sent, &answer) {
                self.decided_early = Some(DecidedEarly {
                    verdict: verdict.clone(),
                    logged: false,
                });
            }
        }
        self.answers = answers;
        Ok(Outbound {
            answer: replies.then_some(answer),
            message_over,
        })
    }

    /// Answers a command the MTA sent after a verdict ended its message early (see
    /// [`Then::AnswerDecided`]): the same verdict again where a reply is due (Continue to
    /// an unknown command), logged once per message, so a peer that keeps sending cannot
    /// start a filter call per command.
    pub(crate) fn answer_decided(
        &mut self,
        kind: CommandKind,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        let agreed = Arc::clone(&self.conn.agreed);
        let Some(DecidedEarly { verdict, logged }) = &mut self.decided_early else {
            return Ok(());
        };
        if !*logged {
            *logged = true;
            warn!(
                "connection {}: the MTA sent {kind:?} after the message's verdict ({}); \
                 answering without calling the filter until the next message",
                self.id,
                VerdictText(verdict),
            );
        }
        if kind == CommandKind::Unknown {
            if agreed.expects_reply(kind) {
                Response::Continue.encode(out)?;
            }
        } else if kind == CommandKind::EndOfMessage || agreed.expects_reply(kind) {
            verdict.encode(out);
        }
        Ok(())
    }

    /// Logs and counts a reply that carries a verdict: which filter's it is (the first in
    /// filter order whose own answer it was) and, at RCPT, that a recipient was refused.
    fn note_sent(&self, kind: CommandKind, answers: &[Answer], answer: &Answer) {
        let (Answer::Verdict(verdict) | Answer::EditsThen(verdict)) = answer else {
            return;
        };
        let rcpt = kind == CommandKind::Rcpt;
        if rcpt && verdict.is_pass() {
            // Every filter accepted the connection earlier: nothing new is decided here.
            return;
        }
        let decider = answers
            .iter()
            .position(|given| match given {
                Answer::Verdict(v) | Answer::EditsThen(v) => v == verdict,
                _ => false,
            })
            .and_then(|index| self.calls.get(index));
        let who = FilterName(decider.and_then(|call| call.name.as_deref()));
        let context = self.log_context();
        let stage = metrics::stage_label(kind);
        if rcpt {
            metrics::recipient_refused(verdict);
            info!(
                "{context}: {who}recipient refused: {}",
                VerdictText(verdict)
            );
        } else {
            metrics::verdict_sent(kind, verdict);
            let level = if verdict.is_pass() {
                log::Level::Debug
            } else {
                log::Level::Info
            };
            log::log!(
                level,
                "{context}: {who}sent {} at {stage}",
                VerdictText(verdict)
            );
        }
    }

    /// Writes `answer` to `out`: at end of message the filters' edits, merged in filter
    /// order, then the verdict. Edits that cannot be encoded (a bug: they are checked when
    /// queued) become a tempfail.
    fn encode(&self, answer: &Answer, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match answer {
            Answer::Continue => Response::Continue.encode(out)?,
            Answer::Skip => Response::Skip.encode(out)?,
            Answer::Verdict(verdict) => verdict.encode(out),
            Answer::EditsThen(verdict) => {
                let mut queues = self.calls.iter().filter_map(|c| c.edits.as_ref());
                let merged;
                let edits = match (queues.next(), queues.next()) {
                    (Some(only), None) => Some(only),
                    (Some(first), Some(second)) => {
                        merged = EditQueue::merged([first, second].into_iter().chain(queues));
                        Some(&merged)
                    }
                    (None, _) => None,
                };
                if let Some(edits) = edits {
                    let start = out.len();
                    if let Err(error) = edits.encode(out, self.header_layout()) {
                        error!("{}: cannot send edits: {error}", self.log_context());
                        out.truncate(start);
                        return Response::Tempfail.encode(out);
                    }
                    edits.kinds().for_each(metrics::edit_sent);
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

/// The context of a log line about a connection, see [`Core::log_context`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct LogContext<'a> {
    id: u64,
    message_no: Option<u64>,
    queue_id: Option<&'a str>,
}

impl fmt::Display for LogContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "connection {}", self.id)?;
        if let Some(message_no) = self.message_no {
            write!(f, ": message {message_no}")?;
        }
        if let Some(queue_id) = self.queue_id {
            write!(f, " (queue id {queue_id})")?;
        }
        Ok(())
    }
}

/// `filter NAME: ` for a named member of a list, nothing for a single filter.
struct FilterName<'a>(Option<&'a str>);

impl fmt::Display for FilterName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(name) => write!(f, "filter {name}: "),
            None => Ok(()),
        }
    }
}

/// A verdict in a log line: its kind, and for a reply code the reply itself
/// (`reply 550 5.7.1 no such user`).
struct VerdictText<'a>(&'a Verdict);

impl fmt::Display for VerdictText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Verdict::Reply(code) => write!(f, "reply {code}"),
            Verdict::Shutdown => f.write_str("shutdown (421 4.7.0)"),
            other => f.write_str(metrics::verdict_label(other)),
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

/// The kept queue id, unless none was sent (empty).
fn known_queue_id(kept: &str) -> Option<&str> {
    Some(kept).filter(|id| !id.is_empty())
}

/// Longest queue id kept for log lines; real ones are under 20 characters.
const MAX_LOGGED_QUEUE_ID: usize = 64;

/// Writes the queue id into `out` as it may appear in a log line: control characters
/// escaped (a newline must not split the line), cut at [`MAX_LOGGED_QUEUE_ID`] bytes. A
/// plain id is written as it is, so it compares equal to the next copy the MTA sends.
fn write_log_safe_queue_id(raw: &[u8], out: &mut String) {
    out.clear();
    let kept = raw.get(..MAX_LOGGED_QUEUE_ID).unwrap_or(raw);
    out.extend(String::from_utf8_lossy(kept).escape_debug());
    if kept.len() < raw.len() {
        out.push_str("...");
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

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::proto::{Actions, Events, Family, Needs, OptNeg, negotiate};
    use crate::session::{Address, Client, Text};

    /// A core negotiated with an MTA offering everything, for a filter with `needs`.
    fn core_with(needs: &Needs) -> Core {
        let offer = OptNeg {
            version: 6,
            actions: Actions::V6,
            protocol: ProtocolFlags::KNOWN,
        };
        let agreed = negotiate(offer, needs).expect("negotiates");
        Core::new(7, agreed, &ConnectionConfig::default(), vec![None])
    }

    fn core() -> Core {
        core_with(&Needs::everything())
    }

    fn macros(stage: MacroStage, pairs: &'static [u8]) -> Event {
        Event::Macro {
            stage,
            raw: Bytes::from_static(pairs),
        }
    }

    fn address(text: &str) -> Address {
        Address {
            address: Text::from(text),
            args: Vec::new(),
        }
    }

    /// One packet of a script: a macro packet (with the command byte it precedes) or a
    /// command (with its event, if it has one).
    enum In {
        Macro(u8, Event),
        Command(CommandKind, Option<Event>),
    }

    fn connect() -> In {
        In::Command(
            CommandKind::Connect,
            Some(Event::Connect(Client {
                hostname: Text::from("client.example.com"),
                family: Family::Inet,
                port: 4000,
                address: Text::from("192.0.2.1"),
            })),
        )
    }

    fn command(kind: CommandKind) -> In {
        let event = match kind {
            CommandKind::Helo => Some(Event::Helo(Text::from("client.example.com"))),
            CommandKind::Mail => Some(Event::Mail(address("<a@example.com>"))),
            CommandKind::Rcpt => Some(Event::Rcpt(address("<b@example.net>"))),
            CommandKind::Data => Some(Event::Data),
            CommandKind::EndOfHeaders => Some(Event::EndOfHeaders),
            CommandKind::EndOfMessage => Some(Event::EndOfMessage(Bytes::new())),
            _ => None,
        };
        In::Command(kind, event)
    }

    fn feed(core: &mut Core, packet: &In) -> Inbound {
        match packet {
            In::Macro(byte, event) => core.on_macro(*byte, event),
            In::Command(kind, event) => core.on_command(*kind, event.as_ref()),
        }
    }

    const DELIVER: Inbound = Inbound {
        abort_call: false,
        then: Then::Deliver,
    };
    const START: Inbound = Inbound {
        abort_call: false,
        then: Then::StartAndDeliver,
    };
    const NOTHING: Inbound = Inbound::NOTHING;

    /// Plays `script`, checking what the core says for each packet; end of message is
    /// answered as a call that has returned would be.
    fn play(core: &mut Core, script: &[(In, Inbound)]) {
        for (step, (packet, expected)) in script.iter().enumerate() {
            assert_eq!(&feed(core, packet), expected, "step {step}");
            if let In::Command(CommandKind::EndOfMessage, _) = packet {
                core.finished(
                    0,
                    Outcome::Returned(Verdict::Accept, EditQueue::new(Actions::EMPTY)),
                );
                let out = core
                    .answer(
                        CommandKind::EndOfMessage,
                        &[(CallState::Finished, None)],
                        &mut Vec::new(),
                    )
                    .unwrap();
                assert!(out.message_over, "step {step}");
            }
        }
    }

    #[test]
    fn message_boundaries_with_abort_as_postfix_sends_them() {
        use CommandKind::*;
        let mut core = core();
        play(
            &mut core,
            &[
                (
                    In::Macro(b'C', macros(MacroStage::Connect, b"j\0mx\0")),
                    DELIVER,
                ),
                (connect(), START),
                (command(Helo), DELIVER),
                (In::Macro(b'M', macros(MacroStage::Mail, b"")), DELIVER),
                (command(Mail), DELIVER),
                (command(Rcpt), DELIVER),
                (command(Data), DELIVER),
                (command(EndOfHeaders), DELIVER),
                (command(EndOfMessage), DELIVER),
                // After every message Postfix sends ABORT: outside a message it means nothing.
                (command(Abort), NOTHING),
                (In::Macro(b'M', macros(MacroStage::Mail, b"")), DELIVER),
                (command(Mail), START),
                (command(Rcpt), DELIVER),
                // ABORT inside a message ends it.
                (
                    command(Abort),
                    Inbound {
                        abort_call: true,
                        then: Then::Nothing,
                    },
                ),
                (command(Mail), START),
                (
                    command(Quit),
                    Inbound {
                        abort_call: false,
                        then: Then::Close,
                    },
                ),
            ],
        );
        assert_eq!(core.message_no(), 3);
    }

    #[test]
    fn a_new_message_without_abort_ends_the_last_one() {
        use CommandKind::*;
        let mut core = core();
        let aborted_then = |then| Inbound {
            abort_call: true,
            then,
        };
        play(
            &mut core,
            &[
                (connect(), START),
                (command(Mail), DELIVER),
                (command(Rcpt), DELIVER),
                // Sendmail: the next message's MAIL macros, no ABORT after a refused RCPT.
                (
                    In::Macro(b'M', macros(MacroStage::Mail, b"i\0Q2\0")),
                    aborted_then(Then::Deliver),
                ),
                (command(Mail), START),
                // A MAIL right after a MAIL: the first message is over.
                (command(Mail), aborted_then(Then::StartAndDeliver)),
                // A new CONNECT inside a message (QUIT_NC without it) too.
                (connect(), aborted_then(Then::StartAndDeliver)),
            ],
        );
        assert!(!core.in_transaction());
    }

    #[test]
    fn quit_new_connection_forgets_the_smtp_session() {
        let mut core = core();
        let _ = feed(&mut core, &connect());
        let _ = feed(&mut core, &command(CommandKind::Helo));
        assert!(core.connection_data().client.is_some());
        let inbound = feed(&mut core, &command(CommandKind::QuitNewConnection));
        assert_eq!(
            inbound,
            Inbound {
                abort_call: true,
                then: Then::Nothing,
            }
        );
        assert!(core.connection_data().client.is_none());
        assert!(core.connection_data().helo.is_none());
        // The next CONNECT starts a call of its own.
        assert_eq!(feed(&mut core, &connect()), START);
    }

    #[test]
    fn the_client_is_known_before_the_first_call_starts() {
        let mut core = core();
        assert_eq!(
            feed(
                &mut core,
                &In::Macro(b'C', macros(MacroStage::Connect, b"j\0mx\0"))
            ),
            DELIVER,
            "macros never start a call"
        );
        assert_eq!(feed(&mut core, &connect()), START);
        assert_eq!(
            core.connection_data().client.as_ref().map(|c| c.port),
            Some(4000)
        );
    }

    #[test]
    fn which_mta_decides_header_numbering() {
        let table: &[(&[In], HeaderLayout)] = &[
            (&[], HeaderLayout::Plain),
            (
                &[In::Macro(b'C', macros(MacroStage::Connect, b"j\0mx\0"))],
                HeaderLayout::Sendmail { templates: 9 },
            ),
            (
                &[In::Macro(
                    b'C',
                    macros(MacroStage::Connect, b"v\0Postfix 3.7\0"),
                )],
                HeaderLayout::Postfix,
            ),
            (
                &[
                    In::Macro(b'C', macros(MacroStage::Connect, b"j\0mx\0")),
                    In::Macro(b'L', macros(MacroStage::EndOfHeaders, b"")),
                ],
                HeaderLayout::Postfix,
            ),
        ];
        for (script, layout) in table {
            let mut core = core();
            for packet in *script {
                let _ = feed(&mut core, packet);
            }
            assert_eq!(core.header_layout(), *layout);
        }
    }

    #[test]
    fn the_queue_id_is_kept_for_the_message_and_forgotten_after() {
        let mut core = core();
        let _ = feed(&mut core, &connect());
        let _ = feed(
            &mut core,
            &In::Macro(b'M', macros(MacroStage::Mail, b"i\0ABC123\0")),
        );
        assert_eq!(core.queue_id(), Some("ABC123"));
        let _ = feed(
            &mut core,
            &In::Macro(b'R', macros(MacroStage::Rcpt, b"{i}\0ABC123\0")),
        );
        assert_eq!(core.queue_id(), Some("ABC123"));
        let _ = feed(&mut core, &command(CommandKind::Abort));
        assert_eq!(core.queue_id(), None);
    }

    /// The event, how the call stands, the filter's own reply, its verdict if it returned;
    /// then the answer expected and whether the message ends.
    type Row = (
        CommandKind,
        CallState,
        Option<EventReply>,
        Option<Verdict>,
        Option<Answer>,
        bool,
    );

    /// What the core answers `kind` in each state, and whether the message ends there.
    #[test]
    fn what_to_answer_and_whether() {
        use CommandKind::*;
        let reject = Some(Verdict::Reject);
        let accept = Some(Verdict::Accept);
        let refused = Some(EventReply::Reject);
        let parked = |phase| CallState::Parked(phase);
        #[rustfmt::skip]
        let table: &[Row] = &[
            // A running filter that waits for later: continue.
            (Mail, parked(Phase::Rcpt), None, None, Some(Answer::Continue), false),
            // Its own reply to a recipient.
            (Rcpt, parked(Phase::Rcpt), refused.clone(), None, Some(Answer::Verdict(Verdict::Reject)), false),
            // Returned with reject at MAIL: the message is refused and over.
            (Mail, CallState::Finished, None, reject.clone(), Some(Answer::Verdict(Verdict::Reject)), true),
            // Returned with reject during RCPT: held.
            (Rcpt, CallState::Finished, None, reject.clone(), Some(Answer::Continue), false),
            // Accept at a body chunk: the message is accepted and over.
            (Body, CallState::Finished, None, accept, Some(Answer::Verdict(Verdict::Accept)), true),
            // Waiting for end of message at a body chunk: skip the rest.
            (Body, parked(Phase::EndOfMessage), None, None, Some(Answer::Skip), false),
            // End of message always gets the edits and the verdict, and ends the message.
            (EndOfMessage, CallState::Finished, None, Some(Verdict::Continue), Some(Answer::EditsThen(Verdict::Continue)), true),
            // No filter at all for this event (it returned earlier with continue).
            (Header, CallState::Idle, None, Some(Verdict::Continue), Some(Answer::Continue), false),
        ];
        for (kind, state, own, decided, answer, over) in table {
            let mut core = core();
            let _ = feed(&mut core, &connect());
            let _ = feed(&mut core, &command(Mail));
            if let Some(verdict) = decided {
                core.finished(
                    0,
                    Outcome::Returned(verdict.clone(), EditQueue::new(Actions::EMPTY)),
                );
            }
            let mut out = Vec::new();
            let outbound = core
                .answer(*kind, &[(state.clone(), own.clone())], &mut out)
                .unwrap();
            assert_eq!(&outbound.answer, answer, "{kind:?} {state:?}");
            assert_eq!(outbound.message_over, *over, "{kind:?} {state:?}");
            assert_eq!(
                out.is_empty(),
                answer.is_none(),
                "{kind:?}: written iff answered"
            );
        }
    }

    #[test]
    fn events_declared_unanswered_get_no_reply_and_a_verdict_waits() {
        // MAIL is seen but not answered (NR_MAIL): a reject returned there is held.
        let needs = Needs::new()
            .events(Events::MAIL | Events::RCPT | Events::DATA)
            .answers(Events::DATA);
        let mut core = core_with(&needs);
        let _ = feed(&mut core, &command(CommandKind::Mail));
        core.finished(
            0,
            Outcome::Returned(Verdict::Reject, EditQueue::new(Actions::EMPTY)),
        );
        let mut out = Vec::new();
        let at_mail = core
            .answer(CommandKind::Mail, &[(CallState::Finished, None)], &mut out)
            .unwrap();
        assert_eq!(at_mail.answer, None);
        assert!(out.is_empty());
        assert!(core.warned_unanswered, "logged once");
        let at_data = core
            .answer(CommandKind::Data, &[(CallState::Idle, None)], &mut out)
            .unwrap();
        assert_eq!(at_data.answer, Some(Answer::Verdict(Verdict::Reject)));
        assert!(at_data.message_over);
    }

    #[test]
    fn failures_answer_the_configured_verdict_for_the_message_only() {
        let mut core = core();
        let _ = feed(&mut core, &connect());
        core.finished(0, Outcome::Panicked("boom".into()));
        let mut out = Vec::new();
        // At connect an error verdict does not refuse the connection...
        let at_connect = core
            .answer(
                CommandKind::Connect,
                &[(CallState::Finished, None)],
                &mut out,
            )
            .unwrap();
        assert_eq!(at_connect.answer, Some(Answer::Continue));
        // ...but the message gets it.
        let _ = feed(&mut core, &command(CommandKind::Mail));
        let at_mail = core
            .answer(CommandKind::Mail, &[(CallState::Idle, None)], &mut out)
            .unwrap();
        assert_eq!(at_mail.answer, Some(Answer::Verdict(Verdict::Tempfail)));
    }

    #[test]
    fn commands_after_an_early_verdict_repeat_it_without_a_new_call() {
        let mut core = core();
        let decided = Inbound {
            abort_call: false,
            then: Then::AnswerDecided,
        };
        let _ = feed(&mut core, &connect());
        let _ = feed(&mut core, &command(CommandKind::Mail));
        let _ = feed(&mut core, &command(CommandKind::Data));
        // The filter fails at the header stage (the header limit, say): tempfail.
        core.finished(0, Outcome::Failed("too many headers".into()));
        let mut out = Vec::new();
        let at_data = core
            .answer(CommandKind::Data, &[(CallState::Finished, None)], &mut out)
            .unwrap();
        assert!(at_data.message_over);
        // A peer that keeps sending gets the verdict again and starts no call.
        for kind in [CommandKind::Header, CommandKind::EndOfMessage] {
            let header = In::Command(kind, Some(Event::EndOfHeaders));
            assert_eq!(feed(&mut core, &header), decided, "{kind:?}");
            out.clear();
            core.answer_decided(kind, &mut out).unwrap();
            let mut expected = Vec::new();
            Verdict::Tempfail.encode(&mut expected);
            assert_eq!(out, expected, "{kind:?}");
        }
        assert_eq!(
            feed(
                &mut core,
                &In::Macro(b'B', macros(MacroStage::EndOfMessage, b"x\0y\0"))
            ),
            NOTHING
        );
        // The next message is served again.
        assert_eq!(feed(&mut core, &command(CommandKind::Mail)), START);
        assert_eq!(core.decided_early, None);
    }

    #[test]
    fn the_queue_id_cannot_split_or_flood_a_log_line() {
        let log_safe_queue_id = |raw: &[u8]| {
            let mut out = String::new();
            write_log_safe_queue_id(raw, &mut out);
            out
        };
        assert_eq!(log_safe_queue_id(b"4XyZ1"), "4XyZ1");
        assert_eq!(log_safe_queue_id(b"A\nB\r\x1b"), "A\\nB\\r\\u{1b}");
        let long = log_safe_queue_id(&[b'Q'; 10_000]);
        assert_eq!(long.len(), MAX_LOGGED_QUEUE_ID + 3);
        assert!(long.ends_with("..."));
    }
}
