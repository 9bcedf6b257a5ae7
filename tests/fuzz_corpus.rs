//! Runs every fuzz target's body over its checked-in corpus (`fuzz/corpus/<target>/`), so the
//! targets' properties are checked on stable Rust, where `cargo fuzz` cannot run.
//!
//! The corpus comes from real encoded packets plus a few nasty inputs; regenerate it with
//! `cargo test --test fuzz_corpus -- --ignored regenerate_corpus` (files a fuzzer added are
//! kept).

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use async_milter::fuzzing::{self, FRAME_TARGET_MAX_LEN, frame_bytes, negotiate_input};
use async_milter::proto::{Actions, Events, MacroStage, Needs, OptNeg, ProtocolFlags};
use common::{all_frames, commands, encode_command, encode_response, responses};

type Body = fn(&[u8]);

const TARGETS: [(&str, Body); 5] = [
    ("frame", fuzzing::frame),
    ("command", fuzzing::command),
    ("response", fuzzing::response),
    ("negotiate", fuzzing::negotiate),
    ("connection", fuzzing::connection),
];

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join("corpus")
        .join(target)
}

#[test]
fn every_target_passes_its_corpus() {
    for (target, body) in TARGETS {
        let dir = corpus_dir(target);
        let mut files: Vec<_> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.is_file())
            .collect();
        files.sort();
        assert!(
            files.len() >= 12,
            "{target}: only {} corpus files",
            files.len()
        );
        for file in files {
            let data = fs::read(&file).unwrap();
            let outcome = std::panic::catch_unwind(|| body(&data));
            assert!(outcome.is_ok(), "{target} fails on {}", file.display());
        }
    }
}

/// The generated inputs also pass when not yet written out.
#[test]
fn generated_inputs_pass() {
    for (target, body) in TARGETS {
        for (_, data) in generate(target) {
            body(&data);
        }
    }
}

/// Code byte and payload of an encoded frame: the input of the `command` and `response`
/// targets.
fn unframed(wire: &[u8]) -> Vec<u8> {
    wire[4..].to_vec()
}

fn be32(value: u32) -> [u8; 4] {
    value.to_be_bytes()
}

/// The corpus of one target: (file name, contents).
fn generate(target: &str) -> Vec<(String, Vec<u8>)> {
    match target {
        "frame" => frame_corpus(),
        "command" => command_corpus(),
        "response" => response_corpus(),
        "negotiate" => negotiate_corpus(),
        "connection" => connection_corpus(),
        other => panic!("no target {other}"),
    }
}

/// Builds a named input from fields.
fn input(name: &str, fields: &[&[u8]]) -> (String, Vec<u8>) {
    (name.to_owned(), fields.concat())
}

fn frame_corpus() -> Vec<(String, Vec<u8>)> {
    let mut out = vec![
        input("all-packets", &[&all_frames().concat()]),
        input(
            "all-commands",
            &[&commands()
                .iter()
                .flat_map(encode_command)
                .collect::<Vec<_>>()],
        ),
        input(
            "all-responses",
            &[&responses()
                .iter()
                .flat_map(encode_response)
                .collect::<Vec<_>>()],
        ),
        input(
            "exactly-max",
            &[&frame_bytes(
                b'B',
                &vec![b'x'; FRAME_TARGET_MAX_LEN as usize - 1],
            )],
        ),
        input("nasty-zero-length", &[&be32(0), b"A"]),
        input(
            "nasty-one-over-max",
            &[&be32(FRAME_TARGET_MAX_LEN + 1), b"B"],
        ),
        input("nasty-length-ffffffff", &[&[0xff; 8]]),
        input("nasty-half-length", &[&[0, 0]]),
        input("nasty-length-without-code", &[&be32(1)]),
        input("nasty-empty", &[]),
        input(
            "nasty-valid-then-zero",
            &[&frame_bytes(b'Q', b""), &be32(0)],
        ),
    ];
    for (i, wire) in all_frames().into_iter().enumerate().step_by(6) {
        out.push(input(&format!("packet-{i:02}"), &[&wire]));
    }
    out
}

fn command_corpus() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = commands()
        .iter()
        .enumerate()
        .map(|(i, c)| {
            input(
                &format!("{:?}-{i:02}", c.kind()),
                &[&unframed(&encode_command(c))],
            )
        })
        .collect();
    out.extend([
        input(
            "connect-sendmail-ipv6-prefix",
            &[
                b"C[IPv6:2001:db8::1]\0",
                b"6",
                &[0, 25],
                b"IPv6:2001:db8::1\0",
            ],
        ),
        input(
            "connect-unix-ipv6-path",
            &[b"Clocalhost\0", b"L", &[0, 0], b"IPv6:/run/s\0"],
        ),
        input(
            "nasty-connect-family-x",
            &[b"Chost\0", b"X", &[0, 25], b"a\0"],
        ),
        input("nasty-macro-odd", &[b"DCj\0mx\0_\0"]),
        input("nasty-helo-no-nul", &[b"Hclient"]),
        input("nasty-data-trailing", &[b"T\0"]),
        input("nasty-mail-empty", &[b"M"]),
        input("nasty-code-z", &[b"Zxyz\0"]),
        input("nasty-optneg-short", &[b"O\0\0\0\x06\0\0"]),
    ]);
    out
}

