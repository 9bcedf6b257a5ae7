//! The filter under test: it plays scripts chosen by the input and tells the harness what it
//! did (the probe), so the harness can check the wire against it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::input::{Refusal, Script, Step};
use crate::proto::{Needs, ReplyCode};
use crate::rt::{ManualClock, Timer};
use crate::session::{Error, Filter, HeaderHandle, HeaderPosition, Session, Verdict};

/// The payload of a scripted panic, so a panic hook can tell it from a failed assertion.
#[derive(Debug)]
pub struct ScriptedPanic;

/// A body chunk the harness sends starts with this tag and its frame number (u32, big
/// endian), so the filter can say which frame it holds.
pub(super) const BODY_TAG: &[u8; 4] = b"\xF7FZB";

/// What the filter did, in order, for the harness to check the wire against.
#[derive(Debug)]
pub(super) enum Note {
    /// A call began.
    Started,
    /// `end_of_message` returned Ok.
    ReachedEom,
    /// The newest recipient or unknown command was refused (the call goes on).
    Refused(Refusal),
    /// The call ended.
    Returned(Ending),
}

/// How a call ended and what it had queued.
#[derive(Debug)]
pub(super) struct Ending {
    pub(super) outcome: Outcome,
    /// An await of this call failed with `Error::Aborted`: the connection ended the call,
    /// so its verdict goes nowhere.
    pub(super) aborted: bool,
    pub(super) edits: Vec<Edit>,
    /// The replacement body, if one was queued.
    pub(super) body: Option<Vec<u8>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    Verdict(Verdict),
    /// An error (or a panic): the connection's error verdict applies.
    Failed,
}

/// An edit the session accepted, as it must show on the wire.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Edit {
    /// ADDHEADER or INSHEADER.
    HeaderAdd(Vec<u8>),
    /// CHGHEADER; an empty value deletes.
    HeaderChange {
        name: Vec<u8>,
        delete: bool,
    },
    From {
        address: Vec<u8>,
        args: Option<Vec<u8>>,
    },
    RcptAdd {
        address: Vec<u8>,
        args: Option<Vec<u8>>,
    },
    RcptDelete(Vec<u8>),
    Quarantine(Vec<u8>),
}

/// What the filter shares with the harness.
#[derive(Debug, Default)]
pub(super) struct Probe {
    pub(super) notes: Vec<Note>,
    /// Calls inside a `Sleep` step: the connection waits for them, so the harness moves
    /// the clock.
    pub(super) sleepers: usize,
    /// The frame number of the tagged body chunk the call last received, until its next
    /// await.
    pub(super) body_frame: Option<u32>,
    /// Calls not yet returned or dropped.
    pub(super) live_calls: usize,
    /// `Session::progress` calls.
    pub(super) progress_requests: usize,
    /// Bytes of the edits accepted, for the bound on what the connection may write.
    pub(super) edit_bytes: usize,
    /// What a session showed that contradicts how sessions work (checked by the harness:
    /// a panic here would be caught as the filter's own).
    pub(super) violations: Vec<String>,
    /// Tagged body chunks out of frame order (only meaningful while no tag was forged).
    pub(super) chunk_disorder: Vec<String>,
}

pub(super) type SharedProbe = Arc<Mutex<Probe>>;

pub(super) fn lock(probe: &Mutex<Probe>) -> MutexGuard<'_, Probe> {
    // A scripted panic never holds the lock; a poisoned one is used as is.
    probe.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The filter: plays script `(first + n) % len` on its call `n`.
pub(super) struct Scripted {
    pub(super) scripts: Vec<Script>,
    pub(super) first: usize,
    /// Calls started so far.
    pub(super) calls: AtomicUsize,
    /// The message number of the latest call.
    pub(super) last_message: AtomicU64,
    pub(super) needs: Needs,
    pub(super) probe: SharedProbe,
    pub(super) clock: ManualClock,
    /// `Step::Panic` panics (else it fails as `Step::Fail` does).
    pub(super) panics: bool,
}

impl Filter for Scripted {
    fn needs(&self) -> Needs {
        self.needs.clone()
    }

