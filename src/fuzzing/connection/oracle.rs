//! What the filter decided, and what the connection must therefore answer: the landing
//! rules of the crate documentation ("Where a verdict lands", "Declared answers", "Edits")
//! applied to what the filter noted, independently of the connection core.

use super::filter::{Edit, Note, Outcome};
use super::input::Refusal;
use super::mta::{Answer, Arrived};
use crate::proto::{CommandKind, MacroStage, Response};
use crate::session::{Phase, Verdict};

/// Where the current message stands, as the protocol marks its start and end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transaction {
    Closed,
    /// MAIL-stage macros came: the message has begun.
    Open,
    /// MAIL or a later packet came: another MAIL-stage packet starts a new message.
    PastMail,
}

/// What the filter's call for the current message decided.
#[derive(Debug)]
struct Decided {
    verdict: Verdict,
    /// An error verdict: for the message, never the whole connection.
    message_only: bool,
    edits: Vec<Edit>,
    body: Option<Vec<u8>>,
    /// A reply carrying the verdict went out.
    sent: bool,
}

/// The answer the oracle expects.
#[derive(Debug)]
enum Expect {
    /// This final response (frame bytes), after these edits (end of message only).
    Exactly {
        bytes: Vec<u8>,
        edits: Vec<Edit>,
        body: Option<Vec<u8>>,
    },
    /// CONTINUE, or SKIP at a body chunk.
    Passing,
    /// Not known here.
    Unknown,
}

pub(super) struct Oracle {
    error_verdict: Verdict,
    /// SKIP was agreed.
    pub(super) skip: bool,
    /// MAIL is sent (no `NO_MAIL`): every message begins with it.
    pub(super) mail_sent: bool,
    /// The reply that ended the message before its end (crate docs: commands the MTA
    /// still sends for that message get it again, with no filter call, until a new message
    /// or SMTP session begins; only where MAIL is sent).
    decided_early: Option<Vec<u8>>,
    transaction: Transaction,
    call: Option<Decided>,
    /// The filter accepted the whole SMTP session: it takes no part and counts as accepting.
    accepted: bool,
    /// The filter's own refusal of the current command.
    own: Option<Refusal>,
    tracking: Tracking,
}

/// Whether the filter's notes can be matched with the frames they came with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tracking {
    /// Each note is known to belong to the frames it is applied with.
    Followed,
    /// Lost for now (notes came for several frames at once), until a fresh SMTP session.
    Lost,
    /// Several filters: their notes are not followed.
    Off,
}

fn response(response: &Response<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    if let Err(error) = response.encode(&mut out) {
        unreachable!("a plain response encodes: {error}");
    }
    out
}

fn verdict_bytes(verdict: &Verdict) -> Vec<u8> {
    let mut out = Vec::new();
    verdict.encode(&mut out);
    out
}

