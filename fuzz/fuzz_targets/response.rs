//! Fuzz target `response`: a response code byte and its payload. Whatever decodes re-encodes
//! to the same bytes, or the encoder refuses it for a documented reason.
//!
//! The body lives in `async_milter::fuzzing::response`, so `tests/fuzz_corpus.rs` runs it over
//! the checked-in corpus too. Run with `cargo fuzz run response` (nightly toolchain).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| async_milter::fuzzing::response(data));
