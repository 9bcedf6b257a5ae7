//! The `milter-check` binary, run as a user runs it: against the built examples (started on
//! `inet:0@127.0.0.1`, the port read from their listening line, as `tests/examples.rs` does)
//! and against a fake filter that breaks the protocol. Output is checked through `--json`,
//! outcomes through the documented exit status.
//!
//! Every wait is bounded: the examples' listening line, `milter-check`'s own `--timeout`, and
//! a deadline on the child process.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The longest any single wait may take before the test fails.
const WAIT: Duration = Duration::from_secs(20);

const MESSAGE: &str = "From: Alice <alice@example.com>\r\n\
To: bob@example.net, removeme@example.com\r\n\
Subject: hello\r\n\
\r\n\
Hello, world.\r\n";

/// `target/<profile>/examples`, with the examples built (the first test to get here builds;
/// `cargo test` has built them already, `cargo test --test milter_check` has not).
fn examples_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("path of the test binary");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test binary in <target>/<profile>/deps");
        let target_dir = profile_dir.parent().expect("a target directory");
        let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        build
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("CARGO_TARGET_DIR", target_dir)
            .args(["build", "--quiet", "--examples"]);
        if profile_dir.file_name() == Some("release".as_ref()) {
            build.arg("--release");
        }
        let status = build.status().expect("running cargo build --examples");
        assert!(status.success(), "cargo build --examples failed");
        profile_dir.join("examples")
    })
}

/// A running example, killed when dropped.
struct Example {
    child: Child,
    spec: String,
}

impl Example {
    fn start(name: &str) -> Self {
        let mut child = Command::new(examples_dir().join(name))
            .arg("inet:0@127.0.0.1")
            .env("RUST_LOG", "info")
            .env("RUST_LOG_STYLE", "never")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting example {name}: {e}"));
        let (sender, lines) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().expect("piped")) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().expect("piped")),
        ] {
            let sender = sender.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if sender.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let spec = listening_spec(&lines, name);
        Self { child, spec }
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for the example's `listening on inet:PORT@HOST` line and returns the spec.
fn listening_spec(lines: &Receiver<String>, name: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("example {name}: no listening line ({e})"));
        if let Some((_, rest)) = line.split_once("listening ") {
            let rest = rest.strip_prefix("on ").unwrap_or(rest);
            if let Some(spec) = rest.split_whitespace().next()
                && spec.starts_with("inet:")
            {
                return spec.to_owned();
            }
        }
    }
}

/// Runs `milter-check` with `args` and `stdin`, failing the test after [`WAIT`].
fn milter_check(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_milter-check"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting milter-check");
    let mut input = child.stdin.take().expect("piped stdin");
    input.write_all(stdin.as_bytes()).expect("writing stdin");
    drop(input);
    let deadline = Instant::now() + WAIT;
    while child.try_wait().expect("waiting").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("milter-check did not finish within {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("output of milter-check")
}

/// Runs `milter-check --json` and returns the exit code and the parsed report.
fn check_json(args: &[&str], stdin: &str) -> (i32, Value) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let output = milter_check(&all, stdin);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let code = output.status.code().expect("exited normally");
    assert_eq!(report["exit_code"], code, "report and exit status agree");
    (code, report)
}

