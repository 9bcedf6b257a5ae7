//! The `milter-check` binary, run as a user runs it: against every built example that serves
//! mail (started on `inet:0@127.0.0.1`, the port read from their listening line, as
//! `tests/examples.rs` does), one message each with the example's documented effect checked,
//! and against a fake filter that breaks the protocol. Output is checked through `--json`,
//! outcomes through the documented exit status.
//!
//! Every wait is bounded: the examples' listening line, `milter-check`'s own `--timeout`, and
//! a deadline on the child process.

mod built;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use built::example_path;
use serde_json::Value;

/// The longest any single wait may take before the test fails.
const WAIT: Duration = Duration::from_secs(20);

/// The socket argument of every example: loopback, a port the system picks.
const ANY_PORT: &str = "inet:0@127.0.0.1";

const MESSAGE: &str = "From: Alice <alice@example.com>\r\n\
To: bob@example.net, removeme@example.com\r\n\
Subject: hello\r\n\
\r\n\
Hello, world.\r\n";

/// A running example, killed when dropped. Its output lines stay readable through `lines`
/// (the reader threads live as long as the receiver).
struct Example {
    child: Child,
    spec: String,
    lines: Receiver<String>,
}

impl Example {
    fn start(name: &str) -> Self {
        Self::start_with(name, &[ANY_PORT])
    }

    /// Starts example `name` with `args` (the socket among them).
    fn start_with(name: &str, args: &[&str]) -> Self {
        let mut child = Command::new(example_path(name))
            .args(args)
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
        Self { child, spec, lines }
    }

    /// Waits for an output line containing `text`.
    fn wait_for_line(&self, text: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(text) => return,
                Ok(_) => {}
                Err(e) => panic!("no line containing {text:?} ({e})"),
            }
        }
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
    check_conformance_edits("conformance");
}

/// The conformance filter's edits, recipient tempfail and `--diff`, the same for each of the
/// three examples that implement it.
fn check_conformance_edits(name: &str) {
    let example = Example::start(name);
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
    assert_eq!(code, 0, "{name}: {report:#}");
    assert_eq!(stage_replies(&report, "rcpt")[2], "tempfail", "{name}");
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
        assert!(
            kinds.contains(&kind),
            "{name}: {kind} missing from {kinds:?}"
        );
    }
    let delivered = &report["delivered"];
    assert_eq!(
        delivered["sender"], "<changed-sender@example.com>",
        "{name}"
    );
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

// ===== every other example: one message each, its documented effect =====

