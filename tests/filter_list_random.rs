//! A property test of [`FilterList`]: random MTA conversations (both profiles, one to three
//! messages, random recipients, headers and body, sometimes ABORT mid-message) through a
//! list of one to three random scripted filters.
//!
//! Each case is run once through the list and once per filter alone, the filter then
//! declaring the list's union of needs (so the MTA sends and waits for the same events).
//! Checked:
//!
//! * every event is answered exactly when the negotiation says (the kit refuses unexpected
//!   or missing replies; here each reply is also matched against `NO_*`/`NR_*`), and the
//!   list negotiates exactly the union;
//! * the list's reply to each event is the merge, by the table documented on `FilterList`,
//!   of the filters' own replies to that event (a filter whose part in the message ended
//!   with accept counts as accepting, one that answered skip as skipping);
//! * at end of message the list sends the documented merge of the filters' own
//!   modifications: the sender, the body and the quarantine reason of the last filter that
//!   set one; every recipient edit, identical ones once; every inserted header, ordered as
//!   the MTA must receive them; every changed or deleted header, the later filter deciding
//!   for a header two filters edit; every added header in list order.
//!
//! The seed is fixed; a failure prints it. `FILTER_LIST_SEED=0x...` and
//! `FILTER_LIST_CASES=n` rerun other or fewer cases.

mod common;

use std::fmt::Write as _;
use std::future::Future;
use std::time::Duration;

use async_milter::proto::{CommandKind, Family};
use async_milter::testing::{EndOfMessage, Modification, MtaKind, Negotiated, Profile, Reply};
use async_milter::{
    Actions, Error, Events, Filter, FilterList, HeaderPosition, Needs, ProtocolFlags, ReplyCode,
    Session, Verdict,
};
use common::Rng;

const DEFAULT_SEED: u64 = 0x5EED_F11E_0000_0001;
const DEFAULT_CASES: usize = 300;

/// INSHEADER index that appends on both MTAs (what ADDHEADER becomes on Sendmail).
const END_INDEX: u32 = 0x7fff_fffe;

const RECIPIENTS: [&str; 4] = [
    "<r1@example.net>",
    "<r2@example.net>",
    "<r3@example.net>",
    "<r4@example.net>",
];
const ADDED_RECIPIENTS: [&str; 3] = ["<x@example.org>", "<y@example.org>", "<z@example.org>"];
const HEADERS: [(&str, &str); 6] = [
    ("Subject", "hello"),
    ("From", "<alice@example.com>"),
    ("To", "<r1@example.net>"),
    ("X-Dup", "a"),
    ("X-Dup", "b"),
    ("Received", "from relay"),
];
const WORDS: [&str; 5] = ["alpha", "beta", "gamma", "delta", "epsilon"];

impl Rng {
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

// ===== the filters =====

/// Where a filter returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    Mail,
    /// After the k-th recipient (from 0), or after the last if there are fewer.
    Rcpt(usize),
    /// When the recipients are over.
    RcptsDone,
    /// After the k-th header (from 0), or when the headers are over if there are fewer.
    Header(usize),
    HeadersDone,
    /// After the first body chunk (or at end of message without a body).
    Body,
    EndOfMessage,
}

#[derive(Clone, Debug)]
enum Refusal {
    Reject,
    Tempfail,
    Code(ReplyCode),
}

/// A header edit at end of message; positions are taken modulo the number of headers.
#[derive(Clone, Debug)]
enum HeaderEdit {
    Add,
    InsertTop,
    InsertBefore(usize),
    InsertAfter(usize),
    Change(usize),
    Delete(usize),
}

/// What one filter does with each message.
#[derive(Clone, Debug)]
struct Plan {
    id: usize,
    /// Events declared beyond those the plan needs, and answers among all its events.
    events: Events,
    answers: Events,
    skip: bool,
    stop: Stop,
    verdict: Verdict,
    /// Fail (return an error) at the stop instead of returning the verdict.
    fail: bool,
    /// Recipients (by position in the message) refused, and how.
    refuse: Vec<(usize, Refusal)>,
    /// A header queued right before an early verdict.
    early_header: bool,
    header_edits: Vec<HeaderEdit>,
    body: Option<String>,
    sender: Option<(String, Option<String>)>,
    add_rcpts: Vec<&'static str>,
    del_rcpts: Vec<&'static str>,
    quarantine: Option<String>,
}

