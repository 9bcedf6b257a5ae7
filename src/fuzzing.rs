//! Bodies of the fuzz targets in `fuzz/`, kept here so plain tests can run them too.
//!
//! Each body takes arbitrary bytes, must never panic on them, and panics (an assertion
//! failure) only when a checked property is broken. The `fuzz/` crate calls them
//! from `cargo fuzz` targets; `tests/fuzz_corpus.rs` runs them over the checked-in corpus and
//! the seeded random tests call [`check_command`] and [`check_response`] on every frame.
//!
//! Not part of the public API: hidden from the docs and free to change.
//!
//! [`connection()`] is the stateful one: a whole connection driven by a scripted MTA and a
//! scripted filter; its own module (`connection/`) documents its input and its checks. The
//! decoder targets below share one property: whatever decodes re-encodes to the bytes it
//! came from. The documented exceptions:
//!
//! * CONNECT removes Sendmail's `IPv6:` prefix (any case) from a family `6` address, so the
//!   re-encoded packet lacks those five bytes.
//! * Responses are decoded more leniently than they are encoded: a decoded response may hold
//!   an empty field that the encoder refuses ([`EncodeError::Empty`]: reply text, quarantine
//!   reason, header name, recipient), or a payload over 65535 bytes, which a filter must not
//!   send ([`EncodeError::TooLong`]).

use crate::proto::{
    Actions, Command, DecodeError, EncodeError, Events, FRAME_HEADER_LEN, Family, FrameDecoder,
    MAX_RESPONSE_PAYLOAD, MacroStage, Needs, OptNeg, ProtocolFlags, Response, negotiate as agree,
};
use crate::proto::{Agreed, CommandKind, NegotiateError, ResponseKind, WireStr, event_of};

/// Largest frame the `frame` target's decoder accepts: small, so oversize lengths are common.
pub const FRAME_TARGET_MAX_LEN: u32 = 4096;

/// Space [`FrameDecoder::spare`] makes at least, so the most it lends for small frames.
const SPARE_MIN: usize = 4096;

/// Builds the bytes of one frame: length, code byte, payload.
#[must_use]
pub fn frame_bytes(kind: u8, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len() + 1).unwrap_or(u32::MAX);
    let mut bytes = Vec::with_capacity(payload.len() + FRAME_HEADER_LEN);
    bytes.extend_from_slice(&len.to_be_bytes());
    bytes.push(kind);
    bytes.extend_from_slice(payload);
    bytes
}

// ===== frame =====

/// What feeding a stream to a decoder produced.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    /// Each frame as (code byte, payload).
    frames: Vec<(u8, Vec<u8>)>,
    /// The error that stopped decoding, if any.
    error: Option<DecodeError>,
    /// Bytes left in the decoder when the input ran out without an error.
    leftover: Option<usize>,
}

/// Feeds `data` in pieces of the sizes `sizes` yields (cycled), decoding after each piece.
fn feed(data: &[u8], sizes: &[usize]) -> Outcome {
    let mut decoder = FrameDecoder::with_max_len(FRAME_TARGET_MAX_LEN);
    let mut frames = Vec::new();
    let mut rest = data;
    let mut size = sizes.iter().copied().cycle();
    loop {
        loop {
            match decoder.decode() {
                Ok(Some(frame)) => frames.push((frame.kind, frame.payload.to_vec())),
                Ok(None) => break,
                Err(error) => {
                    return Outcome {
                        frames,
                        error: Some(error),
                        leftover: None,
                    };
                }
            }
        }
        // Bounded memory: what stays buffered is less than one maximal frame.
        assert!(
            decoder.buffered() < FRAME_TARGET_MAX_LEN as usize + 4,
            "decoder holds {} bytes",
            decoder.buffered()
        );
        if rest.is_empty() {
            return Outcome {
                frames,
                error: None,
                leftover: Some(decoder.buffered()),
            };
        }
        let take = size.next().unwrap_or(rest.len()).clamp(1, rest.len());
        let (piece, tail) = rest.split_at(take);
        decoder.push(piece);
        rest = tail;
    }
}