fn stage_replies(report: &Value, stage: &str) -> Vec<String> {
    report["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .filter(|s| s["stage"] == stage)
        .map(|s| s["reply"].as_str().expect("reply name").to_owned())
        .collect()
}

#[test]
fn accept_all_accepts_with_exit_0() {
    let example = Example::start("accept_all");
    for mta in ["postfix", "sendmail"] {
        let (code, report) = check_json(&[&example.spec, "--mta", mta], MESSAGE);
        assert_eq!(code, 0, "{report:#}");
        assert_eq!(report["outcome"], "accepted");
        assert_eq!(report["mta"], mta);
        assert_eq!(report["envelope"]["from"], "<alice@example.com>");
        assert_eq!(
            report["envelope"]["rcpts"],
            serde_json::json!(["<bob@example.net>", "<removeme@example.com>"])
        );
        assert!(report["negotiated"]["version"].as_u64().is_some());
        assert_eq!(report["modifications"], serde_json::json!([]));
        let message = report["delivered"]["message"].as_str().expect("delivered");
        assert!(
            message.ends_with("Subject: hello\n\nHello, world.\n"),
            "{message}"
        );
    }
}

#[test]
fn conformance_rejects_the_reject_sender_with_exit_3() {
    let example = Example::start("conformance");
    let (code, report) = check_json(
        &[
            &example.spec,
            "--from",
            "reject@example.com",
            "--mta",
            "sendmail",
        ],
        MESSAGE,
    );
    assert_eq!(code, 3, "{report:#}");
    assert_eq!(report["outcome"], "rejected");
    assert_eq!(report["verdict"], "reply_code");
    assert_eq!(report["reply_text"], "550 5.7.1 go away");
    assert_eq!(stage_replies(&report, "mail"), ["reply_code"]);
    assert!(report["delivered"].is_null());
}

#[test]
fn conformance_edits_are_listed_and_applied() {
    let example = Example::start("conformance");
    let (code, report) = check_json(
        &[
            &example.spec,
            "--rcpt",
            "bob@example.net",
            "--rcpt",
            "<removeme@example.com>",
            "--rcpt",
            "tempfail@example.com",
            "--diff",
        ],
        MESSAGE,
    );
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(stage_replies(&report, "rcpt")[2], "tempfail");
    let kinds: Vec<&str> = report["modifications"]
        .as_array()
        .expect("modifications")
        .iter()
        .map(|m| m["kind"].as_str().expect("kind"))
        .collect();
    for kind in [
        "add_header",
        "change_header",
        "add_rcpt",
        "delete_rcpt",
        "replace_body",
        "change_from",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    let delivered = &report["delivered"];
    assert_eq!(delivered["sender"], "<changed-sender@example.com>");
    let recipients = delivered["recipients"].to_string();
    assert!(recipients.contains("<added@example.com>"), "{recipients}");
    assert!(!recipients.contains("removeme"), "{recipients}");
    assert!(!recipients.contains("tempfail"), "{recipients}");
    let diff = delivered["diff"].as_str().expect("--diff");
    assert!(diff.contains("-Subject: hello\n"), "{diff}");
    assert!(diff.contains("+Subject: [conformance] hello\n"), "{diff}");
    assert!(diff.contains("+HELLO, WORLD.\n"), "{diff}");
    assert!(diff.contains("+X-Conformance: seen\n"), "{diff}");
}

#[test]
fn text_report_shows_negotiation_replies_and_the_delivered_message() {
    let example = Example::start("conformance");
    let output = milter_check(&[&example.spec, "--helo", "mx.example.org"], MESSAGE);
    assert_eq!(output.status.code(), Some(0));
    let text = String::from_utf8_lossy(&output.stdout);
    for wanted in [
        "negotiated  version 6",
        "helo mx.example.org",
        "add header      X-Conformance: seen",
        "change sender   <changed-sender@example.com>",
        "result      accepted",
        "Subject: [conformance] hello",
        "HELLO, WORLD.",
    ] {
        assert!(text.contains(wanted), "{wanted:?} missing from:\n{text}");
    }
}

#[test]
fn load_mode_reports_throughput_and_percentiles() {
    let example = Example::start("accept_all");
    let (code, report) = check_json(
        &[&example.spec, "--count", "20", "--concurrency", "4"],
        MESSAGE,
    );
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["completed"], 20);
    assert_eq!(report["results"]["accepted"], 20);
    assert!(report["messages_per_second"].as_f64().expect("rate") > 0.0);
    for stage in ["negotiate", "CONNECT", "HELO", "message", "session"] {
        let p = &report["latency_ms"][stage];
        assert!(p["p50"].as_f64().expect("p50") <= p["max"].as_f64().expect("max"));
    }
}

/// A filter that answers OPTNEG with a packet that is no OPTNEG reply.
#[test]
fn a_filter_breaking_the_protocol_is_a_protocol_error() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut length = [0; 4];
        stream.read_exact(&mut length).expect("OPTNEG length");
        let mut packet = vec![0; u32::from_be_bytes(length) as usize];
        stream.read_exact(&mut packet).expect("OPTNEG");
        // An OPTNEG reply must be `O` with 12 bytes or more; this is 3 bytes of nonsense.
        stream.write_all(b"\0\0\0\x03Oxy").expect("garbage");
        let _ = stream.read(&mut [0; 64]);
    });
    let spec = format!("inet:{port}@127.0.0.1");
    let (code, report) = check_json(&[&spec, "--timeout", "5"], MESSAGE);
    assert_eq!(code, 6, "{report:#}");
    assert_eq!(report["outcome"], "protocol error");
    let error = report["error"].as_str().expect("error text");
    assert!(error.starts_with("protocol error: "), "{error}");
    assert!(error.contains("invalid packet"), "{error}");
    server.join().expect("fake filter");
}

#[test]
fn nothing_listening_is_a_connection_failure() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    let output = milter_check(&[&format!("127.0.0.1:{port}")], MESSAGE);
    assert_eq!(output.status.code(), Some(7));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("connection failure"), "{stderr}");
}

#[test]
fn a_bad_macro_argument_is_a_usage_error() {
    let output = milter_check(&["127.0.0.1:1", "--macro", "novalue"], MESSAGE);
    assert_eq!(output.status.code(), Some(2));
}