impl Plan {
    /// A random plan; an `editing` one reaches end of message, edits much and lets the
    /// message pass, so that several filters' edits meet.
    fn random(rng: &mut Rng, id: usize, editing: bool) -> Self {
        let mut events = Events::EMPTY;
        let mut answers = Events::EMPTY;
        for (event, _, _) in Events::FLAGS {
            if event == Events::UNKNOWN {
                continue;
            }
            if rng.chance(50) {
                events |= event;
                if rng.chance(50) {
                    answers |= event;
                }
            }
        }
        let stop = match if editing { 14 } else { rng.below(15) } {
            0 => Stop::Mail,
            1 => Stop::Rcpt(rng.below(4)),
            2 => Stop::RcptsDone,
            3 => Stop::Header(rng.below(4)),
            4 => Stop::HeadersDone,
            5 => Stop::Body,
            _ => Stop::EndOfMessage,
        };
        let verdict = match rng.below(if editing { 75 } else { 100 }) {
            0..40 => Verdict::Continue,
            40..75 => Verdict::Accept,
            75..81 => Verdict::Reject,
            81..87 => Verdict::Tempfail,
            87..92 => Verdict::Discard,
            92..96 => Verdict::Reply(code(451, "4.7.1", &format!("later {id}"))),
            _ => Verdict::Reply(code(550, "5.7.1", &format!("policy {id}"))),
        };
        let mut refuse = Vec::new();
        for k in 0..4 {
            if rng.chance(10) {
                let refusal = match rng.below(4) {
                    0 => Refusal::Reject,
                    1 => Refusal::Tempfail,
                    2 => Refusal::Code(code(550, "5.1.1", &format!("no such user {id}"))),
                    _ => Refusal::Code(code(450, "4.2.1", &format!("try later {id}"))),
                };
                refuse.push((k, refusal));
            }
        }
        let edits = if editing { 60 } else { 35 };
        let header_edits = (0..rng.below(5))
            .map(|_| match rng.below(6) {
                0 => HeaderEdit::Add,
                1 => HeaderEdit::InsertTop,
                2 => HeaderEdit::InsertBefore(rng.below(6)),
                3 => HeaderEdit::InsertAfter(rng.below(6)),
                4 => HeaderEdit::Change(rng.below(6)),
                _ => HeaderEdit::Delete(rng.below(6)),
            })
            .collect();
        let mut pool = ADDED_RECIPIENTS.to_vec();
        let add_rcpts = (0..rng.below(3))
            .map(|_| pool.remove(rng.below(pool.len())))
            .collect();
        let mut pool = RECIPIENTS.to_vec();
        let del_rcpts = (0..rng.below(2))
            .map(|_| pool.remove(rng.below(pool.len())))
            .collect();
        Self {
            id,
            events,
            answers,
            skip: rng.chance(50),
            stop,
            verdict,
            fail: !editing && rng.chance(5),
            refuse,
            early_header: stop != Stop::EndOfMessage && rng.chance(30),
            header_edits,
            body: rng.chance(edits).then(|| format!("body from {id}\r\n")),
            sender: rng.chance(edits).then(|| {
                let args = rng.chance(50).then(|| "RET=HDRS".to_owned());
                (format!("<sender{id}@example.com>"), args)
            }),
            add_rcpts,
            del_rcpts,
            quarantine: rng.chance(edits).then(|| format!("held by {id}")),
        }
    }

    /// What the plan declares: its random events and answers, plus what it cannot do
    /// without.
    fn needs(&self) -> Needs {
        let mut events = self.events;
        let mut answers = self.answers;
        let mut need = |event: Events, answered: bool| {
            events |= event;
            if answered {
                answers |= event;
            }
        };
        match self.stop {
            Stop::Mail => need(Events::MAIL, true),
            Stop::Rcpt(_) => need(Events::RCPT, true),
            Stop::RcptsDone => need(Events::RCPT, false),
            Stop::Header(_) => need(Events::HEADER, true),
            Stop::HeadersDone => need(Events::HEADER, false),
            Stop::Body => need(Events::BODY, true),
            Stop::EndOfMessage => {}
        }
        if !self.refuse.is_empty() {
            need(Events::RCPT, true);
        }
        let positioned = self
            .header_edits
            .iter()
            .any(|edit| !matches!(edit, HeaderEdit::Add | HeaderEdit::InsertTop));
        if positioned {
            need(Events::HEADER, false);
        }
        let mut actions = Actions::EMPTY;
        let mut act = |used: bool, action: Actions| {
            if used {
                actions |= action;
            }
        };
        act(
            self.early_header
                || self
                    .header_edits
                    .iter()
                    .any(|edit| !matches!(edit, HeaderEdit::Change(_) | HeaderEdit::Delete(_))),
            Actions::ADD_HEADERS,
        );
        act(
            self.header_edits
                .iter()
                .any(|edit| matches!(edit, HeaderEdit::Change(_) | HeaderEdit::Delete(_))),
            Actions::CHANGE_HEADERS,
        );
        act(self.body.is_some(), Actions::CHANGE_BODY);
        act(self.sender.is_some(), Actions::CHANGE_FROM);
        act(!self.add_rcpts.is_empty(), Actions::ADD_RCPT);
        act(!self.del_rcpts.is_empty(), Actions::DELETE_RCPT);
        act(self.quarantine.is_some(), Actions::QUARANTINE);
        let options = if self.skip {
            ProtocolFlags::SKIP
        } else {
            ProtocolFlags::EMPTY
        };
        Needs::new()
            .events(events)
            .answers(answers)
            .actions(actions)
            .options(options)
    }