/// Feeds `data` through [`FrameDecoder::spare`] and [`crate::proto::Spare::commit`].
fn feed_through_spare(data: &[u8]) -> Outcome {
    let mut decoder = FrameDecoder::with_max_len(FRAME_TARGET_MAX_LEN);
    let mut frames = Vec::new();
    let mut rest = data;
    loop {
        loop {
            match decoder.decode() {
                Ok(Some(frame)) => frames.push((frame.kind, frame.payload.to_vec())),
                Ok(None) => break,
                Err(error) => {
                    return Outcome {
                        frames,
                        error: Some(error),
                        leftover: None,
                    };
                }
            }
        }
        if rest.is_empty() {
            return Outcome {
                frames,
                error: None,
                leftover: Some(decoder.buffered()),
            };
        }
        let mut spare = decoder.spare();
        assert!(
            spare.len() <= (FRAME_TARGET_MAX_LEN as usize + 4).max(SPARE_MIN),
            "spare lends {} bytes",
            spare.len()
        );
        // Short reads, as a socket gives them: at most 7 bytes at a time.
        let take = spare.len().min(rest.len()).min(7);
        let (piece, tail) = rest.split_at(take);
        if let Some(dst) = spare.get_mut(..take) {
            dst.copy_from_slice(piece);
        }
        spare.commit(take);
        rest = tail;
    }
}

/// Fuzz target `frame`: `data` is a byte stream from a peer.
///
/// Decoded whole, one byte at a time, in pieces sized by the data and through `spare`, the
/// stream yields the same frames and the same error; re-framing the frames gives back the
/// bytes they came from; at most one maximal frame stays buffered; every frame goes through
/// [`check_command`] and [`check_response`].
///
/// # Panics
///
/// When one of these properties does not hold.
pub fn frame(data: &[u8]) {
    let whole = feed(data, &[data.len().max(1)]);
    let sizes: Vec<usize> = data
        .iter()
        .take(16)
        .map(|&b| usize::from(b % 13) + 1)
        .collect();
    assert_eq!(feed(data, &[1]), whole, "byte-at-a-time feed differs");
    assert_eq!(feed(data, &sizes), whole, "split feed differs");
    assert_eq!(
        feed_through_spare(data),
        whole,
        "feed through spare differs"
    );

    let mut consumed = 0;
    for (kind, payload) in &whole.frames {
        let bytes = frame_bytes(*kind, payload);
        let end = consumed + bytes.len();
        assert_eq!(
            data.get(consumed..end),
            Some(&bytes[..]),
            "frame is not the input"
        );
        consumed = end;
        check_command(*kind, payload);
        check_response(*kind, payload);
    }
    let rest = data.get(consumed..).unwrap_or_default();
    match &whole.error {
        None => assert_eq!(whole.leftover, Some(rest.len())),
        Some(error) => {
            let head: [u8; 4] = rest
                .get(..4)
                .and_then(|head| head.try_into().ok())
                .expect("an error needs a length field");
            let len = u32::from_be_bytes(head);
            let expected = if len == 0 {
                DecodeError::EmptyFrame
            } else {
                DecodeError::FrameTooLong {
                    len,
                    max: FRAME_TARGET_MAX_LEN,
                }
            };
            assert_eq!(*error, expected);
        }
    }
}

// ===== command =====

/// Fuzz target `command`: the first byte is a command code, the rest its payload.
///
/// # Panics
///
/// See [`check_command`].
pub fn command(data: &[u8]) {
    if let Some((&kind, payload)) = data.split_first() {
        check_command(kind, payload);
    }
}

/// Decodes a command; whatever decodes must re-encode to the same frame.
///
/// The one exception is CONNECT, which removes an `IPv6:` prefix from a family `6` address:
/// its re-encoding must equal the input without those five bytes. An unknown code byte must
/// give [`DecodeError::UnknownCommand`].
///
/// # Panics
///
/// When the property does not hold.
pub fn check_command(kind: u8, payload: &[u8]) {
    let decoded = Command::decode(kind, payload);
    if CommandKind::try_from(kind).is_err() {
        assert_eq!(decoded, Err(DecodeError::UnknownCommand(kind)));
        return;
    }
    let Ok(command) = decoded else {
        return;
    };
    assert_eq!(u8::from(command.kind()), kind);
    let mut encoded = Vec::new();
    command
        .encode(&mut encoded)
        .expect("a decoded command encodes");
    let original = frame_bytes(kind, payload);
    if encoded == original {
        return;
    }
    // Only CONNECT with family 6 may differ, by exactly the removed prefix.
    let Command::Connect(connect) = &command else {
        panic!("{command:?} re-encodes to other bytes");
    };
    assert_eq!(connect.family, Family::Inet6, "{command:?} changed");
    let at = FRAME_HEADER_LEN + connect.hostname.len() + 1 + 1 + 2;
    let prefix = original
        .get(at..at + 5)
        .expect("the prefix is in the input");
    assert!(prefix.eq_ignore_ascii_case(b"IPv6:"), "{command:?} changed");
    let cut = at - FRAME_HEADER_LEN;
    let mut without = payload.get(..cut).unwrap_or_default().to_vec();
    without.extend_from_slice(payload.get(cut + 5..).unwrap_or_default());
    assert_eq!(encoded, frame_bytes(kind, &without));
}

