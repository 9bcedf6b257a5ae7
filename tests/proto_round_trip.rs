//! Round trips for every command and response: encode then decode gives the value back, and
//! decode then encode gives the same bytes. Also how `encode_replace_body` splits a body.

mod common;

use std::collections::HashSet;

use async_milter::proto::{
    Command, CommandKind, Family, FrameDecoder, MAX_RESPONSE_PAYLOAD, Response, ResponseKind,
    encode_replace_body,
};
use common::{commands, encode_command, encode_response, responses};

/// Decodes the single frame in `wire`, checking the length field and that nothing is left.
fn single_frame(wire: &[u8]) -> async_milter::proto::Frame {
    let announced = u32::from_be_bytes(wire[..4].try_into().unwrap());
    assert_eq!(
        announced as usize,
        wire.len() - 4,
        "length field counts code byte + payload"
    );
    let mut decoder = FrameDecoder::new();
    decoder.push(wire);
    let frame = decoder.decode().unwrap().expect("a whole frame");
    assert_eq!(decoder.buffered(), 0);
    assert_eq!(decoder.decode().unwrap(), None);
    frame
}

#[test]
fn every_command_round_trips() {
    for command in commands() {
        let wire = encode_command(&command);
        let frame = single_frame(&wire);
        assert_eq!(frame.kind, u8::from(command.kind()), "{command:?}");
        let decoded = Command::decode_frame(&frame).unwrap();
        assert_eq!(decoded, command);
        assert_eq!(
            encode_command(&decoded),
            wire,
            "{command:?} re-encodes differently"
        );
    }
}

#[test]
fn every_response_round_trips() {
    for response in responses() {
        let wire = encode_response(&response);
        let frame = single_frame(&wire);
        assert_eq!(frame.kind, u8::from(response.kind()), "{response:?}");
        let decoded = Response::decode_frame(&frame).unwrap();
        assert_eq!(decoded, response);
        assert_eq!(
            encode_response(&decoded),
            wire,
            "{response:?} re-encodes differently"
        );
    }
}

/// The samples must cover every kind and the variants the issue names, or the round trips
/// above prove less than they claim.
#[test]
fn samples_cover_every_kind_and_variant() {
    let commands = commands();
    let kinds: HashSet<_> = commands.iter().map(Command::kind).collect();
    for kind in CommandKind::ALL {
        assert!(kinds.contains(&kind), "no sample for {kind:?}");
    }
    let macro_codes: HashSet<u8> = commands
        .iter()
        .filter_map(|c| match c {
            Command::Macro(m) => Some(m.command()),
            _ => None,
        })
        .collect();
    for code in [b'C', b'L', b'B', b'U'] {
        assert!(macro_codes.contains(&code), "no MACRO for {}", code as char);
    }
    assert!(
        commands
            .iter()
            .any(|c| matches!(c, Command::Macro(m) if m.is_empty()))
    );
    let families: HashSet<_> = commands
        .iter()
        .filter_map(|c| match c {
            Command::Connect(c) => Some(c.family),
            _ => None,
        })
        .collect();
    assert_eq!(families.len(), 4, "CONNECT for each family: {families:?}");
    assert!(families.contains(&Family::Unknown) && families.contains(&Family::Inet6));
    for with_args in [true, false] {
        assert!(
            commands
                .iter()
                .any(|c| matches!(c, Command::Mail(e) if e.args().next().is_some() == with_args))
        );
        assert!(
            commands
                .iter()
                .any(|c| matches!(c, Command::Rcpt(e) if e.args().next().is_some() == with_args))
        );
    }
    assert!(
        commands
            .iter()
            .any(|c| matches!(c, Command::EndOfMessage(b) if b.is_empty()))
    );
    assert!(
        commands
            .iter()
            .any(|c| matches!(c, Command::EndOfMessage(b) if !b.is_empty()))
    );

    let responses = responses();
    let kinds: HashSet<_> = responses.iter().map(Response::kind).collect();
    for kind in ResponseKind::ALL {
        assert!(kinds.contains(&kind), "no sample for {kind:?}");
    }
    for some in [true, false] {
        assert!(responses.iter().any(
            |r| matches!(r, Response::AddRcptWithArgs { args, .. } if args.is_some() == some)
        ));
        assert!(
            responses
                .iter()
                .any(|r| matches!(r, Response::ChangeFrom { args, .. } if args.is_some() == some))
        );
        assert!(responses.iter().any(
            |r| matches!(r, Response::OptNeg(o) if o.macro_requests().next().is_some() == some)
        ));
    }
}

/// Decodes a stream of REPLBODY frames, checking each payload against the chunk limit.
fn replace_body_frames(wire: &[u8], max_chunk: usize) -> Vec<Vec<u8>> {
    let mut decoder = FrameDecoder::new();
    decoder.push(wire);
    let mut chunks = Vec::new();
    while let Some(frame) = decoder.decode().unwrap() {
        let Response::ReplaceBody(chunk) = Response::decode_frame(&frame).unwrap() else {
            panic!("not a REPLBODY frame");
        };
        assert!(chunk.len() <= max_chunk, "chunk of {} bytes", chunk.len());
        chunks.push(chunk.to_vec());
    }
    assert_eq!(decoder.buffered(), 0);
    chunks
}

#[test]
fn replace_body_splits_at_65535_bytes() {
    // (body length, frames expected): an empty body is one empty frame (it empties the
    // message); 65535 fits one frame; one byte more needs a second; 1 MiB needs 17.
    let cases = [
        (0, 1),
        (1, 1),
        (65_535, 1),
        (65_536, 2),
        (131_070, 2),
        (131_071, 3),
        (1 << 20, 17),
    ];
    for (len, frames) in cases {
        let body: Vec<u8> = (0..len).map(|i: usize| (i * 7 % 251) as u8).collect();
        let mut wire = Vec::new();
        encode_replace_body(&body, MAX_RESPONSE_PAYLOAD, &mut wire).unwrap();
        let chunks = replace_body_frames(&wire, MAX_RESPONSE_PAYLOAD);
        assert_eq!(chunks.len(), frames, "{len} bytes");
        assert_eq!(chunks.concat(), body, "{len} bytes");
        // All chunks but the last are full.
        for chunk in chunks.iter().rev().skip(1) {
            assert_eq!(chunk.len(), MAX_RESPONSE_PAYLOAD);
        }
    }
}

#[test]
fn replace_body_honours_a_smaller_chunk_and_clamps_a_larger_one() {
    let body = vec![b'x'; 10_000];
    let mut wire = Vec::new();
    encode_replace_body(&body, 1000, &mut wire).unwrap();
    let chunks = replace_body_frames(&wire, 1000);
    assert_eq!(chunks.len(), 10);
    assert_eq!(chunks.concat(), body);

    // A larger chunk than a filter may send is clamped to 65535; zero is clamped to one.
    let big = vec![b'y'; 70_000];
    let mut wire = Vec::new();
    encode_replace_body(&big, 1 << 20, &mut wire).unwrap();
    assert_eq!(replace_body_frames(&wire, MAX_RESPONSE_PAYLOAD).len(), 2);
    let mut wire = Vec::new();
    encode_replace_body(b"abc", 0, &mut wire).unwrap();
    assert_eq!(
        replace_body_frames(&wire, 1),
        vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
    );
}