/// The values of header `name` in the delivered message, without surrounding whitespace.
fn delivered_header(report: &Value, name: &str) -> Vec<String> {
    report["delivered"]["headers"]
        .as_array()
        .expect("delivered headers")
        .iter()
        .filter(|h| {
            h["name"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
        .map(|h| h["value"].as_str().expect("value").trim().to_owned())
        .collect()
}

/// The reply text of each RCPT (empty for a reply without text).
fn rcpt_texts(report: &Value) -> Vec<String> {
    report["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .filter(|s| s["stage"] == "rcpt")
        .map(|s| s["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The modifications of one kind.
fn modifications<'a>(report: &'a Value, kind: &str) -> Vec<&'a Value> {
    report["modifications"]
        .as_array()
        .expect("modifications")
        .iter()
        .filter(|m| m["kind"] == kind)
        .collect()
}

#[test]
fn subject_tagger_tags_external_mail() {
    let example = Example::start("subject_tagger");
    let (code, report) = check_json(&[&example.spec, "--client-addr", "203.0.113.7"], MESSAGE);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(delivered_header(&report, "Subject"), ["[EXTERNAL] hello"]);
    assert_eq!(
        modifications(&report, "change_header").len(),
        1,
        "{report:#}"
    );
}

#[test]
fn recipient_policy_refuses_recipients_one_by_one() {
    let example = Example::start("recipient_policy");
    let (code, report) = check_json(
        &[
            &example.spec,
            "--rcpt",
            "bob@example.net",
            "--rcpt",
            "nobody@example.net",
            "--rcpt",
            "full@example.org",
        ],
        MESSAGE,
    );
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(
        rcpt_texts(&report),
        ["", "550 5.1.1 no such user", "452 4.2.2 mailbox full"]
    );
    assert_eq!(
        report["delivered"]["recipients"],
        serde_json::json!(["<bob@example.net>"])
    );
}

#[test]
fn disclaimer_appends_its_text() {
    let example = Example::start("disclaimer");
    let (code, report) = check_json(&[&example.spec, "--mta", "sendmail"], MESSAGE);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(
        modifications(&report, "replace_body").len(),
        1,
        "{report:#}"
    );
    let message = report["delivered"]["message"].as_str().expect("delivered");
    assert!(
        message.ends_with("Hello, world.\n-- \nThis message was checked by async-milter.\n"),
        "{message}"
    );
}

#[test]
fn inspect_accepts_untouched_and_logs_the_stages() {
    let example = Example::start("inspect");
    let (code, report) = check_json(&[&example.spec, "--helo", "mx.example.org"], MESSAGE);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["verdict"], "accept");
    assert_eq!(report["modifications"], serde_json::json!([]));
    example.wait_for_line("helo mx.example.org");
    example.wait_for_line("mail from <alice@example.com>");
}

#[test]
fn connection_state_counts_per_connection() {
    // Every message of the load mode has a connection of its own, so none is the fourth.
    let example = Example::start("connection_state");
    let (code, report) = check_json(&[&example.spec, "--count", "4"], MESSAGE);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["results"]["accepted"], 4, "{report:#}");
    example.wait_for_line("closed: 1 messages passed, 0 refused");
}

#[test]
fn conformance_hooks_edits_as_conformance_does() {
    check_conformance_edits("conformance_hooks");
}

#[test]
fn conformance_chain_edits_as_conformance_does() {
    check_conformance_edits("conformance_chain");
}

#[test]
fn hooks_milter_strips_internal_headers_and_archives() {
    let example = Example::start("hooks_milter");
    let message = "From: <alice@example.com>\nTo: <bob@example.net>\nX-Internal: secret\n\
                   Subject: hi\n\nHello\n";
    let (code, report) = check_json(&[&example.spec], message);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["verdict"], "continue");
    assert_eq!(
        delivered_header(&report, "X-Internal"),
        Vec::<String>::new()
    );
    assert_eq!(
        delivered_header(&report, "X-Hooks-Milter"),
        ["message 1, 1 recipients, 7 body bytes"]
    );
    assert_eq!(
        report["delivered"]["recipients"],
        serde_json::json!(["<bob@example.net>", "<archive@example.com>"])
    );
}

#[test]
fn chain_refuses_blocked_recipients_tags_and_checksums() {
    let example = Example::start("chain");
    let (code, report) = check_json(
        &[
            &example.spec,
            "--client-addr",
            "203.0.113.7",
            "--rcpt",
            "bob@example.net",
            "--rcpt",
            "eve@blocked.example",
        ],
        MESSAGE,
    );
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(
        rcpt_texts(&report),
        ["", "550 5.7.1 recipient domain blocked"]
    );
    assert_eq!(delivered_header(&report, "Subject"), ["[EXTERNAL] hello"]);
    let checksum = delivered_header(&report, "X-Body-Checksum");
    assert!(
        checksum.len() == 1 && checksum[0].starts_with("fnv1a-64 "),
        "{checksum:?}"
    );
    assert_eq!(
        report["delivered"]["recipients"],
        serde_json::json!(["<bob@example.net>"])
    );
}

#[test]
fn attachment_policy_rejects_an_executable_at_end_of_message() {
    let example = Example::start("attachment_policy");
    let message = "From: <alice@example.com>\nTo: <bob@example.net>\nSubject: invoice\n\
MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b1\"\n\n\
--b1\nContent-Type: text/plain\n\nAttached.\n\
--b1\nContent-Type: application/octet-stream; name=\"invoice.exe\"\n\
Content-Disposition: attachment; filename=\"invoice.exe\"\n\
Content-Transfer-Encoding: base64\n\nTVqQAAMAAAAEAAAA//8AALgAAAA=\n--b1--\n";
    for mta in ["postfix", "sendmail"] {
        let (code, report) = check_json(&[&example.spec, "--mta", mta], message);
        assert_eq!(code, 3, "{mta}: {report:#}");
        assert_eq!(stage_replies(&report, "eom"), ["reply_code"], "{mta}");
        assert_eq!(
            report["reply_text"],
            "550 5.7.1 attachment \"invoice.exe\" refused: executable content is not \
             accepted here"
        );
        assert!(report["delivered"].is_null());
    }
}

#[test]
fn rate_limit_refuses_mail_over_the_limit_per_user() {
    let example = Example::start_with("rate_limit", &[ANY_PORT, "--limit", "1"]);
    let args = [example.spec.as_str(), "--macro", "{auth_authen}=alice"];
    let (code, report) = check_json(&args, MESSAGE);
    assert_eq!(code, 0, "{report:#}");
    let requested = report["negotiated"]["macro_requests"]["Mail"].as_str();
    assert!(
        requested.is_some_and(|names| names.contains("{auth_authen}")),
        "{report:#}"
    );
    let (code, report) = check_json(&args, MESSAGE);
    assert_eq!(code, 4, "{report:#}");
    assert_eq!(stage_replies(&report, "mail"), ["reply_code"]);
    assert_eq!(
        report["reply_text"],
        "451 4.7.1 too many messages from user alice, try again later"
    );
}

#[test]
fn greylist_tempfails_a_first_sighting() {
    let example = Example::start("greylist");
    let (code, report) = check_json(&[&example.spec, "--rcpt", "bob@example.net"], MESSAGE);
    assert_eq!(code, 4, "{report:#}");
    assert_eq!(report["outcome"], "tempfailed");
    assert_eq!(
        rcpt_texts(&report),
        ["451 4.7.1 greylisted, try again later"]
    );
    assert!(report["delivered"].is_null());
}

#[test]
fn metrics_example_refuses_nobody_and_marks_the_message() {
    let http_port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    let example = Example::start_with("metrics", &[ANY_PORT, &http_port.to_string()]);
    let (code, report) = check_json(
        &[
            &example.spec,
            "--rcpt",
            "bob@example.net",
            "--rcpt",
            "nobody@example.net",
        ],
        MESSAGE,
    );
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(rcpt_texts(&report), ["", "550 5.1.1 no such user"]);
    assert_eq!(delivered_header(&report, "X-Scanned"), ["metrics-example"]);
}

#[test]
fn e2e_multiline_reply_refuses_with_both_lines() {
    let example = Example::start_with("e2e_scenarios", &["multiline-reply", ANY_PORT]);
    let (code, report) = check_json(&[&example.spec], MESSAGE);
    assert_eq!(code, 3, "{report:#}");
    assert_eq!(stage_replies(&report, "eom"), ["reply_code"]);
    assert_eq!(
        report["reply_text"],
        "550-5.7.1 first line 100%%\r\n550 5.7.1 second line"
    );
}
