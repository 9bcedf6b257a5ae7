//! Option negotiation: the MTA's offer, the filter's needs, and the pure function between them.

use std::fmt;

use super::command::CommandKind;
use super::cursor::{Reader, put_cstr};
use super::error::{DecodeError, EncodeError};
use super::flags::{Actions, Events, ProtocolFlags};
use super::wire_str::WireStr;

/// The newest protocol version this library speaks.
pub const PROTOCOL_VERSION: u32 = 6;

/// The oldest protocol version an MTA may offer (libmilter refuses anything older too).
pub const MIN_PROTOCOL_VERSION: u32 = 2;

/// The fixed part of an OPTNEG packet, in either direction: version, actions, protocol options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptNeg {
    /// Protocol version.
    pub version: u32,
    /// Actions offered (from the MTA) or used (from the filter).
    pub actions: Actions,
    /// Protocol options offered (from the MTA) or wanted (from the filter).
    pub protocol: ProtocolFlags,
}

impl OptNeg {
    /// What Postfix 3.7 and Sendmail 8.17 offer: version 6 with every action and option.
    pub const VERSION_6: Self = Self {
        version: 6,
        actions: Actions::V6,
        protocol: ProtocolFlags::V6,
    };

    /// Under these agreed options, whether the MTA sends `command` at all: its `NO_*` flag
    /// is unset and the version has it (no UNKNOWN below 3, no DATA below 4).
    #[must_use]
    pub fn sends(&self, command: CommandKind) -> bool {
        event_of(command).is_none_or(|event| self.sends_events(event))
    }

    /// Whether the MTA sends every event of `events` (see [`OptNeg::sends`]).
    #[must_use]
    pub fn sends_events(&self, events: Events) -> bool {
        Events::FLAGS
            .iter()
            .filter(|(e, _, _)| events.contains(*e))
            .all(|&(e, no, _)| !self.protocol.contains(no) && version_has_event(self.version, e))
    }

    /// Under these agreed options, whether the MTA waits for a reply to `command`: it is a
    /// command that is answered at all and its `NR_*` flag is unset.
    #[must_use]
    pub fn expects_reply(&self, command: CommandKind) -> bool {
        if !command.expects_reply() {
            return false;
        }
        event_of(command).is_none_or(|event| {
            Events::FLAGS
                .iter()
                .find(|(e, _, _)| *e == event)
                .is_none_or(|&(_, _, nr)| !self.protocol.contains(nr))
        })
    }

    pub(crate) fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(payload, "OPTNEG");
        let fixed = Self::read_fixed(&mut reader)?;
        reader.finish()?;
        Ok(fixed)
    }

    fn read_fixed(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            version: reader.take_u32("version")?,
            actions: Actions::from_bits(reader.take_u32("actions")?),
            protocol: ProtocolFlags::from_bits(reader.take_u32("protocol")?),
        })
    }

    pub(crate) fn encode_payload(&self, dst: &mut Vec<u8>) {
        dst.extend_from_slice(&self.version.to_be_bytes());
        dst.extend_from_slice(&self.actions.bits().to_be_bytes());
        dst.extend_from_slice(&self.protocol.bits().to_be_bytes());
    }
}

/// A macro stage (`SMFIM_*`): which command's MACRO packet a requested list controls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MacroStage {
    /// `SMFIM_CONNECT` (0): sent before CONNECT.
    Connect,
    /// `SMFIM_HELO` (1): sent before HELO.
    Helo,
    /// `SMFIM_ENVFROM` (2): sent before MAIL.
    Mail,
    /// `SMFIM_ENVRCPT` (3): sent before RCPT.
    Rcpt,
    /// `SMFIM_DATA` (4): sent before DATA.
    Data,
    /// `SMFIM_EOM` (5): sent before end of message (Postfix: also before each body chunk).
    EndOfMessage,
    /// `SMFIM_EOH` (6): sent before end of headers (Postfix: also before each header).
    EndOfHeaders,
}

