//! Fuzz target `command`: a command code byte and its payload. Whatever decodes re-encodes
//! to the same bytes (CONNECT may drop an `IPv6:` prefix from a family `6` address).
//!
//! The body lives in `async_milter::fuzzing::command`, so `tests/fuzz_corpus.rs` runs it over
//! the checked-in corpus too. Run with `cargo fuzz run command` (nightly toolchain).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| async_milter::fuzzing::command(data));
