//! Seeded random input: a million frames' worth of random bytes, random payloads under valid
//! codes and mutated valid frames (flipped bytes, bogus lengths) go through `FrameDecoder`,
//! `Command::decode` and `Response::decode`. Nothing panics, whatever decodes re-encodes to
//! the same bytes (the fuzz bodies' checks), and the decoder never holds more than one
//! maximal frame.
//!
//! `PROTO_RANDOM_FRAMES` and `PROTO_RANDOM_SEED` override the count and the seed.

mod common;

use async_milter::fuzzing::{check_command, check_response};
use async_milter::proto::{Command, DecodeError, FrameDecoder, Response};
use common::{Rng, all_frames};

/// Decoder limit: small, so bogus lengths often exceed it.
const MAX_LEN: u32 = 4096;

/// Code bytes worth aiming at: every command and response, and two that are neither.
const CODES: &[u8] = b"ABCDEHKLMNOQRTU+-24abcdehimpqrsty\0Z";

/// Bytes that steer the decoders into their branches: NUL, families, digits, letters.
const INTERESTING: &[u8] = b"\0\0\0\0UL46 <>@:=IPv6ipv6\r\n\xff";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// Appends one frame's worth of test input to `out`.
fn one_frame(rng: &mut Rng, samples: &[Vec<u8>], out: &mut Vec<u8>) {
    let byte = |rng: &mut Rng| {
        if rng.below(2) == 0 {
            INTERESTING[rng.below(INTERESTING.len())]
        } else {
            rng.byte()
        }
    };
    match rng.below(10) {
        // A random payload under a chosen code, with a correct length.
        0..=3 => {
            let len = if rng.below(16) == 0 {
                rng.below(300)
            } else {
                rng.below(24)
            };
            let payload: Vec<u8> = (0..len).map(|_| byte(rng)).collect();
            out.extend_from_slice(&(len as u32 + 1).to_be_bytes());
            out.push(CODES[rng.below(CODES.len())]);
            out.extend_from_slice(&payload);
        }
        // A valid frame with one to three bytes after the length changed.
        4..=6 => {
            let mut frame = samples[rng.below(samples.len())].clone();
            for _ in 0..=rng.below(3) {
                let at = 4 + rng.below(frame.len() - 4);
                frame[at] = byte(rng);
            }
            out.extend_from_slice(&frame);
        }
        // A valid frame under a bogus length.
        7 => {
            let mut frame = samples[rng.below(samples.len())].clone();
            let len = u32::from_be_bytes(frame[..4].try_into().unwrap());
            let bogus = match rng.below(6) {
                0 => 0,
                1 => len - 1,
                2 => len + 1,
                3 => MAX_LEN + 1,
                4 => u32::MAX,
                _ => rng.next_u64() as u32,
            };
            frame[..4].copy_from_slice(&bogus.to_be_bytes());
            out.extend_from_slice(&frame);
        }
        // Noise.
        8 => {
            for _ in 0..=rng.below(16) {
                out.push(rng.byte());
            }
        }
        // A valid frame as it is.
        _ => out.extend_from_slice(&samples[rng.below(samples.len())]),
    }
}

#[test]
fn random_and_mutated_frames_never_panic_and_stay_bounded() {
    let inputs = env_or("PROTO_RANDOM_FRAMES", 1_000_000);
    let seed = env_or("PROTO_RANDOM_SEED", 0x5EED_CAFE);
    let samples = all_frames();
    let mut rng = Rng::new(seed);
    let mut stream = FrameDecoder::with_max_len(MAX_LEN);
    let mut input = Vec::new();
    let (mut decoded, mut valid, mut errors, mut bytes) = (0u64, 0u64, 0u64, 0usize);

    for _ in 0..inputs {
        input.clear();
        one_frame(&mut rng, &samples, &mut input);
        bytes += input.len();
        stream.push(&input);
        loop {
            match stream.decode() {
                Ok(Some(frame)) => {
                    decoded += 1;
                    check_command(frame.kind, &frame.payload);
                    check_response(frame.kind, &frame.payload);
                    if Command::decode_frame(&frame).is_ok()
                        || Response::decode_frame(&frame).is_ok()
                    {
                        valid += 1;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    assert!(
                        matches!(
                            error,
                            DecodeError::EmptyFrame | DecodeError::FrameTooLong { .. }
                        ),
                        "seed {seed}: framing error {error:?}"
                    );
                    // The connection would be closed; start a new one.
                    errors += 1;
                    stream = FrameDecoder::with_max_len(MAX_LEN);
                    break;
                }
            }
        }
        assert!(
            stream.buffered() < MAX_LEN as usize + 4,
            "seed {seed}: decoder holds {} bytes",
            stream.buffered()
        );
    }
    eprintln!(
        "seed {seed:#x}: {inputs} inputs, {bytes} bytes, {decoded} frames ({valid} valid), {errors} errors"
    );
    // The mix must really reach the decoders, and the framing errors.
    assert!(decoded > inputs / 4, "only {decoded} frames decoded");
    assert!(
        valid > inputs / 10,
        "only {valid} frames were valid packets"
    );
    assert!(errors > 0, "no framing error");
    assert!(bytes as u64 >= inputs * 8, "only {bytes} bytes");
}
