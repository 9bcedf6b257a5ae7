//! The truncation loop: no strict prefix of a frame is a frame, and no strict prefix of a
//! payload decodes unless the packet is legitimately shorter (a list ending at an element
//! boundary, raw bytes), in which case it re-encodes to exactly that prefix.

mod common;

use async_milter::fuzzing::frame_bytes;
use async_milter::proto::{
    Command, CommandKind, DecodeError, FrameDecoder, Response, ResponseKind,
};
use common::{all_frames, commands, encode_command, encode_response, responses};

#[test]
fn every_strict_prefix_of_a_frame_is_incomplete() {
    for wire in all_frames() {
        // A fresh decoder for each prefix.
        for cut in 0..wire.len() {
            let mut decoder = FrameDecoder::new();
            decoder.push(&wire[..cut]);
            assert_eq!(decoder.decode(), Ok(None), "{wire:?} cut at {cut}");
            assert_eq!(decoder.buffered(), cut, "nothing consumed");
            // The rest completes exactly that frame.
            decoder.push(&wire[cut..]);
            let frame = decoder.decode().unwrap().expect("whole again");
            assert_eq!(frame_bytes(frame.kind, &frame.payload), wire);
            assert_eq!(decoder.buffered(), 0);
        }
    }
}

#[test]
fn every_strict_prefix_of_a_large_frame_is_incomplete() {
    // A full body chunk, fed byte by byte to one decoder.
    let body = vec![b'x'; 65_535];
    let wire = encode_command(&Command::Body(&body));
    let mut decoder = FrameDecoder::new();
    let (last, head) = wire.split_last().unwrap();
    for byte in head {
        decoder.push(std::slice::from_ref(byte));
        assert_eq!(decoder.decode(), Ok(None));
    }
    decoder.push(std::slice::from_ref(last));
    let frame = decoder.decode().unwrap().expect("whole");
    assert_eq!(&frame.payload[..], &body[..]);
}

/// A shortened payload must fail as too short, never as something else.
fn is_shortness(error: &DecodeError) -> bool {
    matches!(
        error,
        DecodeError::Truncated { .. }
            | DecodeError::MissingAddress { .. }
            | DecodeError::UnpairedMacro
    )
}

#[test]
fn strict_prefixes_of_command_payloads_fail_or_reencode_to_themselves() {
    // Raw bytes (BODY, BODYEOB) and lists (macro pairs, ESMTP arguments) are valid shorter.
    let may_be_shorter = [
        CommandKind::Body,
        CommandKind::EndOfMessage,
        CommandKind::Macro,
        CommandKind::Mail,
        CommandKind::Rcpt,
    ];
    let mut shorter_decoded = 0;
    for command in commands() {
        let wire = encode_command(&command);
        let (kind, payload) = (wire[4], &wire[5..]);
        for cut in 0..payload.len() {
            let prefix = &payload[..cut];
            match Command::decode(kind, prefix) {
                Err(error) => assert!(is_shortness(&error), "{command:?} at {cut}: {error:?}"),
                Ok(shorter) => {
                    assert!(
                        may_be_shorter.contains(&command.kind()),
                        "{command:?} cut at {cut} decodes as {shorter:?}"
                    );
                    assert_eq!(encode_command(&shorter), frame_bytes(kind, prefix));
                    shorter_decoded += 1;
                }
            }
        }
    }
    assert!(
        shorter_decoded > 0,
        "the lists and raw bytes were exercised"
    );
}

#[test]
fn strict_prefixes_of_response_payloads_fail_or_reencode_to_themselves() {
    // Raw bytes (REPLBODY), an optional trailing argument string (ADDRCPT_PAR, CHGFROM) and
    // the macro requests of the OPTNEG reply are valid shorter.
    let may_be_shorter = [
        ResponseKind::ReplaceBody,
        ResponseKind::AddRcptWithArgs,
        ResponseKind::ChangeFrom,
        ResponseKind::OptNeg,
    ];
    let mut shorter_decoded = 0;
    for response in responses() {
        let wire = encode_response(&response);
        let (kind, payload) = (wire[4], &wire[5..]);
        for cut in 0..payload.len() {
            let prefix = &payload[..cut];
            match Response::decode(kind, prefix) {
                Err(error) => assert!(is_shortness(&error), "{response:?} at {cut}: {error:?}"),
                Ok(shorter) => {
                    assert!(
                        may_be_shorter.contains(&response.kind()),
                        "{response:?} cut at {cut} decodes as {shorter:?}"
                    );
                    assert_eq!(encode_response(&shorter), frame_bytes(kind, prefix));
                    shorter_decoded += 1;
                }
            }
        }
    }
    assert!(
        shorter_decoded > 0,
        "the lists and raw bytes were exercised"
    );
}