fn exactly(bytes: Vec<u8>) -> Expect {
    Expect::Exactly {
        bytes,
        edits: Vec::new(),
        body: None,
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

impl Oracle {
    pub(super) fn new(error_verdict: Verdict, single: bool) -> Self {
        Self {
            tracking: if single {
                Tracking::Followed
            } else {
                Tracking::Off
            },
            error_verdict,
            skip: false,
            mail_sent: true,
            decided_early: None,
            transaction: Transaction::Closed,
            call: None,
            accepted: false,
            own: None,
        }
    }

    /// Whether a message is open (a graceful shutdown waits for its end).
    pub(super) fn in_transaction(&self) -> bool {
        self.transaction != Transaction::Closed
    }

    fn end_message(&mut self) {
        self.transaction = Transaction::Closed;
        self.call = None;
        self.decided_early = None;
    }

    /// A packet of `phase` arrived: it may start a new message without ABORT (Sendmail does
    /// not always send one), and moves the message on.
    fn boundary(&mut self, phase: Phase, is_mail: bool) {
        let new_message = match phase {
            Phase::Connect | Phase::Helo => self.transaction != Transaction::Closed,
            Phase::Mail => self.transaction == Transaction::PastMail,
            _ => false,
        };
        if new_message {
            self.end_message();
        }
        if phase > Phase::Mail || is_mail {
            self.transaction = Transaction::PastMail;
        } else if phase == Phase::Mail && self.transaction == Transaction::Closed {
            self.transaction = Transaction::Open;
        }
    }

    /// A frame reached the connection.
    pub(super) fn arrive(&mut self, frame: &Arrived) {
        match frame.kind {
            CommandKind::Macro => {
                if let Some(stage) = frame.stage {
                    let phase = stage_phase(stage);
                    if self.decided_early.is_none() || phase <= Phase::Mail {
                        self.boundary(phase, false);
                    }
                }
            }
            CommandKind::Abort => {
                self.decided_early = None;
                if self.in_transaction() {
                    self.end_message();
                }
            }
            CommandKind::QuitNewConnection => {
                self.end_message();
                self.accepted = false;
            }
            kind => {
                if self.decided_early.is_some() {
                    if Phase::of(kind).is_some_and(|phase| phase <= Phase::Mail) {
                        self.decided_early = None;
                    } else {
                        return;
                    }
                }
                if let Some(phase) = Phase::of(kind) {
                    self.boundary(phase, kind == CommandKind::Mail);
                }
                if kind == CommandKind::Connect {
                    self.accepted = false;
                }
            }
        }
    }

    /// After `QUIT_NC` handled alone: nothing of the last SMTP session is left, so the
    /// notes are back in step with the frames.
    pub(super) fn fresh_session(&mut self) {
        self.own = None;
        if self.tracking == Tracking::Lost {
            self.tracking = Tracking::Followed;
        }
    }

    /// Notes came for several frames at once: which frame each belongs to is lost until
    /// the next fresh session.
    pub(super) fn lose_track(&mut self) {
        self.own = None;
        if self.tracking == Tracking::Followed {
            self.tracking = Tracking::Lost;
        }
    }

    /// What the filter did while the connection handled the frames just taken.
    pub(super) fn notes(&mut self, notes: Vec<Note>) {
        for note in notes {
            match note {
                Note::Started => self.call = None,
                Note::ReachedEom => {}
                Note::Refused(refusal) => self.own = Some(refusal),
                // An aborted call's verdict goes nowhere.
                Note::Returned(ending) if ending.aborted => {}
                Note::Returned(ending) => {
                    let failed = ending.outcome == Outcome::Failed;
                    self.call = Some(Decided {
                        verdict: match ending.outcome {
                            Outcome::Verdict(verdict) => verdict,
                            Outcome::Failed => self.error_verdict.clone(),
                        },
                        message_only: failed,
                        edits: if failed { Vec::new() } else { ending.edits },
                        body: if failed { None } else { ending.body },
                        sent: false,
                    });
                }
            }
        }
    }

    /// The answer to `kind` the filter's decisions call for (crate docs, "Where a verdict
    /// lands": at CONNECT or HELO a verdict is for the connection, Discard waits for the
    /// message; during RCPT it is held; later it is for the message; a passing verdict with
    /// edits waits for end of message, and body chunks meanwhile get SKIP where agreed).
    fn expected(&self, kind: CommandKind) -> Expect {
        let phase = Phase::of(kind);
        if let Some(bytes) = &self.decided_early {
            return match phase {
                None => exactly(response(&Response::Continue)),
                Some(_) => exactly(bytes.clone()),
            };
        }
        if self.accepted {
            return exactly(response(&Response::Accept));
        }
        if let Some(refusal) = self.own {
            return exactly(match refusal {
                Refusal::None | Refusal::Reject => response(&Response::Reject),
                Refusal::Tempfail => response(&Response::Tempfail),
                Refusal::Reply => verdict_bytes(&Verdict::Reply(super::filter::reply_code(false))),
            });
        }
        let continue_ = || exactly(response(&Response::Continue));
        let Some(decided) = &self.call else {
            // The call is running (or none runs): it passes until it decides.
            return match phase {
                None => continue_(),
                Some(Phase::EndOfMessage) => Expect::Unknown,
                Some(_) => Expect::Passing,
            };
        };
        let Some(phase) = phase else {
            return continue_();
        };
        if decided.sent {
            return continue_();
        }
        let verdict = &decided.verdict;
        if phase == Phase::EndOfMessage {
            return if verdict.is_pass() {
                Expect::Exactly {
                    bytes: verdict_bytes(verdict),
                    edits: decided.edits.clone(),
                    body: decided.body.clone(),
                }
            } else {
                exactly(verdict_bytes(verdict))
            };
        }
        let pass_on = || {
            if phase == Phase::Body && self.skip {
                exactly(response(&Response::Skip))
            } else {
                continue_()
            }
        };
        let has_edits = !decided.edits.is_empty() || decided.body.is_some();
        let connection_phase = matches!(phase, Phase::Connect | Phase::Helo);
        match verdict {
            Verdict::Continue => pass_on(),
            Verdict::Accept if has_edits => pass_on(),
            Verdict::Discard if connection_phase => continue_(),
            _ if phase == Phase::Rcpt => continue_(),
            _ if connection_phase && decided.message_only => continue_(),
            _ => exactly(verdict_bytes(verdict)),
        }
    }

    /// The connection answered `frame` (or not, where the MTA waits for nothing): check the
    /// answer, then follow the message's end.
    ///
    /// # Panics
    ///
    /// When the answer is not what the filter decided.
    pub(super) fn answer(&mut self, frame: &Arrived) {
        let kind = frame.kind;
        if matches!(
            kind,
            CommandKind::Macro
                | CommandKind::Abort
                | CommandKind::QuitNewConnection
                | CommandKind::OptNeg
                | CommandKind::Quit
        ) {
            return;
        }
        let phase = Phase::of(kind);
        let expected = self.expected(kind);
        if let Some(answer) = &frame.answer {
            if self.tracking == Tracking::Followed {
                check(kind, &expected, answer);
            }
            if answer.is_verdict() && self.own.is_none() {
                if let Some(decided) = &mut self.call {
                    decided.sent = true;
                }
            }
        }
        let accept = response(&Response::Accept);
        let accepts = matches!(&expected, Expect::Exactly { bytes, .. } if *bytes == accept);
        if matches!(phase, Some(Phase::Connect | Phase::Helo))
            && accepts
            && self.call.as_ref().is_some_and(|d| !d.message_only)
        {
            self.accepted = true;
        }
        self.own = None;
        if self.decided_early.is_some() {
            // Answered again without a call: the message stays decided.
            return;
        }
        if let Some(answer) = &frame.answer {
            let message_wide = phase.is_some_and(Phase::is_message_wide);
            if kind == CommandKind::EndOfMessage || (answer.is_verdict() && message_wide) {
                self.end_message();
                if kind != CommandKind::EndOfMessage && self.mail_sent {
                    self.decided_early = Some(answer.bytes.clone());
                }
            }
        }
    }
}

fn check(kind: CommandKind, expected: &Expect, answer: &Answer) {
    match expected {
        Expect::Exactly { bytes, edits, body } => {
            assert_eq!(
                &answer.bytes, bytes,
                "{kind:?} answered {:?}, not as the filter decided",
                answer.kind
            );
            let mut sent = answer.edits.clone();
            let mut queued = edits.clone();
            sent.sort();
            queued.sort();
            assert_eq!(
                sent, queued,
                "{kind:?}: the edits sent are not those queued"
            );
            assert_eq!(
                &answer.body, body,
                "{kind:?}: the body sent is not the one queued"
            );
        }
        Expect::Passing => assert!(
            !answer.is_verdict(),
            "{kind:?} answered {:?} while the filter had not decided",
            answer.kind
        ),
        Expect::Unknown => {}
    }
}