// ===== response =====

/// Fuzz target `response`: the first byte is a response code, the rest its payload.
///
/// # Panics
///
/// See [`check_response`].
pub fn response(data: &[u8]) {
    if let Some((&kind, payload)) = data.split_first() {
        check_response(kind, payload);
    }
}

/// Whether `response` holds an empty value in a field the encoder requires to be non-empty.
fn has_empty_required_field(response: &Response<'_>) -> bool {
    match response {
        Response::ReplyCode(text) => text.is_empty(),
        Response::Quarantine(reason) => reason.is_empty(),
        Response::AddHeader { name, .. }
        | Response::InsertHeader { name, .. }
        | Response::ChangeHeader { name, .. } => name.is_empty(),
        Response::AddRcpt(rcpt)
        | Response::DeleteRcpt(rcpt)
        | Response::AddRcptWithArgs { rcpt, .. } => rcpt.is_empty(),
        _ => false,
    }
}

/// Decodes a response; whatever decodes must re-encode to the same frame, or be refused by
/// the encoder for one of the documented reasons (an empty required field, a payload over
/// 65535 bytes). An unknown code byte must give [`DecodeError::UnknownResponse`].
///
/// # Panics
///
/// When the property does not hold.
pub fn check_response(kind: u8, payload: &[u8]) {
    let decoded = Response::decode(kind, payload);
    if ResponseKind::try_from(kind).is_err() {
        assert_eq!(decoded, Err(DecodeError::UnknownResponse(kind)));
        return;
    }
    let Ok(response) = decoded else {
        return;
    };
    assert_eq!(u8::from(response.kind()), kind);
    let mut encoded = Vec::new();
    match response.encode(&mut encoded) {
        Ok(()) => assert_eq!(
            encoded,
            frame_bytes(kind, payload),
            "{response:?} re-encodes to other bytes"
        ),
        Err(EncodeError::Empty { field }) => {
            assert!(
                has_empty_required_field(&response),
                "{response:?} refused: {field} empty"
            );
            assert!(encoded.is_empty(), "a refused encoding left bytes behind");
        }
        Err(EncodeError::TooLong { len, max }) => {
            assert_eq!((len, max), (payload.len(), MAX_RESPONSE_PAYLOAD));
            assert!(encoded.is_empty(), "a refused encoding left bytes behind");
        }
        Err(error) => panic!("{response:?} does not encode: {error}"),
    }
}

// ===== negotiate =====

/// Reads big-endian u32 values off the front of the input, zero once it runs out.
struct Words<'a>(&'a [u8]);

impl Words<'_> {
    fn next(&mut self) -> u32 {
        let mut word = [0u8; 4];
        for byte in &mut word {
            if let Some((&first, rest)) = self.0.split_first() {
                *byte = first;
                self.0 = rest;
            }
        }
        u32::from_be_bytes(word)
    }
}

/// The input layout of the `negotiate` target: an offer and a filter's needs.
///
/// Bytes 0–11 are the offer (version, actions, protocol), then five u32 values (required
/// actions, optional actions, events, answers, extra options), all big-endian and read as
/// zero when missing. The rest are macro requests, each one stage byte (taken modulo 7) and
/// the names up to a NUL or the end.
#[must_use]
pub fn negotiate_input(offer: OptNeg, needs: &Needs) -> Vec<u8> {
    let mut data = Vec::new();
    for word in [
        offer.version,
        offer.actions.bits(),
        offer.protocol.bits(),
        needs.get_actions().bits(),
        needs.get_optional_actions().bits(),
        needs.get_events().bits(),
        needs.get_answers().bits(),
        needs.get_options().bits(),
    ] {
        data.extend_from_slice(&word.to_be_bytes());
    }
    for (stage, names) in needs.get_macros() {
        data.push(u32::from(*stage) as u8);
        data.extend_from_slice(names.as_bytes());
        data.push(0);
    }
    data
}

