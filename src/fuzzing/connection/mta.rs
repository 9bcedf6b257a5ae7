//! The MTA's side of the wire: which frames it sent (decoded as the connection will decode
//! them), which of them wait for a reply, and the checks on every response that comes back.

use std::collections::{BTreeMap, VecDeque};

use super::filter::{BODY_TAG, Edit};
use crate::proto::{
    Actions, Agreed, Command, CommandKind, DecodeError, FrameDecoder, MAX_RESPONSE_PAYLOAD,
    MacroStage, Needs, OptNeg, ProtocolFlags, Response, ResponseKind, negotiate,
};

/// INSHEADER index that appends (the session's `END_INDEX`): such an insert is a header
/// addition and goes out with the additions.
const APPEND_INDEX: u32 = 0x7fff_fffe;

/// How the connection must end, because of what the MTA sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ending {
    /// QUIT: a clean close.
    Quit,
    /// Bytes that are not the protocol.
    Decode,
    /// A valid packet out of place (no OPTNEG first, or OPTNEG again).
    Unexpected,
    /// The offer cannot serve the filter's needs.
    Negotiate,
    /// The negotiated reply cannot be encoded (the filter asked for a macro list holding a
    /// NUL): the connection ends with an encoding error before replying.
    Unencodable,
}

/// A frame the MTA sent, as the connection sees it.
#[derive(Debug)]
pub(super) struct Arrived {
    pub(super) kind: CommandKind,
    /// For a MACRO packet: the stage of the command it precedes, if it has one.
    pub(super) stage: Option<MacroStage>,
    /// The MTA waits for a reply.
    pub(super) wants_reply: bool,
    /// The answer, once its final response came.
    pub(super) answer: Option<Answer>,
    /// Responses seen for it so far (PROGRESS, edits).
    progress: usize,
    edits: Vec<Edit>,
    body: Option<Vec<u8>>,
    rank: u8,
}

/// The responses to one command.
#[derive(Debug)]
pub(super) struct Answer {
    /// The final response's kind and frame bytes.
    pub(super) kind: ResponseKind,
    pub(super) bytes: Vec<u8>,
    /// Modifications before it (end of message only).
    pub(super) edits: Vec<Edit>,
    pub(super) body: Option<Vec<u8>>,
    pub(super) progress: usize,
}

impl Answer {
    /// Whether the final response is a verdict (not continue, not skip).
    pub(super) fn is_verdict(&self) -> bool {
        !matches!(self.kind, ResponseKind::Continue | ResponseKind::Skip)
    }
}

/// What the MTA knows and expects.
pub(super) struct Mta {
    needs: Needs,
    /// Decodes what the MTA sends, as the connection will.
    mirror: FrameDecoder,
    /// A frame-level error: nothing after it is a frame.
    mirror_broken: bool,
    /// Bytes sent so far.
    sent: usize,
    /// Frames sent so far (the next frame's number).
    frames: u32,
    /// End offset of each body chunk whose tag names its own frame number.
    tagged: BTreeMap<u32, usize>,
    /// A body chunk carried a tag naming another frame: the tag cannot be trusted.
    forged_tag: bool,
    /// Decodes what the connection sends.
    replies: FrameDecoder,
    /// The agreed options, once an OPTNEG was sent.
    pub(super) agreed: Option<Agreed>,
    /// The reply negotiation must give.
    expected_optneg: Option<Vec<u8>>,
    /// Frames not yet taken by the harness, in order.
    pub(super) arrived: VecDeque<Arrived>,
    /// The first frame the connection must end on.
    pub(super) ending: Option<Ending>,
    /// Bytes of responses received.
    pub(super) received: usize,
}

impl Mta {
    pub(super) fn new(max_len: u32, needs: Needs) -> Self {
        Self {
            needs,
            mirror: FrameDecoder::with_max_len(max_len),
            mirror_broken: false,
            sent: 0,
            frames: 0,
            tagged: BTreeMap::new(),
            forged_tag: false,
            // Responses are at most 65535 bytes; a longer one fails the check below.
            replies: FrameDecoder::with_max_len(1 << 24),
            agreed: None,
            expected_optneg: None,
            arrived: VecDeque::new(),
            ending: None,
            received: 0,
        }
    }