    /// Returns at the stop, before end of message.
    fn early(&self, session: &mut Session) -> Result<Verdict, Error> {
        if self.fail {
            return Err(Error::filter(format!(
                "filter {} fails as planned",
                self.id
            )));
        }
        if self.early_header && self.verdict.is_pass() {
            session.add_header(format!("X-Early-{}", self.id), "early")?;
        }
        Ok(self.verdict.clone())
    }

    /// The edits at end of message.
    fn edit(&self, session: &mut Session) -> Result<(), Error> {
        let id = self.id;
        let handles: Vec<_> = session.headers().iter().map(|h| h.handle).collect();
        let mut edited = Vec::new();
        for (k, edit) in self.header_edits.iter().enumerate() {
            let name = format!("X-F{id}-{k}");
            let value = format!("v{id}{k}");
            let at = |p: usize| handles.get(p % handles.len().max(1)).copied();
            match edit {
                HeaderEdit::Add => session.add_header(&name, &value)?,
                HeaderEdit::InsertTop => {
                    session.insert_header(HeaderPosition::Top, &name, &value)?;
                }
                HeaderEdit::InsertBefore(p) => {
                    if let Some(handle) = at(*p) {
                        session.insert_header(HeaderPosition::Before(handle), &name, &value)?;
                    }
                }
                HeaderEdit::InsertAfter(p) => {
                    if let Some(handle) = at(*p) {
                        session.insert_header(HeaderPosition::After(handle), &name, &value)?;
                    }
                }
                HeaderEdit::Change(p) | HeaderEdit::Delete(p) => {
                    // One edit per header and filter.
                    let Some(handle) = at(*p).filter(|h| !edited.contains(h)) else {
                        continue;
                    };
                    edited.push(handle);
                    if matches!(edit, HeaderEdit::Change(_)) {
                        session.change_header(handle, &value)?;
                    } else {
                        session.delete_header(handle)?;
                    }
                }
            }
        }
        if let Some(body) = &self.body {
            session.replace_body(body)?;
        }
        if let Some((sender, args)) = &self.sender {
            session.change_sender(sender, args.as_deref())?;
        }
        for rcpt in &self.add_rcpts {
            session.add_recipient(rcpt, None)?;
        }
        for rcpt in &self.del_rcpts {
            session.remove_recipient(rcpt)?;
        }
        if let Some(reason) = &self.quarantine {
            session.quarantine(reason)?;
        }
        Ok(())
    }

    async fn run(&self, session: &mut Session) -> Result<Verdict, Error> {
        match self.stop {
            Stop::Mail => {
                session.envelope_from().await?;
                return self.early(session);
            }
            Stop::Body => {
                session.next_body_chunk().await?;
                return self.early(session);
            }
            _ => {}
        }
        let walks_rcpts = !self.refuse.is_empty() || matches!(self.stop, Stop::Rcpt(_));
        if walks_rcpts || self.stop == Stop::RcptsDone {
            let mut k = 0;
            while let Some(rcpt) = session.next_recipient().await? {
                for (_, refusal) in self.refuse.iter().filter(|(at, _)| *at == k) {
                    match refusal {
                        Refusal::Reject => rcpt.reject()?,
                        Refusal::Tempfail => rcpt.tempfail()?,
                        Refusal::Code(code) => rcpt.reply(code.clone())?,
                    }
                }
                if self.stop == Stop::Rcpt(k) {
                    return self.early(session);
                }
                k += 1;
            }
            if matches!(self.stop, Stop::Rcpt(_) | Stop::RcptsDone) {
                return self.early(session);
            }
        }
        if matches!(self.stop, Stop::Header(_) | Stop::HeadersDone) {
            let mut k = 0;
            while session.next_header().await?.is_some() {
                if self.stop == Stop::Header(k) {
                    return self.early(session);
                }
                k += 1;
            }
            return self.early(session);
        }
        session.end_of_message().await?;
        self.edit(session)?;
        if self.fail {
            return Err(Error::filter(format!(
                "filter {} fails as planned",
                self.id
            )));
        }
        Ok(self.verdict.clone())
    }
}

/// A plan served as a filter, declaring `needs`: its own in a list, the list's union alone.
struct Scripted {
    plan: Plan,
    needs: Needs,
}

impl Filter for Scripted {
    fn needs(&self) -> Needs {
        self.needs.clone()
    }