impl MacroStage {
    /// Every stage in wire order.
    pub const ALL: [Self; 7] = [
        Self::Connect,
        Self::Helo,
        Self::Mail,
        Self::Rcpt,
        Self::Data,
        Self::EndOfMessage,
        Self::EndOfHeaders,
    ];

    /// The stage whose macros arrive before `command`, if any.
    #[must_use]
    pub fn for_command(command: CommandKind) -> Option<Self> {
        Some(match command {
            CommandKind::Connect => Self::Connect,
            CommandKind::Helo => Self::Helo,
            CommandKind::Mail => Self::Mail,
            CommandKind::Rcpt => Self::Rcpt,
            CommandKind::Data => Self::Data,
            CommandKind::Header | CommandKind::EndOfHeaders => Self::EndOfHeaders,
            CommandKind::Body | CommandKind::EndOfMessage => Self::EndOfMessage,
            _ => return None,
        })
    }
}

impl TryFrom<u32> for MacroStage {
    type Error = DecodeError;

    fn try_from(value: u32) -> Result<Self, DecodeError> {
        Ok(match value {
            0 => Self::Connect,
            1 => Self::Helo,
            2 => Self::Mail,
            3 => Self::Rcpt,
            4 => Self::Data,
            5 => Self::EndOfMessage,
            6 => Self::EndOfHeaders,
            other => return Err(DecodeError::UnknownMacroStage(other)),
        })
    }
}

impl From<MacroStage> for u32 {
    fn from(stage: MacroStage) -> u32 {
        match stage {
            MacroStage::Connect => 0,
            MacroStage::Helo => 1,
            MacroStage::Mail => 2,
            MacroStage::Rcpt => 3,
            MacroStage::Data => 4,
            MacroStage::EndOfMessage => 5,
            MacroStage::EndOfHeaders => 6,
        }
    }
}

/// The filter's OPTNEG reply: the agreed options plus macro lists requested per stage.
#[derive(Clone, Copy)]
pub struct OptNegReply<'a> {
    /// The agreed version, actions and protocol options.
    pub options: OptNeg,
    requests: RequestsRepr<'a>,
}

#[derive(Clone, Copy)]
enum RequestsRepr<'a> {
    /// Checked wire bytes: entries of a u32 stage and a NUL-terminated list.
    Wire(&'a [u8]),
    Slice(&'a [(MacroStage, WireStr<'a>)]),
}

impl<'a> OptNegReply<'a> {
    /// A reply requesting, for each listed stage, the macros named (space-separated, such as
    /// `"i {auth_authen}"`).
    #[must_use]
    pub const fn new(options: OptNeg, macro_requests: &'a [(MacroStage, WireStr<'a>)]) -> Self {
        Self {
            options,
            requests: RequestsRepr::Slice(macro_requests),
        }
    }

    /// The macro lists requested, in packet order.
    pub fn macro_requests(&self) -> impl Iterator<Item = (MacroStage, WireStr<'a>)> + use<'a> {
        let mut wire = match self.requests {
            RequestsRepr::Wire(raw) => Some(Reader::new(raw, "OPTNEG")),
            RequestsRepr::Slice(_) => None,
        };
        let mut slice = match self.requests {
            RequestsRepr::Slice(list) => list.iter(),
            RequestsRepr::Wire(_) => [].iter(),
        };
        std::iter::from_fn(move || match &mut wire {
            Some(reader) if !reader.is_empty() => {
                let stage = MacroStage::try_from(reader.take_u32("macro stage").ok()?).ok()?;
                Some((stage, reader.take_cstr("macro list").ok()?))
            }
            Some(_) => None,
            None => slice.next().copied(),
        })
    }

    pub(crate) fn decode(payload: &'a [u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(payload, "OPTNEG reply");
        let options = OptNeg::read_fixed(&mut reader)?;
        let raw = reader.rest();
        let mut check = Reader::new(raw, "OPTNEG reply");
        while !check.is_empty() {
            MacroStage::try_from(check.take_u32("macro stage")?)?;
            check.take_cstr("macro list")?;
        }
        Ok(Self {
            options,
            requests: RequestsRepr::Wire(raw),
        })
    }

    pub(crate) fn encode_payload(&self, dst: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.options.encode_payload(dst);
        for (stage, names) in self.macro_requests() {
            dst.extend_from_slice(&u32::from(stage).to_be_bytes());
            put_cstr(dst, names, "macro list")?;
        }
        Ok(())
    }
}

