//! Fuzz target `connection`: a whole connection (frame decoder, connection core, session,
//! edit queue) served to a scripted MTA, with a filter whose awaits, edits and verdicts the
//! input chooses too. Every answer, the edits, the bounds on memory and how the connection
//! ends are checked against what the MTA and the filter did.
//!
//! The body lives in `async_milter::fuzzing::connection`, so `tests/fuzz_corpus.rs` runs it
//! over the checked-in corpus and a few thousand generated inputs too. Run with
//! `cargo fuzz run connection` (nightly toolchain).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| async_milter::fuzzing::connection(data));