    async fn filter(&self, session: &mut Session) -> Result<Verdict, Error> {
        self.plan.run(session).await
    }
}

fn code(code: u16, enhanced: &str, text: &str) -> ReplyCode {
    ReplyCode::new(code, enhanced, text).expect("valid reply code")
}

// ===== the conversation =====

#[derive(Clone, Debug)]
struct Message {
    rcpts: Vec<&'static str>,
    headers: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
    /// ABORT after this many steps, if the message gets that far.
    abort_after: Option<usize>,
}

impl Message {
    fn random(rng: &mut Rng) -> Self {
        let mut pool = RECIPIENTS.to_vec();
        let rcpts = (0..=rng.below(4))
            .map(|_| pool.remove(rng.below(pool.len())))
            .collect();
        let headers: Vec<_> = (0..rng.below(6))
            .map(|_| HEADERS[rng.below(HEADERS.len())])
            .collect();
        let mut body = Vec::new();
        for _ in 0..rng.below(5) {
            for _ in 0..=rng.below(4) {
                body.extend_from_slice(WORDS[rng.below(WORDS.len())].as_bytes());
                body.push(b' ');
            }
            body.extend_from_slice(b"\r\n");
        }
        let steps = 1 + 4 + 1 + headers.len() + 1 + body.len();
        Self {
            rcpts,
            headers,
            body,
            abort_after: rng.chance(20).then(|| 1 + rng.below(steps)),
        }
    }
}

#[derive(Clone, Debug)]
struct Case {
    seed: u64,
    kind: MtaKind,
    chunk: usize,
    plans: Vec<Plan>,
    messages: Vec<Message>,
}

impl Case {
    fn random(seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let kind = if rng.chance(50) {
            MtaKind::Postfix
        } else {
            MtaKind::Sendmail
        };
        let editing = rng.chance(30);
        let plans = (0..=rng.below(3))
            .map(|id| Plan::random(&mut rng, id, editing))
            .collect();
        let messages = (0..=rng.below(3))
            .map(|_| Message::random(&mut rng))
            .collect();
        Self {
            seed,
            kind,
            chunk: 5 + rng.below(40),
            plans,
            messages,
        }
    }

    fn profile(&self) -> Profile {
        let profile = match self.kind {
            MtaKind::Postfix => Profile::postfix(),
            _ => Profile::sendmail(),
        };
        profile.with_body_chunk_size(self.chunk)
    }

    fn union(&self) -> Needs {
        self.plans
            .iter()
            .map(Plan::needs)
            .reduce(|all, needs| all.union(&needs))
            .expect("at least one plan")
    }
}

/// One step of a conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ev {
    Connect,
    Helo,
    Mail,
    Rcpt(usize),
    Data,
    Header(usize),
    EndOfHeaders,
    Body(usize),
}

impl Ev {
    fn kind(self) -> CommandKind {
        match self {
            Self::Connect => CommandKind::Connect,
            Self::Helo => CommandKind::Helo,
            Self::Mail => CommandKind::Mail,
            Self::Rcpt(_) => CommandKind::Rcpt,
            Self::Data => CommandKind::Data,
            Self::Header(_) => CommandKind::Header,
            Self::EndOfHeaders => CommandKind::EndOfHeaders,
            Self::Body(_) => CommandKind::Body,
        }
    }
}

/// How a message's transaction ended.
#[derive(Clone, Debug, PartialEq, Eq)]
enum End {
    /// End of message was reached.
    Complete,
    /// A reply before end of message ended it.
    Early(Reply),
    /// Every recipient was refused.
    NoRecipients,
    /// The MTA aborted it.
    Aborted,
}

#[derive(Clone, Debug)]
struct MessageTrace {
    steps: Vec<(Ev, Reply)>,
    eom: Option<EndOfMessage>,
    end: End,
}

#[derive(Clone, Debug)]
struct Trace {
    negotiated: Negotiated,
    session: Vec<(Ev, Reply)>,
    messages: Vec<MessageTrace>,
}

fn ends_message(reply: &Reply) -> bool {
    !reply.is_continue() && *reply != Reply::Skip
}