impl PartialEq for OptNegReply<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.options == other.options && self.macro_requests().eq(other.macro_requests())
    }
}

impl Eq for OptNegReply<'_> {}

impl fmt::Debug for OptNegReply<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OptNegReply")
            .field("options", &self.options)
            .field("macro_requests", &self.macro_requests().collect::<Vec<_>>())
            .finish()
    }
}

/// What a filter declares about itself; negotiation turns it into flags.
///
/// Start from [`Needs::new`], which asks for nothing, and name what the filter uses with the
/// chained setters; [`Needs::everything`] is the catch-all the library gives a filter that
/// declares nothing.
///
/// ```
/// use async_milter::Needs;
/// use async_milter::proto::{Actions, Events, MacroStage};
///
/// // Sees recipients and headers, may refuse recipients, adds a header, wants `{rcpt_addr}`.
/// let needs = Needs::new()
///     .events(Events::RCPT | Events::HEADER | Events::EOH)
///     .answers(Events::RCPT)
///     .actions(Actions::ADD_HEADERS)
///     .macros(MacroStage::Rcpt, "{rcpt_addr}");
/// assert_eq!(needs.get_actions(), Actions::ADD_HEADERS);
/// ```
///
/// There is deliberately no `Default`: it used to mean "everything", and a silent change of
/// meaning would be worse than a compile error. Say [`Needs::new`] or
/// [`Needs::everything`]. The accessors are named `get_*` (as `std::process::Command`'s are)
/// because the setters take the plain names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Needs {
    actions: Actions,
    optional_actions: Actions,
    events: Events,
    answers: Events,
    options: ProtocolFlags,
    macros: Vec<(MacroStage, String)>,
}

