//! The bytes the MTA sends for each operation, built by hand so that malformed payloads
//! (a NUL inside a name, a missing terminator) come out as the input says.

use super::filter::BODY_TAG;
use super::input::{Blob, Op};
use crate::fuzzing::frame_bytes;
use crate::proto::OptNeg;

/// The OPTNEG packet for `offer`.
pub(super) fn optneg(offer: OptNeg) -> Vec<u8> {
    let mut payload = Vec::with_capacity(12);
    payload.extend_from_slice(&offer.version.to_be_bytes());
    payload.extend_from_slice(&offer.actions.bits().to_be_bytes());
    payload.extend_from_slice(&offer.protocol.bits().to_be_bytes());
    frame_bytes(b'O', &payload)
}

fn cstr(out: &mut Vec<u8>, text: &[u8]) {
    out.extend_from_slice(text);
    out.push(0);
}

/// An envelope command: the address, then each argument, NUL-terminated.
fn envelope(kind: u8, address: &[u8], args: &[Blob]) -> Vec<u8> {
    let mut payload = Vec::new();
    cstr(&mut payload, address);
    for arg in args {
        cstr(&mut payload, arg);
    }
    frame_bytes(kind, &payload)
}

/// Body text of `len` bytes, CRLF lines.
fn filler(len: usize) -> impl Iterator<Item = u8> {
    b"body text.\r\n".iter().copied().cycle().take(len)
}

/// The bytes of `op`, which sends frame number `next_frame` (when known: nothing of an
/// earlier frame is pending); `None` for operations that send nothing.
pub(super) fn bytes(op: &Op, next_frame: Option<u32>) -> Option<Vec<u8>> {
    let empty = |kind| frame_bytes(kind, b"");
    Some(match op {
        Op::Macro { command, pairs } => {
            let mut payload = vec![*command];
            for (name, value) in pairs {
                cstr(&mut payload, name);
                cstr(&mut payload, value);
            }
            frame_bytes(b'D', &payload)
        }
        Op::Connect {
            host,
            family,
            port,
            address,
        } => {
            let mut payload = Vec::new();
            cstr(&mut payload, host);
            let family = match family % 5 {
                0 => b'4',
                1 => b'6',
                2 => b'L',
                3 => b'U',
                _ => *family,
            };
            payload.push(family);
            if family != b'U' {
                payload.extend_from_slice(&port.to_be_bytes());
                cstr(&mut payload, address);
            }
            frame_bytes(b'C', &payload)
        }
        Op::Helo(name) => {
            let mut payload = Vec::new();
            cstr(&mut payload, name);
            frame_bytes(b'H', &payload)
        }
        Op::Mail { address, args } => envelope(b'M', address, args),
        Op::Rcpt { address, args } => envelope(b'R', address, args),
        Op::Data => empty(b'T'),
        Op::Header { name, value } => {
            let mut payload = Vec::new();
            cstr(&mut payload, name);
            cstr(&mut payload, value);
            frame_bytes(b'L', &payload)
        }
        Op::EndOfHeaders => empty(b'N'),
        Op::Body(len) => {
            // Tagged with its frame number; a chunk sent while an earlier frame is
            // incomplete carries a number that cannot be its own.
            let number = next_frame.unwrap_or(u32::MAX);
            let mut payload = BODY_TAG.to_vec();
            payload.extend_from_slice(&number.to_be_bytes());
            payload.extend(filler(32 * usize::from(*len)));
            frame_bytes(b'B', &payload)
        }
        Op::BigBody(len) => frame_bytes(b'B', &filler(usize::from(*len)).collect::<Vec<_>>()),
        Op::EndOfMessage(data) => frame_bytes(b'E', data),
        Op::Abort => empty(b'A'),
        Op::Unknown(line) => {
            let mut payload = Vec::new();
            cstr(&mut payload, line);
            frame_bytes(b'U', &payload)
        }
        Op::QuitNewConnection => empty(b'K'),
        Op::Quit => empty(b'Q'),
        Op::OptNeg => optneg(OptNeg::VERSION_6),
        Op::Raw(bytes) => bytes.to_vec(),
        Op::Truncated { promised, present } => {
            let promised = usize::from(*promised);
            let mut bytes = (promised as u32 + 1).to_be_bytes().to_vec();
            bytes.push(b'B');
            bytes.extend(filler(promised.min(usize::from(*present))));
            bytes
        }
        Op::Wait(_) | Op::Close | Op::Shutdown | Op::NoSync => return None,
    })
}