/// Runs the case's conversation against `filter`, the way the kit's `send_message` would,
/// stepping so that a message can be aborted anywhere.
async fn converse<F: Filter>(case: &Case, filter: F) -> Trace {
    let ctx = |what: &str| format!("seed {:#x}: {what}", case.seed);
    let mut client = async_milter::testing::in_process(filter, case.profile()).expect("serves");
    let negotiated = client.negotiate().await.expect("negotiates");
    let connect = client
        .connect("client.example.com", Family::Inet, 50000, "192.0.2.1")
        .await
        .unwrap_or_else(|e| panic!("{}", ctx(&format!("CONNECT: {e}"))));
    let helo = client
        .helo("client.example.com")
        .await
        .unwrap_or_else(|e| panic!("{}", ctx(&format!("HELO: {e}"))));
    let mut messages = Vec::new();
    for (m, message) in case.messages.iter().enumerate() {
        let trace = converse_message(&mut client, message, case.chunk)
            .await
            .unwrap_or_else(|e| panic!("{}", ctx(&format!("message {m}: {e}"))));
        messages.push(trace);
    }
    client
        .quit()
        .await
        .unwrap_or_else(|e| panic!("{}", ctx(&format!("QUIT: {e}"))));
    Trace {
        negotiated,
        session: vec![(Ev::Connect, connect), (Ev::Helo, helo)],
        messages,
    }
}

async fn converse_message<S>(
    client: &mut async_milter::testing::MilterClient<S>,
    message: &Message,
    chunk: usize,
) -> Result<MessageTrace, async_milter::testing::ClientError>
where
    S: futures::io::AsyncRead + futures::io::AsyncWrite + Unpin,
{
    let mut trace = MessageTrace {
        steps: Vec::new(),
        eom: None,
        end: End::Complete,
    };
    // Records a step; true when the message is over (ended by the reply, or aborted).
    macro_rules! step {
        ($ev:expr, $call:expr) => {{
            let reply = $call.await?;
            trace.steps.push(($ev, reply.clone()));
            if ends_message(&reply) {
                trace.end = End::Early(reply);
                return Ok(trace);
            }
            if message.abort_after == Some(trace.steps.len()) {
                client.abort().await?;
                trace.end = End::Aborted;
                return Ok(trace);
            }
            reply
        }};
    }
    step!(Ev::Mail, client.mail("<alice@example.com>", &[]));
    let mut accepted = 0;
    for (k, rcpt) in message.rcpts.iter().enumerate() {
        let reply = step!(Ev::Rcpt(k), client.rcpt(rcpt, &[]));
        if !reply.is_refusal() {
            accepted += 1;
        }
    }
    if accepted == 0 {
        client.abort().await?;
        trace.end = End::NoRecipients;
        return Ok(trace);
    }
    step!(Ev::Data, client.data());
    for (k, (name, value)) in message.headers.iter().enumerate() {
        step!(Ev::Header(k), client.header(name, &format!(" {value}")));
    }
    step!(Ev::EndOfHeaders, client.end_of_headers());
    for (k, piece) in message.body.chunks(chunk).enumerate() {
        if step!(Ev::Body(k), client.body(piece)) == Reply::Skip {
            break;
        }
    }
    trace.eom = Some(client.end_of_message().await?);
    Ok(trace)
}

// ===== the documented merge =====

/// The rank of a refusal: discard < tempfail (and 4xx codes) < reject (and 5xx codes).
fn severity(reply: &Reply) -> Option<u8> {
    match reply {
        Reply::Discard => Some(2),
        Reply::Tempfail => Some(3),
        Reply::ReplyCode(text) if text.starts_with('4') => Some(3),
        Reply::Reject | Reply::ReplyCode(_) => Some(4),
        Reply::Shutdown => Some(5),
        _ => None,
    }
}

/// The table on `FilterList`: any refusal beats the rest, the most severe winning, the first
/// on a tie; accept only when all accept; skip when each skips or has accepted; else continue.
/// Events the MTA does not send or wait for show that for every filter.
fn merge(replies: &[Reply]) -> Reply {
    if let Some(quiet) = replies
        .iter()
        .find(|r| matches!(r, Reply::NoReply | Reply::NotSent))
    {
        return quiet.clone();
    }
    let mut worst: Option<(&Reply, u8)> = None;
    for reply in replies {
        if let Some(rank) = severity(reply) {
            if worst.is_none_or(|(_, w)| rank > w) {
                worst = Some((reply, rank));
            }
        }
    }
    if let Some((reply, _)) = worst {
        return reply.clone();
    }
    if replies.iter().all(|r| *r == Reply::Accept) {
        return Reply::Accept;
    }
    if replies.contains(&Reply::Skip)
        && replies
            .iter()
            .all(|r| matches!(r, Reply::Skip | Reply::Accept))
    {
        return Reply::Skip;
    }
    Reply::Continue
}

/// One filter's modifications, by kind, each kind in the filter's own wire order.
#[derive(Default)]
struct Parts {
    from: Vec<Modification>,
    del_rcpts: Vec<Modification>,
    add_rcpts: Vec<Modification>,
    inserts: Vec<(u32, Modification)>,
    changes: Vec<(u32, Modification)>,
    adds: Vec<Modification>,
    body: Vec<Modification>,
    quarantine: Vec<Modification>,
}

type Pick = fn(&Parts) -> &Vec<Modification>;

fn fn_del_rcpts(p: &Parts) -> &Vec<Modification> {
    &p.del_rcpts
}