// `Default` is left out on purpose (see the type's docs).
#[allow(clippy::new_without_default)]
impl Needs {
    /// Nothing at all: no events (each suppressed where the MTA allows), no answers, no
    /// actions, no extra options, no macro lists. End of message is always sent and answered.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            actions: Actions::EMPTY,
            optional_actions: Actions::EMPTY,
            events: Events::EMPTY,
            answers: Events::EMPTY,
            options: ProtocolFlags::EMPTY,
            macros: Vec::new(),
        }
    }

    /// The catch-all for a filter that declares nothing (a plain function filter, or a
    /// [`Filter`](crate::Filter) without its own `needs`): every event but UNKNOWN (no
    /// awaitable reads it), every answer, every action the MTA offers (none required), and
    /// `SKIP`. The MTA then sends and waits for everything; declaring less is cheaper.
    #[must_use]
    pub const fn everything() -> Self {
        Self {
            actions: Actions::EMPTY,
            optional_actions: Actions::V6.difference(Actions::SET_MACRO_LIST),
            events: Events::ALL.difference(Events::UNKNOWN),
            answers: Events::ALL,
            options: ProtocolFlags::SKIP,
            macros: Vec::new(),
        }
    }

    /// Actions the filter cannot work without: an MTA lacking one is refused. Replaces the
    /// previous set.
    #[must_use]
    pub fn actions(mut self, actions: Actions) -> Self {
        self.actions = actions;
        self
    }

    /// Actions used when the MTA offers them; a missing one is logged, not fatal (an edit
    /// needing it then fails when queued). Replaces the previous set.
    #[must_use]
    pub fn optional_actions(mut self, actions: Actions) -> Self {
        self.optional_actions = actions;
        self
    }

    /// Events the filter awaits; the others are suppressed where the MTA allows (awaiting
    /// one then fails with `Error::Absent`). Replaces the previous set.
    #[must_use]
    pub fn events(mut self, events: Events) -> Self {
        self.events = events;
        self
    }

    /// Events the filter may answer with something other than continue (a verdict returned
    /// while the event is current, or a refused recipient); the others are negotiated as
    /// no-reply where the MTA allows, so it does not wait. Only events also given to
    /// [`Needs::events`] count. Replaces the previous set.
    #[must_use]
    pub fn answers(mut self, events: Events) -> Self {
        self.answers = events;
        self
    }

    /// Extra options wanted when offered: `SKIP`, `HEADER_LEADING_SPACE`, `RCPT_REJECTED`
    /// (others are ignored). Replaces the previous set. `SKIP` is an answer to a body chunk,
    /// so it takes effect only with `BODY` among [`Needs::answers`].
    #[must_use]
    pub fn options(mut self, options: ProtocolFlags) -> Self {
        self.options = options;
        self
    }

    /// Asks for the macros `names` (separated by spaces, such as `"{auth_authen} {auth_type}"`)
    /// at `stage`. Calling it again for the same stage adds to that stage's list.
    ///
    /// A list replaces the MTA's default list for its stage (`SETSYMLIST`). So that the
    /// queue id stays known (log lines, [`Session::queue_id`](crate::Session::queue_id)),
    /// negotiation adds `i` to a list for MAIL, RCPT, DATA, end of headers or end of message
    /// unless it names `i` or `{i}` already; an empty list for one of those stages thus asks
    /// for `i` alone. A list for end of headers or end of message brings one for the other
    /// (Sendmail uses either only with both). Requested only when the MTA offers
    /// `SET_MACRO_LIST` (version 6).
    #[must_use]
    pub fn macros(mut self, stage: MacroStage, names: &str) -> Self {
        match self.macros.iter_mut().find(|(s, _)| *s == stage) {
            Some((_, list)) => {
                if !names.is_empty() {
                    if !list.is_empty() {
                        list.push(' ');
                    }
                    list.push_str(names);
                }
            }
            None => self.macros.push((stage, names.to_owned())),
        }
        self
    }

    /// Whether negotiation can carry these needs: a macro list with a NUL byte cannot be
    /// sent (the field would end there), so every connection would fail at OPTNEG.
    /// [`Server::serve`](crate::Server::serve) checks this once before it accepts.
    ///
    /// # Errors
    ///
    /// [`EncodeError::InteriorNul`] for a macro list with a NUL byte.
    pub fn check(&self) -> Result<(), EncodeError> {
        if self.macros.iter().any(|(_, names)| names.contains('\0')) {
            return Err(EncodeError::InteriorNul {
                field: "macro list",
            });
        }
        Ok(())
    }

    /// What several filters on one connection need together: an event is sent if any of
    /// them awaits it and gets a reply if any may answer it; actions and options add up
    /// (required by one: required); macro lists merge per stage, each name once.
    #[must_use]
    pub fn union(&self, other: &Self) -> Self {
        let mut merged = Self {
            actions: self.actions | other.actions,
            optional_actions: (self.optional_actions | other.optional_actions)
                - (self.actions | other.actions),
            events: self.events | other.events,
            answers: (self.answers & self.events) | (other.answers & other.events),
            options: self.options | other.options,
            macros: self.macros.clone(),
        };
        for (stage, names) in &other.macros {
            let index = merged.macros.iter().position(|(s, _)| s == stage);
            let index = index.unwrap_or_else(|| {
                merged.macros.push((*stage, String::new()));
                merged.macros.len() - 1
            });
            let Some((_, list)) = merged.macros.get_mut(index) else {
                continue;
            };
            for name in names.split_whitespace() {
                if !list.split_whitespace().any(|n| n == name) {
                    if !list.is_empty() {
                        list.push(' ');
                    }
                    list.push_str(name);
                }
            }
        }
        merged
    }

    /// The required actions ([`Needs::actions`]).
    #[must_use]
    pub fn get_actions(&self) -> Actions {
        self.actions
    }

    /// The optional actions ([`Needs::optional_actions`]).
    #[must_use]
    pub fn get_optional_actions(&self) -> Actions {
        self.optional_actions
    }

    /// The events the filter awaits ([`Needs::events`]).
    #[must_use]
    pub fn get_events(&self) -> Events {
        self.events
    }

    /// The events the filter may answer ([`Needs::answers`]).
    #[must_use]
    pub fn get_answers(&self) -> Events {
        self.answers
    }

    /// The extra options wanted ([`Needs::options`]).
    #[must_use]
    pub fn get_options(&self) -> ProtocolFlags {
        self.options
    }

    /// The macro lists as declared, one per stage in the order first named, before
    /// negotiation adds `i` ([`Needs::macros`]).
    #[must_use]
    pub fn get_macros(&self) -> &[(MacroStage, String)] {
        &self.macros
    }
}

