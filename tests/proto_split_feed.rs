//! Split feed: one stream holding every command, fed whole, one byte at a time, in seeded
//! random pieces and through `spare`/`commit`, yields the same frames in the same order.

mod common;

use async_milter::proto::{Command, Frame, FrameDecoder, Header};
use common::{Rng, commands, encode_command};

/// Every sample command, plus a full body chunk and a 100 KiB header (Postfix sends those).
fn stream() -> (Vec<u8>, Vec<Command<'static>>) {
    let body: &'static [u8] = Box::leak(vec![b'b'; 65_535].into_boxed_slice());
    let value: &'static [u8] = Box::leak(vec![b'v'; 102_400].into_boxed_slice());
    let mut all = commands();
    all.push(Command::Body(body));
    all.push(Command::Header(Header {
        name: "X-Big".into(),
        value: value.into(),
    }));
    all.extend(commands());
    let wire = all.iter().flat_map(encode_command).collect();
    (wire, all)
}

/// Pushes `wire` in pieces whose sizes `next_size` picks, decoding after every piece.
fn feed(wire: &[u8], mut next_size: impl FnMut() -> usize) -> Vec<Frame> {
    let mut decoder = FrameDecoder::new();
    let mut frames = Vec::new();
    let mut rest = wire;
    while !rest.is_empty() {
        let (piece, tail) = rest.split_at(next_size().clamp(1, rest.len()));
        decoder.push(piece);
        rest = tail;
        while let Some(frame) = decoder.decode().unwrap() {
            frames.push(frame);
        }
    }
    assert_eq!(decoder.buffered(), 0, "nothing left over");
    frames
}

/// Reads `wire` through `spare`, as a socket loop does, with read sizes `next_size` picks.
fn feed_through_spare(wire: &[u8], mut next_size: impl FnMut() -> usize) -> Vec<Frame> {
    let mut decoder = FrameDecoder::new();
    let mut frames = Vec::new();
    let mut rest = wire;
    while !rest.is_empty() {
        {
            let mut spare = decoder.spare();
            let n = next_size().clamp(1, spare.len().min(rest.len()));
            spare[..n].copy_from_slice(&rest[..n]);
            spare.commit(n);
            rest = &rest[n..];
        }
        while let Some(frame) = decoder.decode().unwrap() {
            frames.push(frame);
        }
    }
    assert_eq!(decoder.buffered(), 0, "nothing left over");
    frames
}

#[test]
fn whole_byte_at_a_time_and_random_splits_agree() {
    let (wire, sent) = stream();
    let whole = feed(&wire, || usize::MAX);
    assert_eq!(whole.len(), sent.len());
    for (frame, command) in whole.iter().zip(&sent) {
        assert_eq!(&Command::decode_frame(frame).unwrap(), command);
    }

    assert_eq!(feed(&wire, || 1), whole, "one byte at a time");
    for seed in 1..=16 {
        let mut rng = Rng::new(seed);
        // Mostly small pieces, sometimes large ones, so frames split everywhere.
        let split = feed(&wire, || {
            if rng.below(8) == 0 {
                rng.below(200_000) + 1
            } else {
                rng.below(40) + 1
            }
        });
        assert_eq!(split, whole, "seed {seed}");
    }
}

#[test]
fn reading_through_spare_agrees() {
    let (wire, _) = stream();
    let whole = feed(&wire, || usize::MAX);
    assert_eq!(
        feed_through_spare(&wire, || usize::MAX),
        whole,
        "full reads"
    );
    assert_eq!(feed_through_spare(&wire, || 1), whole, "one byte per read");
    for seed in 1..=8 {
        let mut rng = Rng::new(seed);
        let split = feed_through_spare(&wire, || rng.below(5000) + 1);
        assert_eq!(split, whole, "seed {seed}");
    }
}