fn fn_add_rcpts(p: &Parts) -> &Vec<Modification> {
    &p.add_rcpts
}

fn fn_body(p: &Parts) -> &Vec<Modification> {
    &p.body
}

fn fn_quarantine(p: &Parts) -> &Vec<Modification> {
    &p.quarantine
}

fn parts(modifications: &[Modification], kind: MtaKind) -> Parts {
    let mut parts = Parts::default();
    for m in modifications {
        let m2 = m.clone();
        match m {
            Modification::ChangeFrom { .. } => parts.from.push(m2),
            Modification::DeleteRcpt(_) => parts.del_rcpts.push(m2),
            Modification::AddRcpt(_) | Modification::AddRcptWithArgs { .. } => {
                parts.add_rcpts.push(m2);
            }
            // Sendmail gets an added header as an insert past the end.
            Modification::InsertHeader { index, .. }
                if *index == END_INDEX && kind == MtaKind::Sendmail =>
            {
                parts.adds.push(m2);
            }
            Modification::InsertHeader { index, .. } => parts.inserts.push((*index, m2)),
            Modification::ChangeHeader { index, .. } => parts.changes.push((*index, m2)),
            Modification::AddHeader { .. } => parts.adds.push(m2),
            Modification::ReplaceBody(_) => parts.body.push(m2),
            Modification::Quarantine(_) => parts.quarantine.push(m2),
            other => panic!("unexpected modification {other:?}"),
        }
    }
    parts
}

/// The documented merge of the filters' modifications (in list order), in the order the
/// MTA must receive them.
fn merged_modifications(each: &[&[Modification]], kind: MtaKind) -> Vec<Modification> {
    let all: Vec<Parts> = each.iter().map(|m| parts(m, kind)).collect();
    let mut out = Vec::new();
    // The sender: the last filter that changed it.
    if let Some(last) = all.iter().rev().find(|p| !p.from.is_empty()) {
        out.extend(last.from.iter().cloned());
    }
    // Recipients: all, identical ones once, removals first.
    for pick in [fn_del_rcpts as Pick, fn_add_rcpts] {
        let mut seen: Vec<Modification> = Vec::new();
        for m in all.iter().flat_map(|p| pick(p).iter()) {
            if !seen.contains(m) {
                seen.push(m.clone());
            }
        }
        out.extend(seen);
    }
    // Inserts: the highest position first; at one position the later filter's first (so
    // the earlier filter's ends up on top), within a filter as it sent them.
    let mut inserts: Vec<(u32, Modification)> = all
        .iter()
        .rev()
        .flat_map(|p| p.inserts.iter().cloned())
        .collect();
    inserts.sort_by_key(|(index, _)| std::cmp::Reverse(*index));
    out.extend(inserts.into_iter().map(|(_, m)| m));
    // Changes and deletions: a later filter's edit of the same header replaces an earlier
    // one's; then the highest index first, ties in list order and, within a filter, in the
    // order it queued them.
    let mut changes: Vec<(u32, Modification)> = Vec::new();
    for (i, p) in all.iter().enumerate() {
        for (index, m) in &p.changes {
            let overridden = all.get(i + 1..).unwrap_or_default().iter().any(|later| {
                later
                    .changes
                    .iter()
                    .any(|(other, o)| other == index && header_name(o) == header_name(m))
            });
            if !overridden {
                changes.push((*index, m.clone()));
            }
        }
    }
    changes.sort_by_key(|(index, _)| std::cmp::Reverse(*index));
    out.extend(changes.into_iter().map(|(_, m)| m));
    // Added headers: all, in list order.
    out.extend(all.iter().flat_map(|p| p.adds.iter().cloned()));
    // The body and the quarantine reason: the last filter's.
    for pick in [fn_body as Pick, fn_quarantine] {
        if let Some(last) = all.iter().rev().find(|p| !pick(p).is_empty()) {
            out.extend(pick(last).iter().cloned());
        }
    }
    out
}

fn header_name(m: &Modification) -> &str {
    match m {
        Modification::ChangeHeader { name, .. } => name,
        _ => "",
    }
}

// ===== the check =====

/// How often the cases reached the situations the merge rules are about; a generator that
/// never reaches one would test nothing there.
#[derive(Debug, Default)]
struct Coverage {
    lists_of: [usize; 3],
    aborted: usize,
    /// Accepted messages where two filters both set: the body, the sender, the quarantine
    /// reason; changed or deleted the same header; inserted at the same position; made the
    /// same recipient edit.
    two_bodies: usize,
    two_senders: usize,
    two_quarantines: usize,
    same_header: usize,
    same_insert_position: usize,
    same_recipient_edit: usize,
    /// A recipient refused by one filter and not by another.
    one_refuses: usize,
    /// A filter accepted early and the list went on to end of message.
    accepted_early: usize,
    /// A body chunk where one filter skips and the list does not.
    one_skips: usize,
}