    /// The number the next frame will have, if nothing of an earlier frame is pending.
    pub(super) fn next_frame(&self) -> Option<u32> {
        (self.mirror.buffered() == 0 && !self.mirror_broken).then_some(self.frames)
    }

    /// No body chunk carried a tag naming another frame than its own.
    pub(super) fn tags_trusted(&self) -> bool {
        !self.forged_tag
    }

    /// Where the tagged body chunk `frame` ended in the stream, if its tag is trustworthy.
    pub(super) fn tagged_end(&self, frame: u32) -> Option<usize> {
        if self.forged_tag {
            return None;
        }
        self.tagged.get(&frame).copied()
    }

    /// Frames sent so far.
    pub(super) fn sent_frames(&self) -> usize {
        self.frames as usize
    }

    /// The MTA sends `bytes`; returns how many frames they completed.
    pub(super) fn send(&mut self, bytes: &[u8]) -> usize {
        self.sent += bytes.len();
        if self.mirror_broken || self.ending.is_some() {
            return 0;
        }
        self.mirror.push(bytes);
        let mut count = 0;
        loop {
            let frame = match self.mirror.decode() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(_) => {
                    self.mirror_broken = true;
                    self.ending = Some(Ending::Decode);
                    break;
                }
            };
            count += 1;
            let number = self.frames;
            self.frames += 1;
            let end = self.sent - self.mirror.buffered();
            self.arrive(&frame, number, end);
            if self.ending.is_some() {
                break;
            }
        }
        count
    }

    fn arrive(&mut self, frame: &crate::proto::Frame, number: u32, end: usize) {
        let Ok(command) = Command::decode_frame(frame) else {
            self.ending = Some(Ending::Decode);
            return;
        };
        if let Command::Body(chunk) | Command::EndOfMessage(chunk) = &command {
            self.note_tag(chunk, number, end);
        }
        let kind = command.kind();
        let Some(agreed) = &self.agreed else {
            // The first frame must be the offer.
            let Command::OptNeg(offer) = command else {
                self.ending = Some(Ending::Unexpected);
                return;
            };
            self.negotiate(offer);
            return;
        };
        let stage = match &command {
            Command::OptNeg(_) => {
                self.ending = Some(Ending::Unexpected);
                return;
            }
            Command::Quit => {
                self.ending = Some(Ending::Quit);
                return;
            }
            Command::Macro(macros) => macros.command_kind().and_then(MacroStage::for_command),
            _ => None,
        };
        let wants_reply = kind == CommandKind::EndOfMessage || wants_reply(&agreed.options, kind);
        self.arrived.push_back(Arrived {
            kind,
            stage,
            wants_reply,
            answer: None,
            progress: 0,
            edits: Vec::new(),
            body: None,
            rank: 0,
        });
    }

    fn negotiate(&mut self, offer: OptNeg) {
        match negotiate(offer, &self.needs) {
            Ok(agreed) => {
                let mut reply = Vec::new();
                if agreed.encode_reply(&mut reply).is_err() {
                    self.ending = Some(Ending::Unencodable);
                    return;
                }
                self.expected_optneg = Some(reply);
                self.agreed = Some(agreed);
                self.arrived.push_back(Arrived {
                    kind: CommandKind::OptNeg,
                    stage: None,
                    wants_reply: true,
                    answer: None,
                    progress: 0,
                    edits: Vec::new(),
                    body: None,
                    rank: 0,
                });
            }
            Err(_) => self.ending = Some(Ending::Negotiate),
        }
    }

    /// A body chunk's tag is trusted only if it names the chunk's own frame.
    fn note_tag(&mut self, chunk: &[u8], number: u32, end: usize) {
        let Some(tagged) = chunk.strip_prefix(BODY_TAG) else {
            return;
        };
        match tagged.get(..4) {
            Some(n) if u32::from_be_bytes([n[0], n[1], n[2], n[3]]) == number => {
                self.tagged.insert(number, end);
            }
            _ => self.forged_tag = true,
        }
    }

    /// Takes what the connection wrote and checks every response.
    ///
    /// # Panics
    ///
    /// When a response breaks the protocol.
    pub(super) fn receive(&mut self, bytes: &[u8]) {
        self.received += bytes.len();
        self.replies.push(bytes);
        loop {
            let frame = match self.replies.decode() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(DecodeError::EmptyFrame) => panic!("the connection sent an empty frame"),
                Err(error) => panic!("the connection sent a bad frame: {error}"),
            };
            assert!(
                frame.payload.len() <= MAX_RESPONSE_PAYLOAD,
                "a response of {} bytes",
                frame.payload.len()
            );
            let response = Response::decode_frame(&frame)
                .unwrap_or_else(|error| panic!("the connection sent a bad response: {error}"));
            let mut wire = Vec::new();
            wire.extend_from_slice(&(frame.payload.len() as u32 + 1).to_be_bytes());
            wire.push(frame.kind);
            wire.extend_from_slice(&frame.payload);
            self.response(&response, wire);
        }
    }

    fn response(&mut self, response: &Response<'_>, wire: Vec<u8>) {
        let agreed = self.agreed.as_ref().map(|a| a.options);
        let expected_optneg = self.expected_optneg.as_deref();
        let Some(command) = self
            .arrived
            .iter_mut()
            .find(|a| a.wants_reply && a.answer.is_none())
        else {
            panic!("{response:?} came with no command waiting for a reply");
        };
        let kind = response.kind();
        if command.kind == CommandKind::OptNeg {
            assert_eq!(kind, ResponseKind::OptNeg, "{response:?} instead of OPTNEG");
            assert_eq!(
                Some(wire.as_slice()),
                expected_optneg,
                "the OPTNEG reply is not the negotiated one"
            );
        } else {
            assert_ne!(
                kind,
                ResponseKind::OptNeg,
                "OPTNEG in reply to {:?}",
                command.kind
            );
        }
        let options = agreed.unwrap_or(OptNeg::VERSION_6);
        let at_eom = command.kind == CommandKind::EndOfMessage;
        if kind == ResponseKind::Progress {
            assert!(at_eom, "PROGRESS in reply to {:?}", command.kind);
            command.progress += 1;
            return;
        }
        if let Some((action, rank, edit)) = edit_of(response) {
            assert!(at_eom, "{response:?} in reply to {:?}", command.kind);
            assert!(
                options.actions.contains(action),
                "{response:?} without {action:?} negotiated ({:?})",
                options.actions
            );
            assert!(
                rank >= command.rank,
                "{response:?} out of the documented flush order"
            );
            command.rank = rank;
            match edit {
                Some(edit) => command.edits.push(edit),
                None => {
                    if let Response::ReplaceBody(chunk) = response {
                        command
                            .body
                            .get_or_insert_with(Vec::new)
                            .extend_from_slice(chunk);
                    }
                }
            }
            return;
        }
        assert!(
            kind.is_final(),
            "{response:?} is neither final nor allowed here"
        );
        if kind == ResponseKind::Skip {
            assert_eq!(
                command.kind,
                CommandKind::Body,
                "SKIP in reply to {:?}",
                command.kind
            );
            assert!(
                options.protocol.contains(ProtocolFlags::SKIP),
                "SKIP without SKIP negotiated"
            );
        }
        let has_edits = !command.edits.is_empty() || command.body.is_some();
        if has_edits {
            assert!(
                matches!(kind, ResponseKind::Continue | ResponseKind::Accept),
                "edits before {response:?}: edits go only with a passing verdict"
            );
        }
        command.answer = Some(Answer {
            kind,
            bytes: wire,
            edits: std::mem::take(&mut command.edits),
            body: command.body.take(),
            progress: command.progress,
        });
    }

    /// Takes the frames at the front that are done: not waiting for a reply, or answered.
    pub(super) fn take_done(&mut self) -> Vec<Arrived> {
        let mut done = Vec::new();
        while let Some(front) = self.arrived.front() {
            if front.wants_reply && front.answer.is_none() {
                break;
            }
            if let Some(front) = self.arrived.pop_front() {
                done.push(front);
            }
        }
        done
    }
}