/// Splits `data` as [`negotiate_input`] lays it out.
fn parse_negotiate_input(data: &[u8]) -> (OptNeg, Needs) {
    let mut words = Words(data);
    let offer = OptNeg {
        version: words.next(),
        actions: Actions::from_bits(words.next()),
        protocol: ProtocolFlags::from_bits(words.next()),
    };
    let actions = Actions::from_bits(words.next());
    let optional_actions = Actions::from_bits(words.next());
    let events = Events::from_bits(words.next());
    let answers = Events::from_bits(words.next());
    let options = ProtocolFlags::from_bits(words.next());
    let mut needs = Needs::new()
        .actions(actions)
        .optional_actions(optional_actions)
        .events(events)
        .answers(answers)
        .options(options);
    let mut rest = words.0;
    while let Some((&stage, tail)) = rest.split_first() {
        let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        let (names, after) = tail.split_at(end);
        let stage = MacroStage::ALL
            .get(usize::from(stage % 7))
            .copied()
            .unwrap_or(MacroStage::Connect);
        needs = needs.macros(stage, &String::from_utf8_lossy(names));
        rest = after.get(1..).unwrap_or_default();
    }
    (offer, needs)
}

/// Fuzz target `negotiate`: an offer and a filter's needs (see [`negotiate_input`]).
///
/// Checks what the protocol reference demands of a reply: version `min(6, offered)`, a
/// version below 2 refused, actions and protocol options a subset of the offer (an empty
/// offer read as libmilter reads it, as the version 1 sets), required actions granted or
/// the refusal naming only required ones, no needed event suppressed, no answered event
/// marked no-reply, macro lists only with `SET_MACRO_LIST`, end-of-message and
/// end-of-headers lists requested together and the queue id `i` in each list for a stage
/// from MAIL on, [`crate::proto::Agreed::sends`] and
/// [`crate::proto::Agreed::expects_reply`] agreeing with the flags, and the reply encoding
/// and decoding back to the same options and lists.
///
/// # Panics
///
/// When one of these properties does not hold.
pub fn negotiate(data: &[u8]) {
    let (offer, needs) = parse_negotiate_input(data);
    let agreed = match agree(offer, &needs) {
        Ok(agreed) => agreed,
        Err(NegotiateError::UnsupportedVersion(version)) => {
            assert_eq!(version, offer.version);
            assert!(version < 2, "version {version} refused");
            return;
        }
        Err(NegotiateError::MissingActions(missing)) => {
            assert!(offer.version >= 2);
            assert!(!missing.is_empty(), "refused for no missing action");
            assert!(
                needs.get_actions().contains(missing),
                "{missing:?} was not required"
            );
            return;
        }
    };
    assert!(offer.version >= 2, "version {} accepted", offer.version);
    assert_eq!(agreed.options.version, offer.version.min(6));
    assert_eq!(agreed.offer, offer);
    check_agreed_flags(&needs, &agreed);
    check_agreed_macros(&needs, &agreed);
    check_reply_encoding(&agreed);
}

/// The reply's flags against the offer and the needs.
fn check_agreed_flags(needs: &Needs, agreed: &Agreed) {
    let (offer, reply) = (agreed.offer, agreed.options);
    let offered_actions = if offer.actions.is_empty() {
        Actions::V1
    } else {
        offer.actions
    };
    let offered_protocol = if offer.protocol.is_empty() {
        ProtocolFlags::V1
    } else {
        offer.protocol
    };
    assert!(
        offered_actions.contains(reply.actions),
        "{reply:?} exceeds {offer:?}"
    );
    assert!(
        offered_protocol.contains(reply.protocol),
        "{reply:?} exceeds {offer:?}"
    );
    assert!(
        reply.actions.contains(needs.get_actions()),
        "required actions not granted"
    );
    assert!(
        (needs.get_actions() | needs.get_optional_actions() | Actions::SET_MACRO_LIST)
            .contains(reply.actions),
        "actions nobody asked for: {reply:?}"
    );

    for (event, no, nr) in Events::FLAGS {
        if needs.get_events().contains(event) {
            assert!(!reply.protocol.contains(no), "needed {event:?} suppressed");
            if needs.get_answers().contains(event) {
                assert!(
                    !reply.protocol.contains(nr),
                    "answered {event:?} marked no-reply"
                );
            }
        }
        // UNKNOWN exists from version 3 and DATA from version 4 (protocol reference §2.1).
        let in_version = match event {
            e if e == Events::UNKNOWN => reply.version >= 3,
            e if e == Events::DATA => reply.version >= 4,
            _ => true,
        };
        assert_eq!(
            agreed.sends(event),
            in_version && !reply.protocol.contains(no),
            "{event:?}"
        );
        if needs.get_events().contains(event) && !in_version {
            assert!(
                agreed.missing_events.contains(event),
                "{event:?} not reported missing"
            );
        }
    }
    for command in CommandKind::ALL {
        let expected = match event_of(command) {
            Some(event) => Events::FLAGS
                .iter()
                .find(|(e, _, _)| *e == event)
                .is_some_and(|&(_, _, nr)| !reply.protocol.contains(nr)),
            None => command.expects_reply(),
        };
        assert_eq!(agreed.expects_reply(command), expected, "{command:?}");
    }
}

