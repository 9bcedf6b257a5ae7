//! Fuzz target `frame`: a byte stream from a peer. Decoded whole, split and through
//! `spare`, it yields the same frames, which re-frame to the input; memory stays bounded.
//!
//! The body lives in `async_milter::fuzzing::frame`, so `tests/fuzz_corpus.rs` runs it over
//! the checked-in corpus too. Run with `cargo fuzz run frame` (nightly toolchain).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| async_milter::fuzzing::frame(data));