/// Why negotiation failed: the MTA cannot give what the filter needs.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NegotiateError {
    /// The MTA offered a protocol version older than 2.
    UnsupportedVersion(u32),
    /// The MTA does not allow actions the filter requires.
    MissingActions(Actions),
}

impl fmt::Display for NegotiateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnsupportedVersion(version) => {
                write!(
                    f,
                    "MTA offers protocol version {version}, at least {MIN_PROTOCOL_VERSION} is needed"
                )
            }
            Self::MissingActions(missing) => {
                write!(f, "MTA does not allow required actions {missing:?}")
            }
        }
    }
}

impl std::error::Error for NegotiateError {}

/// The outcome of negotiation: what to reply and how the rest of the connection behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agreed {
    /// The MTA's offer as received.
    pub offer: OptNeg,
    /// The version, actions and protocol options of the reply.
    pub options: OptNeg,
    /// Optional actions the filter wanted but the MTA does not allow.
    pub missing_actions: Actions,
    /// Extra options the filter wanted but the MTA does not offer.
    pub missing_options: ProtocolFlags,
    /// Events the filter wanted to see that this MTA version never sends.
    pub missing_events: Events,
    /// Macro lists to request, empty if the MTA does not allow them.
    pub macros: Vec<(MacroStage, String)>,
}

impl Agreed {
    /// Whether the MTA will send `event` on this connection.
    #[must_use]
    pub fn sends(&self, event: Events) -> bool {
        self.options.sends_events(event)
    }

    /// Whether the MTA waits for a reply to `command`.
    #[must_use]
    pub fn expects_reply(&self, command: CommandKind) -> bool {
        self.options.expects_reply(command)
    }

    /// Whether the filter may send `actions`.
    #[must_use]
    pub fn allows(&self, actions: Actions) -> bool {
        self.options.actions.contains(actions)
    }