impl Coverage {
    fn count(&mut self, list: &Trace, singles: &[Trace]) {
        self.lists_of[singles.len() - 1] += 1;
        for (m, message) in list.messages.iter().enumerate() {
            let ones: Vec<&MessageTrace> = singles.iter().map(|s| &s.messages[m]).collect();
            if message.end == End::Aborted {
                self.aborted += 1;
            }
            for (ev, reply) in &message.steps {
                let own: Vec<Option<&Reply>> = ones
                    .iter()
                    .map(|o| o.steps.iter().find(|(e, _)| e == ev).map(|(_, r)| r))
                    .collect();
                if matches!(ev, Ev::Rcpt(_))
                    && own.iter().any(|r| r.is_some_and(Reply::is_refusal))
                    && own.iter().any(|r| r.is_some_and(|r| !r.is_refusal()))
                {
                    self.one_refuses += 1;
                }
                if matches!(ev, Ev::Body(_))
                    && *reply != Reply::Skip
                    && own.iter().any(|r| r.is_none_or(|r| *r == Reply::Skip))
                {
                    self.one_skips += 1;
                }
            }
            let Some(eom) = &message.eom else {
                continue;
            };
            if ones.iter().any(|o| o.end == End::Early(Reply::Accept)) {
                self.accepted_early += 1;
            }
            if severity(&eom.reply).is_some() {
                continue;
            }
            let mods: Vec<&[Modification]> = ones
                .iter()
                .filter_map(|o| o.eom.as_ref().map(|e| &e.modifications[..]))
                .collect();
            let in_two = |found: &dyn Fn(&Modification, &Modification) -> bool| {
                mods.iter().enumerate().any(|(i, a)| {
                    mods.iter()
                        .skip(i + 1)
                        .any(|b| a.iter().any(|x| b.iter().any(|y| found(x, y))))
                })
            };
            let both = |kind: fn(&Modification) -> bool| in_two(&|x, y| kind(x) && kind(y));
            self.two_bodies += usize::from(both(|m| matches!(m, Modification::ReplaceBody(_))));
            self.two_senders += usize::from(both(|m| matches!(m, Modification::ChangeFrom { .. })));
            self.two_quarantines += usize::from(both(|m| matches!(m, Modification::Quarantine(_))));
            self.same_header += usize::from(in_two(&|x, y| {
                matches!((x, y), (
                    Modification::ChangeHeader { index: i, name: n, .. },
                    Modification::ChangeHeader { index: j, name: o, .. },
                ) if i == j && n == o)
            }));
            self.same_insert_position += usize::from(in_two(&|x, y| {
                matches!((x, y), (
                    Modification::InsertHeader { index: i, .. },
                    Modification::InsertHeader { index: j, .. },
                ) if i == j && *i != END_INDEX)
            }));
            self.same_recipient_edit += usize::from(in_two(&|x, y| {
                x == y && matches!(x, Modification::AddRcpt(_) | Modification::DeleteRcpt(_))
            }));
        }
    }

    /// Each situation reached at least `min` times.
    fn check(&self, min: usize) {
        let counts = [
            self.lists_of[0],
            self.lists_of[1],
            self.lists_of[2],
            self.aborted,
            self.two_bodies,
            self.two_senders,
            self.two_quarantines,
            self.same_header,
            self.same_insert_position,
            self.same_recipient_edit,
            self.one_refuses,
            self.accepted_early,
            self.one_skips,
        ];
        assert!(
            counts.iter().all(|&n| n >= min),
            "coverage too thin: {self:#?}"
        );
    }
}

/// What filter `single`'s own run says about `ev` of a message the list went on with: its
/// reply, or, if its part ended before, accept (or skip for the rest of the body).
fn own_reply(single: &MessageTrace, ev: Ev, who: usize, ctx: &str) -> Reply {
    if let Some((_, reply)) = single.steps.iter().find(|(e, _)| *e == ev) {
        return reply.clone();
    }
    if matches!(ev, Ev::Body(_)) && single.steps.iter().any(|(_, r)| *r == Reply::Skip) {
        return Reply::Skip;
    }
    match &single.end {
        End::Early(Reply::Accept) => Reply::Accept,
        end => panic!("{ctx}: filter {who} alone never saw {ev:?} (its message ended {end:?})"),
    }
}