    async fn filter(&self, session: &mut Session) -> Result<Verdict, Error> {
        let _live = Live::new(&self.probe);
        let call = self.first + self.calls.fetch_add(1, Ordering::Relaxed);
        let script = self
            .scripts
            .get(call % self.scripts.len().max(1))
            .cloned()
            .unwrap_or_default();
        self.note(Note::Started);
        let message = session.message_number();
        let last = self.last_message.swap(message, Ordering::Relaxed);
        if message <= last {
            self.violation(format!("call for message {message} after message {last}"));
        }
        let mut call = Call::default();
        let result = self.play(session, &script, &mut call).await;
        let outcome = match &result {
            Ok(verdict) => Outcome::Verdict(verdict.clone()),
            Err(_) => Outcome::Failed,
        };
        self.note(Note::Returned(call.ending(outcome)));
        result
    }
}

/// What one call has seen and queued.
#[derive(Default)]
struct Call {
    headers: Vec<(HeaderHandle, Vec<u8>)>,
    recipients: Vec<Vec<u8>>,
    /// The frame number of the last tagged body chunk received.
    last_chunk: Option<u32>,
    edits: Vec<Edit>,
    body: Option<Vec<u8>>,
    aborted: bool,
}

impl Call {
    fn ending(&mut self, outcome: Outcome) -> Ending {
        Ending {
            outcome,
            aborted: self.aborted,
            edits: std::mem::take(&mut self.edits),
            body: self.body.take(),
        }
    }

    /// The handle of seen header `index` (modulo the count), or one that names no header
    /// of this message when none was seen.
    fn header(&self, index: u8, message: u64) -> (HeaderHandle, Vec<u8>) {
        match self
            .headers
            .get(usize::from(index) % self.headers.len().max(1))
        {
            Some(seen) => seen.clone(),
            None => (
                HeaderHandle {
                    message: message + 1,
                    position: u32::from(index),
                },
                Vec::new(),
            ),
        }
    }
}

/// Counts a call as live until it returns or is dropped.
struct Live(SharedProbe);