    /// The OPTNEG reply to send, borrowing the requested macro lists.
    pub fn encode_reply(&self, dst: &mut Vec<u8>) -> Result<(), EncodeError> {
        let requests: Vec<(MacroStage, WireStr<'_>)> = self
            .macros
            .iter()
            .map(|(stage, names)| (*stage, WireStr::from(names.as_str())))
            .collect();
        super::response::Response::OptNeg(OptNegReply::new(self.options, &requests)).encode(dst)
    }
}

/// The event a command announces, if it is one a filter can suppress or leave unanswered.
#[must_use]
pub fn event_of(command: CommandKind) -> Option<Events> {
    Some(match command {
        CommandKind::Connect => Events::CONNECT,
        CommandKind::Helo => Events::HELO,
        CommandKind::Mail => Events::MAIL,
        CommandKind::Rcpt => Events::RCPT,
        CommandKind::Data => Events::DATA,
        CommandKind::Header => Events::HEADER,
        CommandKind::EndOfHeaders => Events::EOH,
        CommandKind::Body => Events::BODY,
        CommandKind::Unknown => Events::UNKNOWN,
        _ => return None,
    })
}

/// UNKNOWN exists from version 3 and DATA from version 4.
fn version_has_event(version: u32, event: Events) -> bool {
    match event {
        e if e == Events::UNKNOWN => version >= 3,
        e if e == Events::DATA => version >= 4,
        _ => true,
    }
}

/// The protocol options a version defines.
fn version_protocol(version: u32) -> ProtocolFlags {
    match version {
        ..=2 => ProtocolFlags::V2 | ProtocolFlags::NR_HEADER,
        3 => ProtocolFlags::V2 | ProtocolFlags::NR_HEADER | ProtocolFlags::NO_UNKNOWN,
        4 | 5 => {
            ProtocolFlags::V2
                | ProtocolFlags::NR_HEADER
                | ProtocolFlags::NO_UNKNOWN
                | ProtocolFlags::NO_DATA
        }
        _ => ProtocolFlags::V6,
    }
}

/// The actions a version defines.
fn version_actions(version: u32) -> Actions {
    if version >= 6 {
        Actions::V6
    } else {
        Actions::V2
    }
}

/// Agrees on options from the MTA's `offer` and the filter's `needs`.
///
/// The reply version is the lower of 6 and the offer; actions and options are subsets of
/// what was offered (libmilter's reading of an empty offer as the version 1 set included).
/// Events the filter does not need are suppressed, events it does not answer are marked
/// no-reply, each only where the MTA offers the flag; the session answers the rest itself.
pub fn negotiate(offer: OptNeg, needs: &Needs) -> Result<Agreed, NegotiateError> {
    if offer.version < MIN_PROTOCOL_VERSION {
        return Err(NegotiateError::UnsupportedVersion(offer.version));
    }
    let version = offer.version.min(PROTOCOL_VERSION);
    let offered_actions = if offer.actions.is_empty() {
        Actions::V1
    } else {
        offer.actions
    } & version_actions(version);
    let offered_protocol = if offer.protocol.is_empty() {
        ProtocolFlags::V1
    } else {
        offer.protocol
    } & version_protocol(version);

    let missing_required = needs.actions - offered_actions;
    if !missing_required.is_empty() {
        return Err(NegotiateError::MissingActions(missing_required));
    }
    let mut actions = needs.actions | (needs.optional_actions & offered_actions);
    let wanted_actions = needs.actions | needs.optional_actions;

    let mut protocol = ProtocolFlags::EMPTY;
    let mut missing_events = Events::EMPTY;
    for (event, no, nr) in Events::FLAGS {
        if needs.events.contains(event) {
            if !needs.answers.contains(event) && offered_protocol.contains(nr) {
                protocol |= nr;
            }
            if !version_has_event(version, event) {
                missing_events |= event;
            }
        } else if offered_protocol.contains(no) {
            protocol |= no;
        } else if offered_protocol.contains(nr) {
            protocol |= nr;
        }
    }
    let extras = needs.options
        & (ProtocolFlags::SKIP
            | ProtocolFlags::HEADER_LEADING_SPACE
            | ProtocolFlags::RCPT_REJECTED);
    protocol |= extras & offered_protocol;

    let mut macros = Vec::new();
    if !needs.macros.is_empty() {
        if offered_actions.contains(Actions::SET_MACRO_LIST) {
            actions |= Actions::SET_MACRO_LIST;
            macros = complete_macro_requests(&needs.macros);
            if protocol.contains(ProtocolFlags::RCPT_REJECTED) {
                keep_rejection_mark(&mut macros);
            }
        } else {
            actions = actions - Actions::SET_MACRO_LIST;
        }
    }
    let mut missing_actions = wanted_actions - actions;
    if !needs.macros.is_empty() && !actions.contains(Actions::SET_MACRO_LIST) {
        missing_actions |= Actions::SET_MACRO_LIST;
    }

    Ok(Agreed {
        offer,
        options: OptNeg {
            version,
            actions,
            protocol,
        },
        missing_actions,
        missing_options: extras - offered_protocol,
        missing_events,
        macros,
    })
}

/// A filter that asked for rejected recipients tells them apart by `{rcpt_mailer}` being
/// `error` (protocol reference §2.6); a RCPT list of its own must keep that macro.
fn keep_rejection_mark(macros: &mut [(MacroStage, String)]) {
    for (stage, names) in macros.iter_mut() {
        let named = names
            .split(|c: char| c == ',' || c.is_ascii_whitespace())
            .any(|name| name == "{rcpt_mailer}" || name == "rcpt_mailer");
        if *stage == MacroStage::Rcpt && !named {
            names.push_str(" {rcpt_mailer}");
        }
    }
}

/// The stages whose default list carries the queue id `i` on Sendmail (MAIL, and its values
/// stay visible to the end of the message) or on Postfix (MAIL to end of message; reliable
/// from DATA on). A filter's list for one of them replaces that default (protocol reference
/// §3.4, §5.7), so `i` is added back.
const QUEUE_ID_STAGES: [MacroStage; 5] = [
    MacroStage::Mail,
    MacroStage::Rcpt,
    MacroStage::Data,
    MacroStage::EndOfHeaders,
    MacroStage::EndOfMessage,
];

/// Whether a space- or comma-separated macro list (Sendmail accepts both) names `i`.
fn names_queue_id(names: &str) -> bool {
    names
        .split(|c: char| c == ',' || c.is_ascii_whitespace())
        .any(|name| name == "i" || name == "{i}")
}

/// The lists to request for `requested`: `i` added where the stage's default list has it
/// (see [`QUEUE_ID_STAGES`]), and, because Sendmail applies a filter's end-of-message list
/// only when an end-of-headers list came too, whenever one of the two is requested the
/// other is requested with `i`.
fn complete_macro_requests(requested: &[(MacroStage, String)]) -> Vec<(MacroStage, String)> {
    let mut macros: Vec<(MacroStage, String)> = requested
        .iter()
        .map(|(stage, names)| {
            let names = if !QUEUE_ID_STAGES.contains(stage) || names_queue_id(names) {
                names.clone()
            } else if names.is_empty() {
                "i".to_owned()
            } else {
                format!("i {names}")
            };
            (*stage, names)
        })
        .collect();
    let has = |macros: &[(MacroStage, String)], stage| macros.iter().any(|(s, _)| *s == stage);
    let eoh = has(&macros, MacroStage::EndOfHeaders);
    let eom = has(&macros, MacroStage::EndOfMessage);
    if eom && !eoh {
        macros.push((MacroStage::EndOfHeaders, "i".to_owned()));
    }
    if eoh && !eom {
        macros.push((MacroStage::EndOfMessage, "i".to_owned()));
    }
    macros
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rcpt_list_keeps_the_rejection_mark_when_rejected_recipients_are_asked_for() {
        let needs = Needs::new()
            .events(Events::RCPT)
            .options(ProtocolFlags::RCPT_REJECTED)
            .macros(MacroStage::Rcpt, "{rcpt_addr}");
        let agreed = negotiate(OptNeg::VERSION_6, &needs).unwrap();
        assert_eq!(
            agreed.macros,
            [(MacroStage::Rcpt, "i {rcpt_addr} {rcpt_mailer}".to_owned())]
        );
        let plain = negotiate(OptNeg::VERSION_6, &needs.options(ProtocolFlags::EMPTY)).unwrap();
        assert_eq!(
            plain.macros,
            [(MacroStage::Rcpt, "i {rcpt_addr}".to_owned())]
        );
    }
}