/// Macro lists: only with `SET_MACRO_LIST`, each stage at most once, end of message together
/// with end of headers, every requested name asked for, and the queue id `i` in every list
/// for a stage whose default list has it (MAIL, RCPT, DATA, end of headers, end of message:
/// protocol reference §5.7), since a list replaces the default.
fn check_agreed_macros(needs: &Needs, agreed: &Agreed) {
    let actions = agreed.options.actions;
    if agreed.macros.is_empty() {
        assert!(
            needs.get_macros().is_empty() || !actions.contains(Actions::SET_MACRO_LIST),
            "macro lists dropped although SET_MACRO_LIST was agreed"
        );
        return;
    }
    assert!(actions.contains(Actions::SET_MACRO_LIST));
    let list = |stage| {
        let mut lists = agreed.macros.iter().filter(|(s, _)| *s == stage);
        let first = lists.next().map(|(_, names)| names.as_str());
        assert!(lists.next().is_none(), "{stage:?} requested twice");
        first
    };
    let words = |names: &str| -> Vec<String> {
        names
            .split(|c: char| c == ',' || c.is_ascii_whitespace())
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        list(MacroStage::EndOfMessage).is_some(),
        list(MacroStage::EndOfHeaders).is_some()
    );
    for (stage, names) in needs.get_macros() {
        let sent = list(*stage).unwrap_or_else(|| panic!("{stage:?} not requested"));
        let sent_words = words(sent);
        for name in words(names) {
            assert!(
                sent_words.contains(&name),
                "{name} not requested at {stage:?}"
            );
        }
    }
    for (stage, names) in &agreed.macros {
        let queue_id_stage = !matches!(stage, MacroStage::Connect | MacroStage::Helo);
        if queue_id_stage {
            assert!(
                words(names).iter().any(|w| w == "i" || w == "{i}"),
                "{stage:?} list {names:?} lacks the queue id"
            );
            let declared = needs.get_macros().iter().find(|(s, _)| s == stage);
            if let Some((_, declared)) = declared {
                let i_count =
                    |n: &str| words(n).iter().filter(|w| *w == "i" || *w == "{i}").count();
                assert_eq!(
                    i_count(names),
                    i_count(declared).max(1),
                    "{stage:?}: i added although declared, or more than once"
                );
            }
        }
    }
}

/// The encoded reply decodes back to the agreed options and lists.
fn check_reply_encoding(agreed: &Agreed) {
    let mut wire = Vec::new();
    let payload_len = 12
        + agreed
            .macros
            .iter()
            .map(|(_, names)| 4 + names.len() + 1)
            .sum::<usize>();
    match agreed.encode_reply(&mut wire) {
        Ok(()) => {
            let mut decoder = FrameDecoder::new();
            decoder.push(&wire);
            let frame = decoder
                .decode()
                .expect("the reply frames")
                .expect("the reply is whole");
            let Ok(Response::OptNeg(sent)) = Response::decode_frame(&frame) else {
                panic!("the reply does not decode as an OPTNEG reply");
            };
            assert_eq!(sent.options, agreed.options);
            let requests: Vec<_> = sent.macro_requests().collect();
            let expected: Vec<_> = agreed
                .macros
                .iter()
                .map(|(stage, names)| (*stage, WireStr::from(names.as_str())))
                .collect();
            assert_eq!(requests, expected);
            assert_eq!(decoder.buffered(), 0);
        }
        Err(EncodeError::TooLong { len, .. }) => {
            assert_eq!(len, payload_len);
            assert!(len > MAX_RESPONSE_PAYLOAD);
        }
        Err(error) => panic!("the reply does not encode: {error}"),
    }
}

// ===== connection =====

mod connection;

pub use connection::{ScriptedPanic, connection, connection_input, connection_input_text};