impl Live {
    fn new(probe: &SharedProbe) -> Self {
        lock(probe).live_calls += 1;
        Self(probe.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let mut shared = lock(&self.0);
        shared.live_calls -= 1;
        shared.body_frame = None;
    }
}

/// Counts a call as sleeping until dropped (the sleep ends, or the call is dropped).
struct Asleep(SharedProbe);

impl Asleep {
    fn new(probe: &SharedProbe) -> Self {
        lock(probe).sleepers += 1;
        Self(probe.clone())
    }
}

impl Drop for Asleep {
    fn drop(&mut self) {
        lock(&self.0).sleepers -= 1;
    }
}

/// The verdict a `Return` step's byte stands for.
pub(super) fn verdict(choice: u8) -> Verdict {
    match choice % 9 {
        0 => Verdict::Continue,
        1 => Verdict::Accept,
        2 => Verdict::Reject,
        3 => Verdict::Tempfail,
        4 => Verdict::Discard,
        5 => Verdict::Reply(reply_code(false)),
        6 => Verdict::Reply(reply_code(true)),
        7 => Verdict::Shutdown,
        _ => Verdict::Reply(
            reply_code(false)
                .with_line("second line 100%")
                .unwrap_or_else(|_| reply_code(false)),
        ),
    }
}

/// A permanent or temporary reply code.
pub(super) fn reply_code(temporary: bool) -> ReplyCode {
    let code = if temporary {
        ReplyCode::temporary(451, "4.7.1", "try again later")
    } else {
        ReplyCode::permanent(550, "5.7.1", "refused by policy")
    };
    code.unwrap_or_else(|_| unreachable!("a valid reply code"))
}

/// `16 * len` bytes of body text, CRLF lines.
fn body_text(len: u8) -> Vec<u8> {
    b"0123456789abc\r\n"
        .iter()
        .chain(b"\n")
        .copied()
        .cycle()
        .take(16 * usize::from(len))
        .collect()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl Scripted {
    fn note(&self, note: Note) {
        lock(&self.probe).notes.push(note);
    }

    /// An await's error ends a strict call; otherwise it is noted and the call goes on.
    fn settle<T>(
        result: Result<T, Error>,
        call: &mut Call,
        strict: bool,
    ) -> Result<Option<T>, Error> {
        match result {
            Ok(value) => Ok(Some(value)),
            Err(error) => {
                call.aborted |= error.is_aborted();
                if strict { Err(error) } else { Ok(None) }
            }
        }
    }

    /// Records an edit the session accepted.
    fn edited(&self, call: &mut Call, result: &Result<(), Error>, edit: Edit, bytes: usize) {
        if result.is_ok() {
            call.edits.push(edit);
            lock(&self.probe).edit_bytes += bytes + 32;
        }
    }

    /// Records body text the session accepted (`replace`: instead of what was queued).
    fn body(&self, call: &mut Call, accepted: bool, text: &[u8], replace: bool) {
        if accepted {
            lock(&self.probe).edit_bytes += text.len() + 8;
            let body = call.body.get_or_insert_with(Vec::new);
            if replace {
                body.clear();
            }
            body.extend_from_slice(text);
        }
    }

    fn refuse(&self, refusal: Refusal, answer: impl Fn(Refusal) -> Result<(), Error>) {
        if refusal != Refusal::None && answer(refusal).is_ok() {
            self.note(Note::Refused(refusal));
        }
    }

    fn violation(&self, what: String) {
        lock(&self.probe).violations.push(what);
    }

    /// A body chunk came: tagged ones must come in frame order, each once.
    fn body_chunk(&self, chunk: &[u8], call: &mut Call) {
        if let Some([a, b, c, d, ..]) = chunk.strip_prefix(BODY_TAG) {
            let number = u32::from_be_bytes([*a, *b, *c, *d]);
            lock(&self.probe).body_frame = Some(number);
            if call.last_chunk.is_some_and(|last| last >= number) && number != u32::MAX {
                let what = format!("body chunk {number} after {:?}", call.last_chunk);
                lock(&self.probe).chunk_disorder.push(what);
            }
            call.last_chunk = Some(number);
        }
    }

    async fn play(
        &self,
        session: &mut Session,
        script: &Script,
        call: &mut Call,
    ) -> Result<Verdict, Error> {
        for step in &script.steps {
            match step {
                Step::Sleep(seconds) => {
                    let _asleep = Asleep::new(&self.probe);
                    self.clock
                        .sleep(Duration::from_secs(u64::from(*seconds)))
                        .await;
                }
                Step::Progress => {
                    session.progress();
                    lock(&self.probe).progress_requests += 1;
                }
                Step::Return(choice) => return Ok(verdict(*choice)),
                Step::Fail => return Err(Error::filter("scripted failure")),
                Step::Panic if self.panics => {
                    self.note(Note::Returned(call.ending(Outcome::Failed)));
                    std::panic::panic_any(ScriptedPanic);
                }
                Step::Panic => return Err(Error::filter("scripted failure instead of a panic")),
                Step::CountCalls => *session.connection_state::<u64>() += 1,
                step if self.edit(session, step, call) => {}
                step => {
                    lock(&self.probe).body_frame = None;
                    self.read(session, step, call, script.strict).await?;
                }
            }
        }
        Ok(Verdict::Continue)
    }

    /// Plays an await step.
    async fn read(
        &self,
        session: &mut Session,
        step: &Step,
        call: &mut Call,
        strict: bool,
    ) -> Result<(), Error> {
        match step {
            Step::Helo => {
                Self::settle(session.helo().await, call, strict)?;
            }
            Step::EnvelopeFrom => {
                Self::settle(session.envelope_from().await, call, strict)?;
            }
            Step::NextRecipient(refusal) | Step::AllRecipients(refusal) => loop {
                let result = session.next_recipient().await;
                let Some(Some(recipient)) = Self::settle(result, call, strict)? else {
                    break;
                };
                call.recipients
                    .push(recipient.address().as_bytes().to_vec());
                let arrived = session.recipients().count() + session.rejected_recipients().count();
                if arrived < call.recipients.len() {
                    self.violation("more recipients handed over than arrived".into());
                }
                self.refuse(*refusal, |r| answer_recipient(&recipient, r));
                if matches!(step, Step::NextRecipient(_)) {
                    break;
                }
            },
            Step::NextHeader | Step::AllHeaders => loop {
                let result = session.next_header().await;
                let Some(Some(field)) = Self::settle(result, call, strict)? else {
                    break;
                };
                // Headers come in arrival order, each once, handles counting from 0.
                if field.handle.position() != call.headers.len()
                    || field.handle.message != session.message_number()
                    || session.headers().len() <= field.handle.position()
                {
                    self.violation(format!(
                        "header {} handed over as the call's header {} of {}",
                        field.handle.position(),
                        call.headers.len(),
                        session.headers().len()
                    ));
                }
                call.headers
                    .push((field.handle, field.name.as_bytes().to_vec()));
                if *step == Step::NextHeader {
                    break;
                }
            },
            Step::NextBodyChunk | Step::AllBody { .. } => loop {
                lock(&self.probe).body_frame = None;
                let result = session.next_body_chunk().await;
                let Some(Some(chunk)) = Self::settle(result, call, strict)? else {
                    break;
                };
                self.body_chunk(&chunk, call);
                match step {
                    Step::AllBody { append: true } => {
                        let accepted = session.append_body(&chunk).is_ok();
                        self.body(call, accepted, &chunk, false);
                    }
                    Step::AllBody { append: false } => {}
                    _ => break,
                }
            },
            Step::EndOfMessage => {
                let reached = Self::settle(session.end_of_message().await, call, strict)?;
                if reached.is_some() {
                    self.note(Note::ReachedEom);
                }
            }
            Step::NextUnknown(refusal) => {
                let result = session.next_unknown().await;
                if let Some(Some(command)) = Self::settle(result, call, strict)? {
                    self.refuse(*refusal, |r| match r {
                        Refusal::None => Ok(()),
                        Refusal::Reject => command.reject(),
                        Refusal::Tempfail => command.tempfail(),
                        Refusal::Reply => command.reply(reply_code(false)),
                    });
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Plays an edit step; false for any other step.
    fn edit(&self, session: &mut Session, step: &Step, call: &mut Call) -> bool {
        let message = session.message_number();
        match step {
            Step::AddHeader { name, value } => {
                let result = session.add_header(name, value);
                let bytes = name.len() + value.len();
                self.edited(call, &result, Edit::HeaderAdd(name.to_vec()), bytes);
            }
            Step::InsertHeader {
                at,
                header,
                name,
                value,
            } => {
                let (handle, _) = call.header(*header, message);
                let at = match at % 4 {
                    0 => HeaderPosition::Top,
                    1 => HeaderPosition::End,
                    2 => HeaderPosition::Before(handle),
                    _ => HeaderPosition::After(handle),
                };
                let result = session.insert_header(at, name, value);
                let bytes = name.len() + value.len();
                self.edited(call, &result, Edit::HeaderAdd(name.to_vec()), bytes);
            }
            Step::ChangeHeader { header, value } => {
                let (handle, name) = call.header(*header, message);
                let result = session.change_header(handle, value);
                let bytes = name.len() + value.len();
                let edit = Edit::HeaderChange {
                    name,
                    delete: false,
                };
                self.edited(call, &result, edit, bytes);
            }
            Step::DeleteHeader { header } => {
                let (handle, name) = call.header(*header, message);
                let result = session.delete_header(handle);
                let bytes = name.len();
                self.edited(
                    call,
                    &result,
                    Edit::HeaderChange { name, delete: true },
                    bytes,
                );
            }
            Step::ReplaceBody(len) | Step::AppendBody(len) => {
                let text = body_text(*len);
                let replace = matches!(step, Step::ReplaceBody(_));
                let accepted = if replace {
                    session.replace_body(&text).is_ok()
                } else {
                    session.append_body(&text).is_ok()
                };
                self.body(call, accepted, &text, replace);
            }
            Step::ChangeSender { address, args } | Step::AddRecipient { address, args } => {
                let args = args.as_ref().map(|a| text(a));
                let sender = matches!(step, Step::ChangeSender { .. });
                let result = if sender {
                    session.change_sender(address, args.as_deref())
                } else {
                    session.add_recipient(address, args.as_deref())
                };
                let bytes = address.len() + args.as_ref().map_or(0, String::len);
                let address = address.to_vec();
                let args = args.map(String::into_bytes).filter(|a| !a.is_empty());
                let edit = if sender {
                    Edit::From { address, args }
                } else {
                    Edit::RcptAdd { address, args }
                };
                self.edited(call, &result, edit, bytes);
            }
            Step::RemoveRecipient(address) => {
                // `*` names the first recipient seen.
                let address = match (address.as_slice(), call.recipients.first()) {
                    (b"*", Some(seen)) => seen.clone(),
                    _ => address.to_vec(),
                };
                let result = session.remove_recipient(&address);
                let bytes = address.len();
                self.edited(call, &result, Edit::RcptDelete(address), bytes);
            }
            Step::Quarantine(reason) => {
                let result = session.quarantine(reason);
                let bytes = reason.len();
                self.edited(call, &result, Edit::Quarantine(reason.to_vec()), bytes);
            }
            _ => return false,
        }
        true
    }
}

fn answer_recipient(recipient: &crate::Recipient, refusal: Refusal) -> Result<(), Error> {
    match refusal {
        Refusal::None => Ok(()),
        Refusal::Reject => recipient.reject(),
        Refusal::Tempfail => recipient.tempfail(),
        Refusal::Reply => recipient.reply(reply_code(false)),
    }
}
