//! Heap allocations of the frame decoder in steady state, counted by a global allocator.
//!
//! One test in its own binary, so nothing else allocates while it counts.

use std::alloc::System;

use async_milter::proto::{FRAME_HEADER_LEN, Frame, FrameDecoder, MAX_BODY_CHUNK};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Feeds `bytes` through `spare` in reads of at most `read` bytes, as a socket would.
fn feed(decoder: &mut FrameDecoder, bytes: &[u8], read: usize) {
    let mut rest = bytes;
    while !rest.is_empty() {
        let mut spare = decoder.spare();
        let n = spare.len().min(rest.len()).min(read);
        spare[..n].copy_from_slice(&rest[..n]);
        spare.commit(n);
        rest = &rest[n..];
    }
}

fn frame(kind: u8, len: usize) -> Vec<u8> {
    let mut frame = u32::try_from(len + 1).unwrap().to_be_bytes().to_vec();
    frame.push(kind);
    frame.resize(FRAME_HEADER_LEN + len, b'x');
    frame
}

#[test]
fn decoder_allocates_nothing_in_steady_state() {
    // Body chunks of the largest size, each held (as the filter holds it) while the next
    // one is read, then dropped: the two storages must take turns.
    let chunk = frame(b'B', MAX_BODY_CHUNK);
    let mut decoder = FrameDecoder::new();
    let mut held: Option<Frame> = None;
    for round in 0..40 {
        let region = Region::new(GLOBAL);
        feed(&mut decoder, &chunk, 16 * 1024);
        let next = decoder.decode().unwrap().unwrap();
        assert_eq!(next.payload.len(), MAX_BODY_CHUNK);
        held = Some(next);
        let allocations = region.change().allocations;
        if round >= 4 {
            assert_eq!(allocations, 0, "body chunk {round} allocated");
        }
    }
    drop(held);

    // Small frames, several per read, none held.
    let mut stream = Vec::new();
    for _ in 0..5 {
        stream.extend(frame(b'D', 40));
        stream.extend(frame(b'L', 90));
    }
    let mut decoder = FrameDecoder::new();
    for round in 0..200 {
        let region = Region::new(GLOBAL);
        feed(&mut decoder, &stream, 333);
        let mut frames = 0;
        while let Some(frame) = decoder.decode().unwrap() {
            frames += 1;
            drop(frame);
        }
        assert_eq!(frames, 10);
        // Lending space for a read that then finds nothing costs nothing either.
        let _ = decoder.spare().len();
        let allocations = region.change().allocations;
        if round >= 4 {
            assert_eq!(allocations, 0, "small frames, round {round}, allocated");
        }
    }
}