/// Whether the MTA waits for a reply to `kind` under `options`: every command but ABORT,
/// MACRO, QUIT and `QUIT_NC`, unless its no-reply flag was agreed (protocol reference §4).
fn wants_reply(options: &OptNeg, kind: CommandKind) -> bool {
    let no_reply = match kind {
        CommandKind::Abort
        | CommandKind::Macro
        | CommandKind::Quit
        | CommandKind::QuitNewConnection => return false,
        CommandKind::Connect => ProtocolFlags::NR_CONNECT,
        CommandKind::Helo => ProtocolFlags::NR_HELO,
        CommandKind::Mail => ProtocolFlags::NR_MAIL,
        CommandKind::Rcpt => ProtocolFlags::NR_RCPT,
        CommandKind::Data => ProtocolFlags::NR_DATA,
        CommandKind::Header => ProtocolFlags::NR_HEADER,
        CommandKind::EndOfHeaders => ProtocolFlags::NR_EOH,
        CommandKind::Body => ProtocolFlags::NR_BODY,
        CommandKind::Unknown => ProtocolFlags::NR_UNKNOWN,
        CommandKind::EndOfMessage | CommandKind::OptNeg => return true,
    };
    !options.protocol.contains(no_reply)
}

/// For a modification response: the action it needs, its place in the flush order, and the
/// edit it stands for (`None` for a body chunk).
fn edit_of(response: &Response<'_>) -> Option<(Actions, u8, Option<Edit>)> {
    let bytes = |s: &crate::proto::WireStr<'_>| s.as_bytes().to_vec();
    let args = |a: &Option<crate::proto::WireStr<'_>>| {
        a.as_ref().map(bytes).filter(|a: &Vec<u8>| !a.is_empty())
    };
    Some(match response {
        Response::ChangeFrom { sender, args: a } => (
            Actions::CHANGE_FROM,
            0,
            Some(Edit::From {
                address: bytes(sender),
                args: args(a),
            }),
        ),
        Response::DeleteRcpt(rcpt) => {
            (Actions::DELETE_RCPT, 1, Some(Edit::RcptDelete(bytes(rcpt))))
        }
        Response::AddRcpt(rcpt) => (
            Actions::ADD_RCPT,
            2,
            Some(Edit::RcptAdd {
                address: bytes(rcpt),
                args: None,
            }),
        ),
        Response::AddRcptWithArgs { rcpt, args: a } => (
            Actions::ADD_RCPT_WITH_ARGS,
            2,
            Some(Edit::RcptAdd {
                address: bytes(rcpt),
                args: args(a),
            }),
        ),
        Response::InsertHeader { index, name, .. } => (
            Actions::ADD_HEADERS,
            if *index == APPEND_INDEX { 5 } else { 3 },
            Some(Edit::HeaderAdd(bytes(name))),
        ),
        Response::ChangeHeader { index, name, value } => {
            assert!(
                *index >= 1,
                "CHGHEADER index {index}: the index counts from 1"
            );
            (
                Actions::CHANGE_HEADERS,
                4,
                Some(Edit::HeaderChange {
                    name: bytes(name),
                    delete: value.is_empty(),
                }),
            )
        }
        Response::AddHeader { name, .. } => {
            (Actions::ADD_HEADERS, 5, Some(Edit::HeaderAdd(bytes(name))))
        }
        Response::ReplaceBody(_) => (Actions::CHANGE_BODY, 6, None),
        Response::Quarantine(reason) => (
            Actions::QUARANTINE,
            7,
            Some(Edit::Quarantine(bytes(reason))),
        ),
        _ => return None,
    })
}