fn response_corpus() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = responses()
        .iter()
        .enumerate()
        .map(|(i, r)| {
            input(
                &format!("{:?}-{i:02}", r.kind()),
                &[&unframed(&encode_response(r))],
            )
        })
        .collect();
    out.extend([
        input("nasty-quarantine-empty", &[b"q\0"]),
        input("nasty-addheader-empty-name", &[b"h\0value\0"]),
        input(
            "nasty-optneg-unknown-stage",
            &[b"O", &be32(6), &be32(0x100), &be32(0), &be32(7), b"i\0"],
        ),
        input("nasty-setsymlist-packet", &[b"l\0\0\0\x03i\0"]),
        input("nasty-chgfrom-three-strings", &[b"e<a>\0RET=HDRS\0x\0"]),
        input("nasty-replbody-65536", &[b"b", &vec![b'x'; 65_536]]),
    ]);
    out
}

fn negotiate_corpus() -> Vec<(String, Vec<u8>)> {
    let offer = |version, actions, protocol| OptNeg {
        version,
        actions: Actions::from_bits(actions),
        protocol: ProtocolFlags::from_bits(protocol),
    };
    let v6 = offer(6, 0x1FF, 0x1F_FFFF);
    let required = Needs::everything().actions(Actions::ADD_HEADERS | Actions::QUARANTINE);
    let few = Needs::everything()
        .events(Events::MAIL | Events::RCPT | Events::BODY)
        .answers(Events::MAIL);
    let macros = Needs::everything()
        .macros(MacroStage::EndOfMessage, "{msg_id}")
        .macros(MacroStage::Rcpt, "{rcpt_addr} i");
    let cases = [
        ("postfix-3.7", v6, Needs::everything()),
        (
            "sendmail-mds",
            offer(6, 0x1FF, 0x1F_FFFF | 0x1000_0000),
            Needs::everything(),
        ),
        (
            "postfix-protocol-4",
            offer(4, 0x1FF, 0x37F),
            Needs::everything(),
        ),
        (
            "postfix-protocol-3",
            offer(3, 0x1FF, 0x17F),
            Needs::everything(),
        ),
        (
            "postfix-protocol-2",
            offer(2, 0x1FF, 0x7F),
            Needs::everything(),
        ),
        ("sendmail-8.13", offer(2, 0x3F, 0xFF), Needs::everything()),
        ("version-1", offer(1, 0x0F, 0x3F), Needs::everything()),
        ("empty-offer", offer(6, 0, 0), Needs::everything()),
        ("required-missing", offer(6, 0x03, 0x1F_FFFF), required),
        ("few-events-few-answers", v6, few.clone()),
        ("few-events-v1-bits", offer(6, 0x1FF, 0x3F), few),
        ("macros-eom-only", v6, macros.clone()),
        ("macros-not-offered", offer(6, 0xFF, 0x1F_FFFF), macros),
    ];
    let mut out: Vec<_> = cases
        .iter()
        .map(|(name, offer, needs)| input(name, &[&negotiate_input(*offer, needs)]))
        .collect();
    out.push(input("nasty-short", &[&[0, 0, 0, 6, 0]]));
    out.push(input("nasty-empty", &[]));
    out
}

/// How many seeded inputs `connection_generated_sessions` plays.
const CONNECTION_SEEDS: u64 = 3000;

/// Seeds of the generated inputs written to the corpus (beside what a fuzzer found).
const CONNECTION_CORPUS_SEEDS: u64 = 48;

fn connection_corpus() -> Vec<(String, Vec<u8>)> {
    (0..CONNECTION_CORPUS_SEEDS)
        .map(|seed| (format!("seed-{seed:04}"), fuzzing::connection_input(seed)))
        .collect()
}

/// The `connection` target over a few thousand structured inputs: sessions as Postfix and
/// Sendmail send them, scripted filters, and the odd wait, garbage or shutdown.
#[test]
fn connection_generated_sessions() {
    for seed in 0..CONNECTION_SEEDS {
        let data = fuzzing::connection_input(seed);
        let outcome = std::panic::catch_unwind(|| fuzzing::connection(&data));
        assert!(
            outcome.is_ok(),
            "connection fails on the input of seed {seed}"
        );
    }
}

/// Writes the generated corpus into `fuzz/corpus/<target>/`.
#[test]
#[ignore = "writes into the source tree; run by hand to regenerate the corpus"]
fn regenerate_corpus() {
    for (target, _) in TARGETS {
        let dir = corpus_dir(target);
        fs::create_dir_all(&dir).unwrap();
        for (name, data) in generate(target) {
            fs::write(dir.join(name), data).unwrap();
        }
    }
}
