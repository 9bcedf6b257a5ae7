//! Fuzz target `negotiate`: an MTA's offer and a filter's needs. The reply obeys the
//! negotiation rules of the protocol reference (§3).
//!
//! The body lives in `async_milter::fuzzing::negotiate`, so `tests/fuzz_corpus.rs` runs it over
//! the checked-in corpus too. Run with `cargo fuzz run negotiate` (nightly toolchain).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| async_milter::fuzzing::negotiate(data));