fn check(case: &Case, list: &Trace, singles: &[Trace]) {
    let ctx = format!(
        "seed {:#x} (rerun: FILTER_LIST_SEED={:#x} FILTER_LIST_CASES=1)\n{case:#?}",
        case.seed, case.seed
    );
    let negotiated = &list.negotiated;
    for (who, single) in singles.iter().enumerate() {
        assert_eq!(
            &single.negotiated, negotiated,
            "{ctx}\nthe list negotiates the union (filter {who})"
        );
    }
    // Every step answered exactly as negotiated.
    let all_steps = list
        .session
        .iter()
        .chain(list.messages.iter().flat_map(|m| m.steps.iter()));
    for (ev, reply) in all_steps {
        let kind = ev.kind();
        let expected_quiet = if !negotiated.sends(kind) {
            Some(Reply::NotSent)
        } else if !negotiated.expects_reply(kind) {
            Some(Reply::NoReply)
        } else {
            None
        };
        match expected_quiet {
            Some(quiet) => assert_eq!(reply, &quiet, "{ctx}\n{ev:?}"),
            None => assert!(
                !matches!(reply, Reply::NotSent | Reply::NoReply),
                "{ctx}\n{ev:?}: {reply:?}"
            ),
        }
    }
    for (ev, reply) in &list.session {
        assert!(reply.is_continue(), "{ctx}\n{ev:?}: {reply:?}");
    }
    let mut report = String::new();
    for (m, list_message) in list.messages.iter().enumerate() {
        let ones: Vec<&MessageTrace> = singles.iter().map(|s| &s.messages[m]).collect();
        for (ev, reply) in &list_message.steps {
            let own: Vec<Reply> = ones
                .iter()
                .enumerate()
                .map(|(who, single)| own_reply(single, *ev, who, &ctx))
                .collect();
            let expected = merge(&own);
            if *reply != expected {
                let _ = writeln!(
                    report,
                    "message {m} {ev:?}: list {reply:?}, filters {own:?}, merged {expected:?}"
                );
            }
        }
        let Some(eom) = &list_message.eom else {
            continue;
        };
        let own: Vec<Reply> = ones
            .iter()
            .enumerate()
            .map(|(who, single)| match (&single.eom, &single.end) {
                (Some(eom), _) => eom.reply.clone(),
                (None, End::Early(Reply::Accept)) => Reply::Accept,
                (None, end) => {
                    panic!("{ctx}\nfilter {who} alone never reached end of message {m}: {end:?}")
                }
            })
            .collect();
        let expected = merge(&own);
        if eom.reply != expected {
            let _ = writeln!(
                report,
                "message {m} end of message: list {:?}, filters {own:?}, merged {expected:?}",
                eom.reply
            );
        }
        let expected_modifications = if severity(&expected).is_some() {
            Vec::new()
        } else {
            let each: Vec<&[Modification]> = ones
                .iter()
                .map(|single| {
                    single
                        .eom
                        .as_ref()
                        .map_or(&[][..], |e| &e.modifications[..])
                })
                .collect();
            merged_modifications(&each, case.kind)
        };
        if eom.modifications != expected_modifications {
            let _ = writeln!(
                report,
                "message {m} modifications:\n  list     {:?}\n  expected {expected_modifications:?}\n  each     {:?}",
                eom.modifications,
                ones.iter()
                    .map(|s| s.eom.as_ref().map(|e| &e.modifications))
                    .collect::<Vec<_>>()
            );
        }
    }
    assert!(report.is_empty(), "{ctx}\n{report}");
}

fn run<F: Future<Output = ()>>(body: F) {
    async_std::task::block_on(async {
        async_std::future::timeout(Duration::from_secs(120), body)
            .await
            .expect("property test took longer than 120 s");
    });
}

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let text = text.trim();
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

#[test]
fn list_replies_and_edits_are_the_merge_of_each_filters_own() {
    let seed = env_number("FILTER_LIST_SEED").unwrap_or(DEFAULT_SEED);
    let cases = env_number("FILTER_LIST_CASES").map_or(DEFAULT_CASES, |n| n as usize);
    let mut rng = Rng::new(seed);
    run(async {
        let mut coverage = Coverage::default();
        for n in 0..cases {
            // The first case uses the seed itself, so a printed seed reruns its case.
            let case_seed = if n == 0 { seed } else { rng.next_u64() };
            let case = Case::random(case_seed);
            let union = case.union();
            let list = case.plans.iter().fold(FilterList::new(), |list, plan| {
                list.with(
                    &format!("f{}", plan.id),
                    Scripted {
                        plan: plan.clone(),
                        needs: plan.needs(),
                    },
                )
            });
            let list_trace = converse(&case, list).await;
            let mut singles = Vec::new();
            for plan in &case.plans {
                let alone = Scripted {
                    plan: plan.clone(),
                    needs: union.clone(),
                };
                singles.push(converse(&case, alone).await);
            }
            check(&case, &list_trace, &singles);
            coverage.count(&list_trace, &singles);
        }
        if cases >= DEFAULT_CASES {
            coverage.check(5);
        }
    });
}
