//! Every example, run as its built binary and driven through the test kit, so an example
//! cannot silently drift from what its documentation says.
//!
//! Each server example is started on `inet:0@127.0.0.1`; the port it got is read from the
//! line it prints when listening (the library logs `listening on inet:PORT@ADDR`, the
//! benchmark servers print `listening inet:PORT@ADDR`). The process is killed when the test
//! ends, passed or not. No wait is a sleep in the hope that something has happened: each
//! one ends as soon as it has (a line read, a connection accepted, the process exited) and
//! fails the test after a bounded time.
//!
//! The examples are built first (`cargo test` has done so already; `cargo test --test
//! examples` alone has not), so the binaries tested are never stale.

mod built;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use async_milter::proto::{Actions, CommandKind, Family, MacroStage, ProtocolFlags};
use async_milter::testing::{
    ClientError, Envelope, MilterClient, Modification, MtaKind, Outcome, Profile, Reply,
};
use async_std::net::TcpStream;
use built::example_path;

/// The longest any single wait may take before the test fails.
const WAIT: Duration = Duration::from_secs(10);

/// Where every server example is told to listen: loopback, a port the system picks.
const ANY_PORT: &str = "inet:0@127.0.0.1";

/// Runs a test body on async-std, failing it if it takes longer than 60 s overall.
fn run<F: Future<Output = ()>>(body: F) {
    async_std::task::block_on(async {
        async_std::future::timeout(Duration::from_secs(60), body)
            .await
            .expect("test took longer than 60 s");
    });
}

/// A running example process: killed when dropped. Its standard output and error are read
/// line by line on two threads, so the pipes never fill up.
struct Example {
    name: &'static str,
    child: Child,
    lines: Receiver<String>,
    /// Every line read so far, both streams interleaved as they arrived.
    seen: Vec<String>,
    /// `HOST:PORT` it listens on.
    addr: String,
}

impl Example {
    /// Starts example `name` with `args` and waits until it listens.
    fn start(name: &'static str, args: &[&str]) -> Self {
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
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        forward_lines(stdout, sender.clone());
        forward_lines(stderr, sender);
        let mut example = Self {
            name,
            child,
            lines,
            seen: Vec::new(),
            addr: String::new(),
        };
        let line =
            example.wait_for_line("its listening line", |line| listening_spec(line).is_some());
        let spec = listening_spec(&line).expect("matched above");
        let (port, host) = spec
            .strip_prefix("inet:")
            .and_then(|rest| rest.split_once('@'))
            .unwrap_or_else(|| panic!("example {name} listens on {spec}, not inet:PORT@HOST"));
        example.addr = format!("{host}:{port}");
        example
    }

    /// Waits for the next line (from either stream) that matches `wanted`, checking the lines
    /// already read first; fails the test after [`WAIT`] or if the process closed both streams.
    fn wait_for_line(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        if let Some(line) = self.seen.iter().find(|line| wanted(line)) {
            return line.clone();
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("{}: no line with {what} within {WAIT:?}", self.describe());
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("{}: exited before {what}", self.describe());
                }
            }
        }
    }

    /// A milter connection to the example, retried for a bounded time in case the listener
    /// is not accepting yet.
    async fn client(&self, profile: Profile) -> MilterClient<TcpStream> {
        let mut attempts = 0;
        let stream = loop {
            match TcpStream::connect(&self.addr).await {
                Ok(stream) => break stream,
                Err(e) if attempts < 100 => {
                    attempts += 1;
                    eprintln!("example {}: connect failed ({e}), retrying", self.name);
                    async_std::task::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("example {} on {}: {e}", self.name, self.addr),
            }
        };
        stream.set_nodelay(true).expect("TCP_NODELAY");
        MilterClient::new(stream, profile)
    }

    /// A negotiated connection that has sent CONNECT from `address` and HELO.
    async fn session(
        &self,
        profile: Profile,
        family: Family,
        address: &str,
    ) -> MilterClient<TcpStream> {
        let mut client = self.client(profile).await;
        client.negotiate().await.expect("negotiation");
        let connect = client
            .connect("client.example.com", family, 50000, address)
            .await
            .expect("CONNECT");
        assert!(connect.is_continue(), "CONNECT answered {connect:?}");
        let helo = client.helo("client.example.com").await.expect("HELO");
        assert!(helo.is_continue(), "HELO answered {helo:?}");
        client
    }

    /// Asks the example to stop (SIGTERM) and returns how it exited.
    fn terminate(&mut self) -> ExitStatus {
        let pid = i32::try_from(self.child.id()).expect("pid fits in i32");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("sending SIGTERM");
        wait_exit(&mut self.child, self.name)
    }

    fn describe(&self) -> String {
        format!(
            "example {} (output so far:\n{})",
            self.name,
            self.seen.join("\n")
        )
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        // Already gone after `terminate`; either way it must not outlive the test.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The socket spec in a listening line, if `line` is one.
fn listening_spec(line: &str) -> Option<&str> {
    let (_, rest) = line.split_once("listening ")?;
    let rest = rest.strip_prefix("on ").unwrap_or(rest);
    rest.split_whitespace()
        .next()
        .filter(|spec| spec.starts_with("inet:"))
}

fn forward_lines(stream: impl Read + Send + 'static, sender: mpsc::Sender<String>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
}

/// Waits, for at most [`WAIT`], until `child` exits.
fn wait_exit(child: &mut Child, name: &str) -> ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().expect("waiting for the example") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "example {name} still running {WAIT:?} after being asked to stop"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn envelope() -> Envelope {
    Envelope::new("<alice@example.com>", &["<bob@example.net>"])
}

const PLAIN: &[u8] =
    b"From: <alice@example.com>\nTo: <bob@example.net>\nSubject: hello\n\nHello Bob\n";

/// The header values of `name`, in order, in the message as delivered.
fn delivered_headers(outcome: &Outcome, name: &str) -> Vec<String> {
    let delivered = outcome.delivered.as_ref().expect("message delivered");
    delivered
        .headers_named(name)
        .map(str::trim_start)
        .map(|v| v.trim_end().to_owned())
        .collect()
}

/// The delivered header names, in order.
fn delivered_names(outcome: &Outcome) -> Vec<String> {
    let delivered = outcome.delivered.as_ref().expect("message delivered");
    delivered.headers.iter().map(|h| h.name.clone()).collect()
}

fn assert_reply_code(reply: &Reply, prefix: &str) {
    assert!(
        matches!(reply, Reply::ReplyCode(text) if text.starts_with(prefix)),
        "want a reply code starting {prefix:?}, got {reply:?}"
    );
}

// ===== accept_all =====

#[test]
fn accept_all_accepts_untouched_and_negotiates_away_everything_else() {
    let mut example = Example::start("accept_all", &[ANY_PORT]);
    run(async {
        for profile in [Profile::postfix(), Profile::sendmail()] {
            let mut client = example.client(profile).await;
            let negotiated = client.negotiate().await.expect("negotiation");
            assert!(negotiated.actions.is_empty(), "{negotiated:?}");
            for command in [
                CommandKind::Connect,
                CommandKind::Helo,
                CommandKind::Mail,
                CommandKind::Rcpt,
                CommandKind::Header,
                CommandKind::EndOfHeaders,
                CommandKind::Body,
            ] {
                assert!(!negotiated.sends(command), "{command:?} negotiated");
            }
            client
                .connect("client.example.com", Family::Inet, 50000, "192.0.2.1")
                .await
                .expect("CONNECT");
            client.helo("client.example.com").await.expect("HELO");
            for _ in 0..2 {
                let outcome = client.send_message(&envelope(), PLAIN).await.unwrap();
                assert_eq!(outcome.verdict, Reply::Accept);
                assert!(outcome.modifications.is_empty());
                let delivered = outcome.delivered.expect("delivered");
                assert_eq!(
                    delivered.header("Subject").map(str::trim_start),
                    Some("hello")
                );
                assert_eq!(delivered.body, b"Hello Bob\r\n");
            }
            client.quit().await.expect("QUIT");
        }
    });
    // termination_signal(): SIGTERM stops it cleanly.
    assert!(example.terminate().success());
}

// ===== subject_tagger =====

const TAG_ME: &[u8] = b"From: <alice@example.com>\nSubject: hello\n\nHi\n";
const NO_SUBJECT: &[u8] = b"From: <alice@example.com>\n\nHi\n";
const TAGGED: &[u8] = b"From: <alice@example.com>\nSubject: [EXTERNAL] hello\n\nHi\n";

#[test]
fn subject_tagger_tags_external_mail() {
    let example = Example::start("subject_tagger", &[ANY_PORT]);
    run(async {
        for profile in [Profile::postfix(), Profile::sendmail()] {
            for (family, address) in [
                (Family::Inet, "203.0.113.7"),
                (Family::Inet6, "2001:db8::7"),
            ] {
                let mut client = example.session(profile.clone(), family, address).await;
                let outcome = client.send_message(&envelope(), TAG_ME).await.unwrap();
                assert_eq!(outcome.verdict, Reply::Accept);
                assert_eq!(delivered_headers(&outcome, "Subject"), ["[EXTERNAL] hello"]);

                let outcome = client.send_message(&envelope(), NO_SUBJECT).await.unwrap();
                assert_eq!(outcome.verdict, Reply::Accept);
                assert_eq!(delivered_headers(&outcome, "Subject"), ["[EXTERNAL]"]);

                // Already tagged: left as it is.
                let outcome = client.send_message(&envelope(), TAGGED).await.unwrap();
                assert_eq!(outcome.verdict, Reply::Accept);
                assert!(outcome.modifications.is_empty(), "{outcome:?}");
                client.quit().await.expect("QUIT");
            }
        }
    });
}

#[test]
fn subject_tagger_leaves_internal_mail_alone_from_the_first_message() {
    let example = Example::start("subject_tagger", &[ANY_PORT]);
    run(async {
        for profile in [Profile::postfix(), Profile::sendmail()] {
            for (family, address) in [
                (Family::Inet, "127.0.0.1"),
                (Family::Inet, "192.168.1.20"),
                (Family::Inet, "10.1.2.3"),
                (Family::Inet6, "::1"),
            ] {
                // A new connection each time: the first message of a connection is the one
                // that was tagged when the client address was not known yet.
                let mut client = example.session(profile.clone(), family, address).await;
                for message in 1..=2 {
                    let outcome = client.send_message(&envelope(), TAG_ME).await.unwrap();
                    assert_eq!(outcome.verdict, Reply::Accept);
                    assert!(
                        outcome.modifications.is_empty(),
                        "{address}, message {message}: {:?}",
                        outcome.modifications
                    );
                    assert_eq!(delivered_headers(&outcome, "Subject"), ["hello"]);
                }
                client.quit().await.expect("QUIT");
            }
        }
    });
}

// ===== recipient_policy =====

#[test]
fn recipient_policy_refuses_the_documented_recipients_only() {
    let example = Example::start("recipient_policy", &[ANY_PORT]);
    run(async {
        for profile in [Profile::postfix(), Profile::sendmail()] {
            let mut client = example
                .session(profile.clone(), Family::Inet, "192.0.2.1")
                .await;
            let negotiated = client.negotiated().expect("negotiated").clone();
            assert!(!negotiated.sends(CommandKind::Header), "{negotiated:?}");
            assert!(!negotiated.sends(CommandKind::Body), "{negotiated:?}");
            let envelope = Envelope::new(
                "<alice@example.com>",
                &[
                    "<bob@example.net>",
                    "<nobody@example.net>",
                    "<Full@example.org>",
                    "<carol@example.net>",
                    "<NOBODY@example.com>",
                ],
            );
            let outcome = client.send_message(&envelope, PLAIN).await.unwrap();
            let replies: Vec<&Reply> = outcome.rcpts.iter().map(|(_, reply)| reply).collect();
            assert_eq!(replies[0], &Reply::Continue);
            assert_reply_code(replies[1], "550 5.1.1 no such user");
            assert_reply_code(replies[2], "452 4.2.2 mailbox full");
            assert_eq!(replies[3], &Reply::Continue);
            assert_reply_code(replies[4], "550 5.1.1 no such user");
            assert!(outcome.verdict.is_continue(), "{:?}", outcome.verdict);
            assert!(outcome.modifications.is_empty());
            let delivered = outcome.delivered.expect("delivered to the others");
            assert_eq!(
                delivered.recipient_addresses(),
                ["<bob@example.net>", "<carol@example.net>"]
            );

            // No recipient left: nothing is delivered, and the filter says nothing more.
            let envelope = Envelope::new("<alice@example.com>", &["<nobody@example.net>"]);
            let outcome = client.send_message(&envelope, PLAIN).await.unwrap();
            assert_reply_code(&outcome.verdict, "550 5.1.1");
            assert!(outcome.delivered.is_none());
            assert_eq!(outcome.data, None);

            // The connection goes on.
            let outcome = client.send_message(&self::envelope(), PLAIN).await.unwrap();
            assert!(outcome.delivered.is_some(), "{outcome:?}");
            client.quit().await.expect("QUIT");
        }
    });
}

// ===== disclaimer =====

const DISCLAIMER: &[u8] = b"-- \r\nThis message was checked by async-milter.\r\n";

#[test]
fn disclaimer_appends_its_text_to_plain_text_only() {
    let example = Example::start("disclaimer", &[ANY_PORT]);
    run(async {
        for profile in [Profile::postfix(), Profile::sendmail()] {
            // Small chunks, so the body arrives (and is rewritten) in many pieces.
            let profile = profile.with_body_chunk_size(7);
            let mut client = example.session(profile, Family::Inet, "192.0.2.1").await;
            let body = "Line one of the body.\nLine two, a little longer than the first.\n";
            let mut want = body.replace('\n', "\r\n").into_bytes();
            want.extend_from_slice(DISCLAIMER);
            let cases: [(&str, &[u8]); 3] = [
                ("no Content-Type", b""),
                ("text/plain", b"Content-Type: text/plain; charset=utf-8\n"),
                ("TEXT/PLAIN folded", b"Content-Type:\n TEXT/PLAIN\n"),
            ];
            for (case, content_type) in cases {
                let mut message = b"From: <alice@example.com>\nSubject: hi\n".to_vec();
                message.extend_from_slice(content_type);
                message.extend_from_slice(b"\n");
                message.extend_from_slice(body.as_bytes());
                let outcome = client.send_message(&envelope(), &message).await.unwrap();
                assert_eq!(outcome.verdict, Reply::Accept, "{case}");
                let delivered = outcome.delivered.expect("delivered");
                assert_eq!(
                    delivered.body.escape_ascii().to_string(),
                    want.escape_ascii().to_string(),
                    "{case}"
                );
            }

            let multipart = b"From: <alice@example.com>\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\nx\n--b--\n";
            let outcome = client.send_message(&envelope(), multipart).await.unwrap();
            assert!(outcome.verdict.is_continue(), "{:?}", outcome.verdict);
            assert!(outcome.modifications.is_empty());
            let delivered = outcome.delivered.expect("delivered");
            assert_eq!(delivered.body, b"--b\r\n\r\nx\r\n--b--\r\n");
            client.quit().await.expect("QUIT");
        }
    });
}

// ===== inspect =====

#[test]
fn inspect_accepts_and_logs_every_stage() {
    let mut example = Example::start("inspect", &[ANY_PORT]);
    run(async {
        let mut client = example
            .session(Profile::postfix(), Family::Inet, "192.0.2.1")
            .await;
        let envelope = Envelope::new(
            "<alice@example.com>",
            &["<bob@example.net>", "<carol@example.net>"],
        );
        let outcome = client.send_message(&envelope, PLAIN).await.unwrap();
        assert_eq!(outcome.verdict, Reply::Accept);
        assert!(outcome.modifications.is_empty());
        assert_eq!(
            outcome.delivered.expect("delivered").recipient_addresses(),
            ["<bob@example.net>", "<carol@example.net>"]
        );
        client.quit().await.expect("QUIT");
    });
    for (what, text) in [
        (
            "the client",
            "client client.example.com [192.0.2.1]:50000 (Inet)",
        ),
        ("a CONNECT macro", "macro Connect j=mx.example.net"),
        ("HELO", "helo client.example.com"),
        ("MAIL", "mail from <alice@example.com> []"),
        (
            "the MAIL macros",
            "macro Mail {mail_addr}=alice@example.com",
        ),
        ("the first RCPT", "rcpt to <bob@example.net> []"),
        ("the second RCPT", "rcpt to <carol@example.net> []"),
        ("a header", "header Subject: hello"),
        ("the body", "body: 11 bytes in 1 chunks"),
        ("end of message", "end of message, queue id 4XBQ1F2K3Lz9"),
    ] {
        example.wait_for_line(what, |line| line.contains(text));
    }
}

// ===== conformance =====

/// The message `scripts/e2e.d` sends, in short.
fn conformance_message(subject: &str) -> Vec<u8> {
    format!(
        "From: <sender@example.com>\nTo: <keep@example.com>\nSubject: {subject}\n\
         X-Conformance-Run: one\nX-Conformance-Run: Two, Mixed Case\n\n\
         Hello World,\nmixed Case: abc\n"
    )
    .into_bytes()
}

#[test]
fn conformance_refuses_and_edits_as_the_end_to_end_suite_expects() {
    check_conformance("conformance", &[ANY_PORT]);
}

#[test]
fn conformance_hooks_behaves_exactly_as_conformance() {
    check_conformance("conformance_hooks", &[ANY_PORT]);
}

/// The same behaviour from three filters served as one list (policy as hooks, header edits
/// and content edits as session filters): the union of their needs is what `conformance`
/// negotiates, and every answer and edit comes out the same.
#[test]
fn conformance_chain_behaves_exactly_as_conformance() {
    check_conformance("conformance_chain", &[ANY_PORT]);
}

/// `--runtime tokio` (a multi-thread runtime, as the end-to-end suite runs it too) and
/// `--runtime smol` serve the same filter.
#[test]
fn conformance_behaves_the_same_on_tokio_and_smol() {
    check_conformance("conformance", &[ANY_PORT, "--runtime", "tokio"]);
    check_conformance("conformance", &["--runtime=smol", ANY_PORT]);
}

#[test]
fn conformance_with_an_unknown_runtime_prints_usage_and_fails() {
    let output = Command::new(example_path("conformance"))
        .args([ANY_PORT, "--runtime", "glommio"])
        .stdin(Stdio::null())
        .output()
        .expect("running conformance");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("async-std|tokio|smol"), "{stderr}");
}

/// What the end-to-end suite checks, for `conformance` and for the same filter written
/// another way; the negotiation is checked too, so the two ask the MTA for the same things.
fn check_conformance(name: &'static str, args: &[&str]) {
    let example = Example::start(name, args);
    run(async {
        for profile in [Profile::postfix(), Profile::sendmail()] {
            let mut client = example
                .session(profile.clone(), Family::Inet, "127.0.0.1")
                .await;
            let negotiated = client.negotiated().expect("negotiated").clone();
            assert_eq!(
                negotiated.protocol,
                ProtocolFlags::NO_UNKNOWN
                    | ProtocolFlags::NO_DATA
                    | ProtocolFlags::NR_CONNECT
                    | ProtocolFlags::NR_HELO
                    | ProtocolFlags::NR_HEADER
                    | ProtocolFlags::NR_EOH
                    | ProtocolFlags::NR_BODY,
                "{name}"
            );
            assert_eq!(
                negotiated.actions,
                Actions::ADD_HEADERS
                    | Actions::CHANGE_HEADERS
                    | Actions::CHANGE_BODY
                    | Actions::ADD_RCPT
                    | Actions::DELETE_RCPT
                    | Actions::QUARANTINE
                    | Actions::CHANGE_FROM,
                "{name}"
            );

            let refused = Envelope::new("<Reject@Example.com>", &["<keep@example.com>"]);
            let outcome = client
                .send_message(&refused, &conformance_message("hi"))
                .await
                .unwrap();
            assert_eq!(outcome.mail, Reply::ReplyCode("550 5.7.1 go away".into()));
            assert!(outcome.delivered.is_none());

            let envelope = Envelope::new(
                "<sender@example.com>",
                &[
                    "<keep@example.com>",
                    "<tempfail@example.com>",
                    "<removeme@example.com>",
                ],
            );
            let outcome = client
                .send_message(&envelope, &conformance_message("Hello"))
                .await
                .unwrap();
            let replies: Vec<&Reply> = outcome.rcpts.iter().map(|(_, reply)| reply).collect();
            assert_eq!(
                replies,
                [&Reply::Continue, &Reply::Tempfail, &Reply::Continue]
            );
            assert_eq!(outcome.verdict, Reply::Accept);
            assert_eq!(outcome.quarantined, None);
            assert!(
                !outcome.modifications.iter().any(|m| matches!(
                    m,
                    Modification::ChangeHeader { name, .. } if name.eq_ignore_ascii_case("X-Conformance-Run")
                )),
                "{:?}",
                outcome.modifications
            );
            assert_eq!(delivered_headers(&outcome, "X-Conformance"), ["seen"]);
            assert_eq!(
                delivered_headers(&outcome, "Subject"),
                ["[conformance] Hello"]
            );
            assert_eq!(
                delivered_headers(&outcome, "X-Conformance-Run"),
                ["one", "Two, Mixed Case"]
            );
            let delivered = outcome.delivered.as_ref().expect("delivered");
            assert_eq!(delivered.sender, "<changed-sender@example.com>");
            assert_eq!(
                delivered.recipient_addresses(),
                ["<keep@example.com>", "<added@example.com>"]
            );
            assert_eq!(delivered.body, b"HELLO WORLD,\r\nMIXED CASE: ABC\r\n");

            let envelope = Envelope::new("<sender@example.com>", &["<keep@example.com>"]);
            let outcome = client
                .send_message(&envelope, &conformance_message("please QuArAnTiNe me"))
                .await
                .unwrap();
            assert_eq!(outcome.verdict, Reply::Accept);
            assert_eq!(
                outcome.quarantined.as_deref(),
                Some("conformance quarantine")
            );
            assert_eq!(
                delivered_headers(&outcome, "Subject"),
                ["[conformance] please QuArAnTiNe me"]
            );
            client.quit().await.expect("QUIT");
        }
    });
}

// ===== hooks_milter =====

#[test]
fn hooks_milter_logs_each_event_strips_internal_headers_and_archives() {
    let mut example = Example::start("hooks_milter", &[ANY_PORT]);
    run(async {
        for profile in [Profile::postfix(), Profile::sendmail()] {
            let mut client = example
                .session(profile.clone(), Family::Inet, "192.0.2.7")
                .await;
            let negotiated = client.negotiated().expect("negotiated").clone();
            assert_eq!(
                negotiated.protocol,
                ProtocolFlags::NR_CONNECT
                    | ProtocolFlags::NR_HELO
                    | ProtocolFlags::NR_MAIL
                    | ProtocolFlags::NR_RCPT
                    | ProtocolFlags::NR_DATA
                    | ProtocolFlags::NR_HEADER
                    | ProtocolFlags::NR_EOH
                    | ProtocolFlags::NR_BODY
                    | ProtocolFlags::NR_UNKNOWN
            );
            assert_eq!(client.unknown("XFOO bar").await.unwrap(), Reply::NoReply);
            for n in 1..=2 {
                let envelope = Envelope::new(
                    "<alice@example.com>",
                    &["<bob@example.net>", "<carol@example.net>"],
                );
                let outcome = client
                    .send_message(
                        &envelope,
                        b"From: <alice@example.com>\nX-Internal: secret\nSubject: hi\n\
                          X-Internal: more\n\nHello\n",
                    )
                    .await
                    .unwrap();
                assert_eq!(outcome.verdict, Reply::Continue);
                let delivered = outcome.delivered.as_ref().expect("delivered");
                assert_eq!(delivered.header("X-Internal"), None, "{outcome:?}");
                assert_eq!(delivered.header("Subject"), Some(" hi"));
                assert_eq!(
                    delivered_headers(&outcome, "X-Hooks-Milter"),
                    [format!("message {n}, 2 recipients, 7 body bytes")]
                );
                assert_eq!(
                    delivered.recipient_addresses(),
                    [
                        "<bob@example.net>",
                        "<carol@example.net>",
                        "<archive@example.com>"
                    ]
                );
            }
            client.mail("<dave@example.com>", &[]).await.unwrap();
            client.quit().await.expect("QUIT");
            example.wait_for_line("the close hook's line", |line| {
                line.contains("connection closed after 3 messages")
            });
            for event in [
                "connect from client.example.com [192.0.2.7]",
                "unknown command XFOO",
                "helo client.example.com",
                "mail from <alice@example.com>",
                "rcpt to <carol@example.net>",
                "data",
                "header X-Internal: secret",
                "end of headers",
                "body chunk of 7 bytes",
                "end of message",
                "message aborted",
            ] {
                example.wait_for_line(event, |line| line.contains(event));
            }
            example.seen.clear();
        }
    });
    assert!(example.terminate().success());
}

// ===== chain =====

/// FNV-1a, 64 bits, as `examples/chain.rs` documents its `X-Body-Checksum`.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The union of the three filters of `chain`: RCPT answered (the policy), CONNECT (the
/// tagger), headers and body (tagger, checksum) sent without waiting for a reply; HELO, MAIL
/// and DATA negotiated away; header edits only.
fn check_chain_negotiation(client: &MilterClient<TcpStream>, address: &str) {
    let negotiated = client.negotiated().expect("negotiated");
    for command in [
        CommandKind::Connect,
        CommandKind::Rcpt,
        CommandKind::Header,
        CommandKind::EndOfHeaders,
        CommandKind::Body,
    ] {
        assert!(negotiated.sends(command), "{command:?}: {negotiated:?}");
    }
    for command in [CommandKind::Helo, CommandKind::Mail, CommandKind::Data] {
        assert!(!negotiated.sends(command), "{command:?}: {negotiated:?}");
    }
    assert!(
        !negotiated.protocol.contains(ProtocolFlags::NR_RCPT),
        "{negotiated:?}"
    );
    for nr in [
        ProtocolFlags::NR_CONNECT,
        ProtocolFlags::NR_HEADER,
        ProtocolFlags::NR_EOH,
        ProtocolFlags::NR_BODY,
    ] {
        assert!(negotiated.protocol.contains(nr), "{nr:?}: {negotiated:?}");
    }
    assert_eq!(
        negotiated.actions,
        Actions::ADD_HEADERS | Actions::CHANGE_HEADERS,
        "{address}"
    );
}

#[test]
fn chain_refuses_blocked_recipients_tags_external_mail_and_adds_a_body_checksum() {
    let mut example = Example::start("chain", &[ANY_PORT]);
    run(async {
        for profile in [Profile::postfix(), Profile::sendmail()] {
            // Small chunks: the checksum is computed over the body as it streams.
            let profile = profile.with_body_chunk_size(5);
            for (address, external) in [("203.0.113.7", true), ("127.0.0.1", false)] {
                let mut client = example
                    .session(profile.clone(), Family::Inet, address)
                    .await;
                check_chain_negotiation(&client, address);

                for message in 1..=2 {
                    let envelope = Envelope::new(
                        "<alice@example.com>",
                        &[
                            "<bob@example.net>",
                            "<eve@Blocked.Example>",
                            "<carol@example.net>",
                            "<mallory@mx.blocked.example>",
                            "<dave@notblocked.example>",
                        ],
                    );
                    let outcome = client.send_message(&envelope, PLAIN).await.unwrap();
                    let what = format!("{address}, message {message}");
                    let replies: Vec<&Reply> =
                        outcome.rcpts.iter().map(|(_, reply)| reply).collect();
                    assert_eq!(replies[0], &Reply::Continue, "{what}");
                    assert_reply_code(replies[1], "550 5.7.1 recipient domain blocked");
                    assert_eq!(replies[2], &Reply::Continue, "{what}");
                    assert_reply_code(replies[3], "550 5.7.1 recipient domain blocked");
                    assert_eq!(replies[4], &Reply::Continue, "{what}");
                    // The policy ends with continue, the others accept: merged, continue
                    // (the message goes through with every filter's edits).
                    assert!(
                        outcome.verdict.is_continue(),
                        "{what}: {:?}",
                        outcome.verdict
                    );
                    assert_eq!(
                        delivered_headers(&outcome, "Subject"),
                        [if external {
                            "[EXTERNAL] hello"
                        } else {
                            "hello"
                        }],
                        "{what}"
                    );
                    let delivered = outcome.delivered.as_ref().expect("delivered");
                    assert_eq!(delivered.body, b"Hello Bob\r\n", "{what}: body untouched");
                    assert_eq!(
                        delivered_headers(&outcome, "X-Body-Checksum"),
                        [format!("fnv1a-64 {:016x}", fnv1a64(b"Hello Bob\r\n"))],
                        "{what}"
                    );
                    assert_eq!(
                        delivered.recipient_addresses(),
                        [
                            "<bob@example.net>",
                            "<carol@example.net>",
                            "<dave@notblocked.example>"
                        ],
                        "{what}"
                    );
                }

                // Only blocked recipients: nothing is delivered, and the connection goes on.
                let envelope = Envelope::new("<alice@example.com>", &["<eve@blocked.example>"]);
                let outcome = client.send_message(&envelope, PLAIN).await.unwrap();
                assert!(outcome.delivered.is_none(), "{outcome:?}");
                let outcome = client.send_message(&self::envelope(), PLAIN).await.unwrap();
                assert!(outcome.delivered.is_some(), "{outcome:?}");
                client.quit().await.expect("QUIT");
            }
        }
    });
    // The policy's close hook: per connection, 2 + 2 + 1 recipients refused.
    example.wait_for_line("the policy's count at close", |line| {
        line.contains("recipients: 5 recipient(s) in blocked.example refused on this connection")
    });
}

// ===== e2e_scenarios =====

#[test]
fn e2e_scenarios_without_a_scenario_prints_usage_and_fails() {
    for args in [&[][..], &["no-such-scenario", ANY_PORT][..]] {
        let output = Command::new(example_path("e2e_scenarios"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running e2e_scenarios");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("insert-headers"), "{args:?}: {stderr}");
    }
}

/// INSHEADER under Sendmail: the kit's Sendmail model has no hidden headers, but real
/// Sendmail counts the nine header templates of its `sendmail.cf` ahead of the message's
/// headers, and the library numbers for that (just above the filter's header `p` is
/// `p + 8`; NOTES.md "Header positions", checked on the real MTA by `scripts/e2e`). So where
/// inserted headers land is checked with the Postfix profile, and the Sendmail indexes are
/// checked as sent.
const SENDMAIL_ABOVE_FIRST: u32 = 8;

/// INSHEADER index that appends on both MTAs.
const END_INDEX: u32 = 0x7fff_fffe;

fn inserted(index: u32, name: &str, value: &str) -> Modification {
    Modification::InsertHeader {
        index,
        name: name.into(),
        value: value.into(),
    }
}

#[test]
fn e2e_insert_headers_places_each_header() {
    let example = Example::start("e2e_scenarios", &["insert-headers", ANY_PORT]);
    run(async {
        let mut client = example
            .session(Profile::postfix(), Family::Inet, "127.0.0.1")
            .await;
        let outcome = client.send_message(&envelope(), PLAIN).await.unwrap();
        assert_eq!(outcome.verdict, Reply::Accept);
        assert_eq!(
            delivered_names(&outcome),
            [
                "X-Top",
                "Received",
                "From",
                "To",
                "X-Before-Subject",
                "Subject",
                "X-After-Subject",
                "X-End"
            ],
            "{:?}",
            outcome.modifications
        );
        for name in ["X-Top", "X-Before-Subject", "X-After-Subject", "X-End"] {
            assert_eq!(delivered_headers(&outcome, name), ["1"], "{name}");
        }
        client.quit().await.expect("QUIT");

        let mut client = example
            .session(Profile::sendmail(), Family::Inet, "127.0.0.1")
            .await;
        let outcome = client.send_message(&envelope(), PLAIN).await.unwrap();
        assert_eq!(outcome.verdict, Reply::Accept);
        let mut modifications = outcome.modifications.clone();
        modifications.sort_by_key(|m| match m {
            Modification::InsertHeader { index, .. } => *index,
            _ => u32::MAX,
        });
        // Subject is the filter's third header (position 2).
        assert_eq!(
            modifications,
            [
                inserted(0, "X-Top", "1"),
                inserted(2 + SENDMAIL_ABOVE_FIRST, "X-Before-Subject", "1"),
                inserted(2 + SENDMAIL_ABOVE_FIRST + 1, "X-After-Subject", "1"),
                inserted(END_INDEX, "X-End", "1"),
            ]
        );
        client.quit().await.expect("QUIT");
    });
}

#[test]
fn e2e_second_header_changes_and_deletes_the_right_instances() {
    let example = Example::start("e2e_scenarios", &["second-header", ANY_PORT]);
    let message = b"From: <alice@example.com>\nX-Dup: a\nX-Del: a\nX-Dup: b\nX-Del: b\n\
X-Multi: 1\nX-Multi: 2\nX-Multi: 3\nX-Mark: m\nSubject: s\n\nbody\n";
    run(async {
        for profile in [Profile::postfix(), Profile::sendmail()] {
            let kind = profile.kind;
            let mut client = example.session(profile, Family::Inet, "127.0.0.1").await;
            let outcome = client.send_message(&envelope(), message).await.unwrap();
            assert_eq!(outcome.verdict, Reply::Accept, "{kind:?}");
            let values = |name| delivered_headers(&outcome, name);
            assert_eq!(values("X-Dup"), ["a", "changed"], "{kind:?}");
            assert_eq!(values("X-Del"), ["a"], "{kind:?}");
            assert_eq!(values("X-Multi"), ["2", "changed"], "{kind:?}");
            if kind == MtaKind::Postfix {
                assert_eq!(values("X-Mark"), ["inserted", "changed"]);
            } else {
                // X-Mark is the filter's ninth header (position 8); once the new one is above
                // it, the original is the second X-Mark.
                for modification in [
                    inserted(8 + SENDMAIL_ABOVE_FIRST, "X-Mark", "inserted"),
                    Modification::ChangeHeader {
                        index: 2,
                        name: "X-Mark".into(),
                        value: "changed".into(),
                    },
                ] {
                    assert!(
                        outcome.modifications.contains(&modification),
                        "{modification:?} missing: {:?}",
                        outcome.modifications
                    );
                }
            }
            client.quit().await.expect("QUIT");
        }
    });
}

#[test]
fn e2e_two_filters_later_filter_decides_a_header_both_touch() {
    let example = Example::start("e2e_scenarios", &["two-filters", ANY_PORT]);
    let message = b"From: <alice@example.com>\nX-Same: orig\nX-Gone: orig\nX-Kept: orig\n\
Subject: s\n\nbody\n";
    run(async {
        for profile in [Profile::postfix(), Profile::sendmail()] {
            let kind = profile.kind;
            let mut client = example.session(profile, Family::Inet, "127.0.0.1").await;
            let outcome = client.send_message(&envelope(), message).await.unwrap();
            assert_eq!(outcome.verdict, Reply::Accept, "{kind:?}");
            let values = |name| delivered_headers(&outcome, name);
            assert_eq!(values("X-Same"), ["second"], "{kind:?}");
            assert_eq!(values("X-Gone"), ["second"], "{kind:?}");
            assert!(values("X-Kept").is_empty(), "{kind:?}");
            assert_eq!(values("X-From-First"), ["1"], "{kind:?}");
            assert_eq!(values("X-From-Second"), ["1"], "{kind:?}");
            client.quit().await.expect("QUIT");
        }
    });
}

#[test]
fn e2e_folded_nonascii_echoes_what_arrived() {
    let example = Example::start("e2e_scenarios", &["folded-nonascii", ANY_PORT]);
    let message =
        "From: <alice@example.com>\nX-Folded: first\n\tsecond\nX-Utf8: Grüße\nSubject: s\n\nbody\n";
    run(async {
        let mut client = example
            .session(Profile::postfix(), Family::Inet, "127.0.0.1")
            .await;
        let outcome = client
            .send_message(&envelope(), message.as_bytes())
            .await
            .unwrap();
        assert_eq!(outcome.verdict, Reply::Accept);
        let values = |name| delivered_headers(&outcome, name);
        assert_eq!(values("X-Seen-Folded-Escaped"), ["first\\n\\tsecond"]);
        assert_eq!(values("X-Seen-Utf8"), ["Grüße"]);
        assert_eq!(values("X-Seen-Utf8-Escaped"), ["Gr\\xc3\\xbc\\xc3\\x9fe"]);
        assert_eq!(values("X-Seen-Utf8-Valid"), ["yes"]);
        assert_eq!(values("X-Own-Utf8"), ["Grüße aus Köln ☃"]);
        let own_folded = values("X-Own-Folded");
        assert_eq!(own_folded.len(), 1);
        assert!(
            own_folded[0].starts_with("own first line")
                && own_folded[0].ends_with("own second line"),
            "{own_folded:?}"
        );
        client.quit().await.expect("QUIT");
    });
}

#[test]
fn e2e_multiline_reply_refuses_with_two_lines() {
    let example = Example::start("e2e_scenarios", &["multiline-reply", ANY_PORT]);
    let want = Reply::ReplyCode("550-5.7.1 first line 100%%\r\n550 5.7.1 second line".into());
    run(async {
        let mut client = example
            .session(Profile::postfix(), Family::Inet, "127.0.0.1")
            .await;
        let at_mail = Envelope::new("<multiline-mail@example.com>", &["<bob@example.net>"]);
        let outcome = client.send_message(&at_mail, PLAIN).await.unwrap();
        assert_eq!(outcome.mail, want);
        assert!(outcome.delivered.is_none());

        let outcome = client.send_message(&envelope(), PLAIN).await.unwrap();
        assert_eq!(outcome.mail, Reply::Continue);
        assert_eq!(outcome.verdict, want);
        assert!(outcome.end_of_message.is_some());
        assert!(outcome.delivered.is_none());
        client.quit().await.expect("QUIT");
    });
}

#[test]
fn e2e_connect_reject_refuses_the_connection() {
    let example = Example::start("e2e_scenarios", &["connect-reject", ANY_PORT]);
    run(async {
        for profile in [Profile::postfix(), Profile::sendmail()] {
            let mut client = example.client(profile).await;
            client.negotiate().await.expect("negotiation");
            let reply = client
                .connect("client.example.com", Family::Inet, 50000, "192.0.2.1")
                .await
                .expect("CONNECT");
            assert_eq!(
                reply,
                Reply::ReplyCode("554 5.7.1 rejected at connect by e2e filter".into())
            );
            assert!(client.is_closed());
            assert!(matches!(
                client.helo("client.example.com").await,
                Err(ClientError::SessionClosed)
            ));
        }
    });
}

#[test]
fn e2e_panic_tempfails_that_message_and_goes_on() {
    let example = Example::start("e2e_scenarios", &["panic", ANY_PORT]);
    run(async {
        let mut client = example
            .session(Profile::postfix(), Family::Inet, "127.0.0.1")
            .await;
        let panics = b"From: <alice@example.com>\nSubject: panic\n\nboom\n";
        let outcome = client.send_message(&envelope(), panics).await.unwrap();
        assert_eq!(outcome.verdict, Reply::Tempfail);
        assert!(outcome.delivered.is_none());
        let outcome = client.send_message(&envelope(), PLAIN).await.unwrap();
        assert_eq!(outcome.verdict, Reply::Accept);
        client.quit().await.expect("QUIT");
    });
}

#[test]
fn e2e_slow_holds_end_of_message() {
    let mut example = Example::start("e2e_scenarios", &["slow", ANY_PORT]);
    run(async {
        let mut client = example
            .session(Profile::postfix(), Family::Inet, "127.0.0.1")
            .await;
        let outcome = client.send_message(&envelope(), PLAIN).await.unwrap();
        assert_eq!(outcome.verdict, Reply::Accept);
        // The filter sleeps 30 s; a second is plenty to see it did not answer.
        client.set_timeout(Duration::from_secs(1));
        let slow = b"From: <alice@example.com>\nSubject: slow\n\nzzz\n";
        let result = client.send_message(&envelope(), slow).await;
        assert!(
            matches!(
                result,
                Err(ClientError::Timeout {
                    command: CommandKind::EndOfMessage,
                    ..
                })
            ),
            "{result:?}"
        );
    });
    example.wait_for_line("the slow log line", |line| {
        line.contains("slow: sleeping at end of message")
    });
}

// ===== decode_session =====

#[test]
fn decode_session_prints_both_directions_of_the_worked_example() {
    let output = Command::new(example_path("decode_session"))
        .stdin(Stdio::null())
        .output()
        .expect("running decode_session");
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).expect("UTF-8 output");
    let kinds = |prefix: &str| -> Vec<String> {
        stdout
            .lines()
            .filter_map(|line| line.strip_prefix(prefix))
            .map(|rest| {
                rest.trim_start()
                    .split(|c: char| !c.is_ascii_alphanumeric())
                    .next()
                    .unwrap_or("")
                    .to_owned()
            })
            .collect()
    };
    assert_eq!(
        kinds("MTA    -> filter"),
        [
            "OptNeg",
            "Macro",
            "Connect",
            "Helo",
            "Mail",
            "Rcpt",
            "Header",
            "EndOfHeaders",
            "Body",
            "EndOfMessage",
            "Quit"
        ],
        "{stdout}"
    );
    let mut want = vec!["OptNeg"];
    want.extend(["Continue"; 7]);
    want.extend(["AddHeader", "Accept"]);
    assert_eq!(kinds("filter -> MTA"), want, "{stdout}");
    for text in [
        "client.example.com",
        "<alice@example.com>",
        "BODY=8BITMIME",
        "X-Filtered",
    ] {
        assert!(stdout.contains(text), "{text} missing from:\n{stdout}");
    }
}

// ===== bench, bench_floor, bench_miltr =====

/// One message through a benchmark server: accepted with `X-Bench: 1`. With `no_reply`
/// nothing before end of message is answered.
async fn bench_smoke(example: &Example, no_reply: bool) {
    bench_smoke_verdict(example, no_reply, Reply::Accept).await;
}

/// [`bench_smoke`] with the end-of-message verdict the server gives.
async fn bench_smoke_verdict(example: &Example, no_reply: bool, verdict: Reply) {
    for profile in [Profile::postfix(), Profile::sendmail()] {
        let mut client = example.session(profile, Family::Inet, "127.0.0.1").await;
        let outcome = client.send_message(&envelope(), PLAIN).await.unwrap();
        assert_eq!(outcome.verdict, verdict);
        // One header added (by ADDHEADER, or by INSHEADER at the end on Sendmail).
        assert_eq!(outcome.modifications.len(), 1, "{outcome:?}");
        assert_eq!(delivered_headers(&outcome, "X-Bench"), ["1"]);
        assert_eq!(
            delivered_names(&outcome).last().map(String::as_str),
            Some("X-Bench")
        );
        let unanswered = if no_reply {
            Reply::NoReply
        } else {
            Reply::Continue
        };
        assert!(
            outcome.headers.iter().all(|reply| *reply == unanswered),
            "{outcome:?}"
        );
        assert_eq!(outcome.body, std::slice::from_ref(&unanswered));
        assert_eq!(outcome.mail, unanswered, "{outcome:?}");
        assert_eq!(outcome.data, Some(unanswered.clone()), "{outcome:?}");
        assert_eq!(
            outcome.end_of_headers,
            Some(unanswered.clone()),
            "{outcome:?}"
        );
        assert!(
            outcome.rcpts.iter().all(|(_, reply)| *reply == unanswered),
            "{outcome:?}"
        );
        client.quit().await.expect("QUIT");
    }
}

#[test]
fn bench_accepts_with_its_header() {
    let plain = Example::start("bench", &[ANY_PORT]);
    let no_reply = Example::start("bench", &[ANY_PORT, "--no-reply"]);
    let tokio = Example::start("bench", &[ANY_PORT, "--tokio"]);
    let smol = Example::start("bench", &[ANY_PORT, "--smol", "--no-reply"]);
    run(async {
        bench_smoke(&plain, false).await;
        bench_smoke(&no_reply, true).await;
        bench_smoke(&tokio, false).await;
        bench_smoke(&smol, true).await;
    });
}

/// `--delay-ms` holds the answer at end of message for at least that long (on the runtime's
/// timer) and the message is still accepted with its header, on each runtime.
#[test]
fn bench_delay_holds_end_of_message() {
    let delay = Duration::from_millis(200);
    let ms = delay.as_millis().to_string();
    let servers = [
        Example::start("bench", &[ANY_PORT, "--delay-ms", &ms]),
        Example::start("bench", &[ANY_PORT, "--delay-ms", &ms, "--tokio"]),
        Example::start("bench", &[ANY_PORT, "--delay-ms", &ms, "--smol"]),
    ];
    run(async {
        for server in &servers {
            let mut client = server
                .session(Profile::postfix(), Family::Inet, "127.0.0.1")
                .await;
            let started = Instant::now();
            let outcome = client.send_message(&envelope(), PLAIN).await.unwrap();
            let took = started.elapsed();
            assert_eq!(outcome.verdict, Reply::Accept);
            assert_eq!(delivered_headers(&outcome, "X-Bench"), ["1"]);
            assert!(took >= delay, "answered after {took:?}, before {delay:?}");
            client.quit().await.expect("QUIT");
        }
    });
}

#[test]
fn bench_floor_accepts_with_its_header() {
    let plain = Example::start("bench_floor", &[ANY_PORT]);
    let no_reply = Example::start("bench_floor", &[ANY_PORT, "--no-reply"]);
    let async_std = Example::start("bench_floor", &[ANY_PORT, "--async-std"]);
    run(async {
        bench_smoke(&plain, false).await;
        bench_smoke(&no_reply, true).await;
        bench_smoke(&async_std, false).await;
    });
}

#[test]
fn bench_miltr_tags_and_continues() {
    // miltr has no ACCEPT: its end-of-message answer is CONTINUE, which accepts as well.
    let miltr = Example::start("bench_miltr", &[ANY_PORT]);
    run(bench_smoke_verdict(&miltr, false, Reply::Continue));
}

// ===== connection_state =====

#[test]
fn connection_state_tempfails_from_the_fourth_message_of_a_connection() {
    let mut example = Example::start("connection_state", &[ANY_PORT]);
    run(async {
        for profile in [Profile::postfix(), Profile::sendmail()] {
            let negotiated_events = {
                let mut client = example.client(profile.clone()).await;
                let negotiated = client.negotiate().await.expect("negotiation");
                client.quit().await.expect("QUIT");
                negotiated
            };
            assert!(negotiated_events.actions.is_empty());
            assert!(negotiated_events.sends(CommandKind::Mail));
            assert!(negotiated_events.expects_reply(CommandKind::Mail));
            for command in [CommandKind::Rcpt, CommandKind::Header, CommandKind::Body] {
                assert!(!negotiated_events.sends(command), "{command:?} negotiated");
            }

            // Twice: the count starts again on a new connection.
            for connection in 1..=2 {
                let mut client = example
                    .session(profile.clone(), Family::Inet, "192.0.2.1")
                    .await;
                for message in 1..=3 {
                    let outcome = client.send_message(&envelope(), PLAIN).await.unwrap();
                    assert!(
                        outcome.verdict.is_continue() && outcome.delivered.is_some(),
                        "connection {connection}, message {message}: {outcome:?}"
                    );
                }
                for message in 4..=5 {
                    let outcome = client.send_message(&envelope(), PLAIN).await.unwrap();
                    let refusal = "451 4.7.1 too many messages in one connection";
                    assert_eq!(outcome.mail, Reply::ReplyCode(refusal.into()));
                    assert_eq!(
                        outcome.verdict,
                        Reply::ReplyCode(refusal.into()),
                        "connection {connection}, message {message}"
                    );
                    assert!(outcome.delivered.is_none());
                }
                client.quit().await.expect("QUIT");
            }
        }
    });
    // The state is dropped when its connection closes.
    example.wait_for_line("the tally of a closed connection", |line| {
        line.contains("closed: 3 messages passed, 2 refused")
    });
    assert!(example.terminate().success());
}

// ===== attachment_policy =====

/// A `multipart/mixed` message with a short text part and one base64 attachment whose MIME
/// headers are `part_headers` (the body `MZ…` of a DOS executable either way).
fn with_attachment(part_headers: &str) -> Vec<u8> {
    format!(
        "From: <alice@example.com>\nTo: <bob@example.net>\nSubject: your invoice\n\
MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b1\"\n\n\
--b1\nContent-Type: text/plain\n\nPlease find it attached.\n\
--b1\n{part_headers}Content-Transfer-Encoding: base64\n\nTVqQAAMAAAAEAAAA//8AALgAAAA=\n\
--b1--\n"
    )
    .into_bytes()
}

fn refused(what: &str) -> Reply {
    Reply::ReplyCode(format!(
        "550 5.7.1 {what} refused: executable content is not accepted here"
    ))
}

#[test]
fn attachment_policy_refuses_executables_by_name_and_by_type() {
    let example = Example::start("attachment_policy", &[ANY_PORT]);
    let pdf = with_attachment(
        "Content-Type: application/pdf; name=\"invoice.pdf\"\n\
Content-Disposition: attachment; filename=\"invoice.pdf\"\n",
    );
    let cases: [(&str, Vec<u8>, Option<&str>); 7] = [
        ("plain text", PLAIN.to_vec(), None),
        ("a PDF", pdf, None),
        (
            "invoice.exe",
            with_attachment(
                "Content-Type: application/octet-stream; name=\"invoice.exe\"\n\
Content-Disposition: attachment; filename=\"invoice.exe\"\n",
            ),
            Some("attachment \"invoice.exe\""),
        ),
        (
            "a name in Content-Type only, upper case, trailing dot",
            with_attachment("Content-Type: application/octet-stream; name=\"RUN.Scr.\"\n"),
            Some("attachment \"RUN.Scr.\""),
        ),
        (
            "the content type only",
            with_attachment("Content-Type: application/x-msdownload\n"),
            Some("attachment of type application/x-msdownload"),
        ),
        (
            "a CR/LF in the name (RFC 2231)",
            with_attachment(
                "Content-Type: application/octet-stream\n\
Content-Disposition: attachment; filename*=utf-8''a%0D%0A250%202.0.0%20Ok%0D%0A.js\n",
            ),
            Some("attachment \"a  250 2.0.0 Ok  .js\""),
        ),
        (
            "an executable in a forwarded message",
            {
                let inner = String::from_utf8(with_attachment(
                    "Content-Type: application/x-dosexec; name=\"tool.bin\"\n",
                ))
                .expect("ASCII");
                format!(
                    "From: <alice@example.com>\nSubject: fwd\nMIME-Version: 1.0\n\
Content-Type: multipart/mixed; boundary=\"outer\"\n\n--outer\nContent-Type: text/plain\n\n\
see below\n--outer\nContent-Type: message/rfc822\n\n{inner}\n--outer--\n"
                )
                .into_bytes()
            },
            Some("attachment of type application/x-dosexec"),
        ),
    ];
    run(async {
        for profile in [Profile::postfix(), Profile::sendmail()] {
            let kind = profile.kind;
            // Small chunks: the message is collected across many BODY packets.
            let profile = profile.with_body_chunk_size(50);
            let mut client = example.session(profile, Family::Inet, "192.0.2.1").await;
            for (case, message, refusal) in &cases {
                let outcome = client.send_message(&envelope(), message).await.unwrap();
                assert!(outcome.modifications.is_empty(), "{kind:?}, {case}");
                match refusal {
                    None => {
                        assert!(
                            outcome.verdict.is_continue(),
                            "{kind:?}, {case}: {outcome:?}"
                        );
                        assert!(outcome.delivered.is_some(), "{kind:?}, {case}");
                    }
                    Some(what) => {
                        assert_eq!(outcome.verdict, refused(what), "{kind:?}, {case}");
                        assert!(outcome.delivered.is_none(), "{kind:?}, {case}");
                    }
                }
            }
            client.quit().await.expect("QUIT");
        }
    });
}

#[test]
fn attachment_policy_accepts_an_oversize_message_unparsed_with_a_note() {
    let example = Example::start("attachment_policy", &[ANY_PORT, "--max-size", "2000"]);
    let small_exe = with_attachment("Content-Type: application/x-msdownload\n");
    let mut large_exe = String::from_utf8(small_exe.clone()).expect("ASCII");
    large_exe = large_exe.replace(
        "Please find it attached.\n",
        &"Please find it attached.\n".repeat(100),
    );
    assert!(large_exe.len() > 2000);
    run(async {
        for profile in [Profile::postfix(), Profile::sendmail()] {
            let kind = profile.kind;
            let profile = profile.with_body_chunk_size(300);
            let mut client = example.session(profile, Family::Inet, "192.0.2.1").await;
            let outcome = client
                .send_message(&envelope(), large_exe.as_bytes())
                .await
                .unwrap();
            assert_eq!(outcome.verdict, Reply::Accept, "{kind:?}");
            assert_eq!(
                delivered_headers(&outcome, "X-Attachment-Policy"),
                ["not checked, larger than 2000 bytes"],
                "{kind:?}"
            );
            // Under the limit, the same attachment is refused.
            let outcome = client.send_message(&envelope(), &small_exe).await.unwrap();
            assert_eq!(
                outcome.verdict,
                refused("attachment of type application/x-msdownload"),
                "{kind:?}"
            );
            client.quit().await.expect("QUIT");
        }
    });
}

// ===== rate_limit =====

/// One message from a new connection: the answer to MAIL, with `user` logged in if given.
async fn rate_limited_mail(
    example: &Example,
    profile: &Profile,
    address: &str,
    user: Option<&str>,
    messages: usize,
) -> Vec<Reply> {
    let profile = match user {
        Some(user) => profile.clone().with_macro("{auth_authen}", user),
        None => profile.clone(),
    };
    let mut client = example.session(profile, Family::Inet, address).await;
    let negotiated = client.negotiated().expect("negotiated");
    assert!(
        negotiated
            .macro_requests
            .iter()
            .any(|(stage, list)| *stage == MacroStage::Mail && list.contains("{auth_authen}")),
        "{negotiated:?}"
    );
    let mut replies = Vec::new();
    for _ in 0..messages {
        let outcome = client.send_message(&envelope(), PLAIN).await.unwrap();
        assert_eq!(outcome.delivered.is_some(), outcome.mail.is_continue());
        replies.push(outcome.mail);
    }
    client.quit().await.expect("QUIT");
    replies
}

#[test]
fn rate_limit_counts_per_user_or_else_per_address_across_connections() {
    let example = Example::start("rate_limit", &[ANY_PORT, "--limit", "3"]);
    let over = |key: &str| {
        Reply::ReplyCode(format!(
            "451 4.7.1 too many messages from {key}, try again later"
        ))
    };
    run(async {
        // Keys differ per profile: the counts are shared by every connection.
        for (profile, n) in [(Profile::postfix(), 1), (Profile::sendmail(), 2)] {
            let kind = profile.kind;
            let alice = format!("alice{n}");
            let bob = format!("bob{n}");
            let (shared, other) = (format!("192.0.2.{n}"), format!("198.51.100.{n}"));
            // Three messages over two connections pass; the fourth is tempfailed at MAIL.
            assert_eq!(
                rate_limited_mail(&example, &profile, &shared, Some(&alice), 2).await,
                [const { Reply::Continue }; 2]
            );
            let replies = rate_limited_mail(&example, &profile, &shared, Some(&alice), 2).await;
            let refused = over(&format!("user {alice}"));
            assert_eq!(replies, [Reply::Continue, refused.clone()], "{kind:?}");
            // From another address: the same user, the same count.
            assert_eq!(
                rate_limited_mail(&example, &profile, &other, Some(&alice), 1).await,
                [refused],
                "{kind:?}"
            );
            // Another user from the same address is not affected, nor is the address.
            assert_eq!(
                rate_limited_mail(&example, &profile, &shared, Some(&bob), 1).await,
                [Reply::Continue]
            );
            // Without a login, the client address is the key.
            let replies = rate_limited_mail(&example, &profile, &shared, None, 4).await;
            let refused = over(&format!("address {shared}"));
            assert_eq!(replies[..3], [const { Reply::Continue }; 3], "{kind:?}");
            assert_eq!(replies[3], refused, "{kind:?}");
            assert_eq!(
                rate_limited_mail(&example, &profile, &shared, None, 1).await,
                [refused],
                "{kind:?}"
            );
            assert_eq!(
                rate_limited_mail(&example, &profile, &other, None, 1).await,
                [Reply::Continue],
                "{kind:?}"
            );
        }
    });
}

// ===== greylist =====

/// The delay every greylist test runs with: real time passes, so keep it short.
const GREYLIST_DELAY: Duration = Duration::from_secs(1);
const GREYLISTED: &str = "451 4.7.1 greylisted, try again later";

/// One message from `address` to `rcpts` on a new connection: each recipient's answer, and
/// the recipients delivered.
async fn greylist_try(
    example: &Example,
    profile: &Profile,
    address: &str,
    rcpts: &[&str],
) -> (Vec<Reply>, Vec<String>) {
    let mut client = example
        .session(profile.clone(), Family::Inet, address)
        .await;
    let envelope = Envelope::new("<alice@example.com>", rcpts);
    let outcome = client.send_message(&envelope, PLAIN).await.unwrap();
    client.quit().await.expect("QUIT");
    let replies = outcome.rcpts.into_iter().map(|(_, reply)| reply).collect();
    let delivered = outcome.delivered.map(|d| {
        let addresses = d.recipient_addresses();
        addresses.into_iter().map(str::to_owned).collect()
    });
    (replies, delivered.unwrap_or_default())
}

fn greylisted() -> Reply {
    Reply::ReplyCode(GREYLISTED.into())
}

/// Sleeps until `delay` has passed since `since` (and a little more).
async fn sleep_past(since: Instant, delay: Duration) {
    let wake = since + delay + Duration::from_millis(150);
    async_std::task::sleep(wake.saturating_duration_since(Instant::now())).await;
}

#[test]
fn greylist_in_memory_tempfails_first_sight_per_recipient_and_passes_retries() {
    let example = Example::start("greylist", &[ANY_PORT, "--delay", "1"]);
    let (bob, carol, dave) = (
        "<bob@example.net>",
        "<carol@example.net>",
        "<Dave@example.net>",
    );
    let profiles = [
        (Profile::postfix(), "192.0.2.1"),
        (Profile::sendmail(), "192.0.2.2"),
    ];
    run(async {
        let first_sight = Instant::now();
        for (profile, address) in &profiles {
            let kind = profile.kind;
            let (replies, delivered) =
                greylist_try(&example, profile, address, &[bob, carol]).await;
            assert_eq!(replies, [greylisted(), greylisted()], "{kind:?}");
            assert!(delivered.is_empty(), "{kind:?}");
            // A retry before the delay is still too early.
            let (replies, _) = greylist_try(&example, profile, address, &[bob]).await;
            assert_eq!(replies, [greylisted()], "{kind:?}");
        }
        sleep_past(first_sight, GREYLIST_DELAY).await;
        for (profile, address) in &profiles {
            let kind = profile.kind;
            let (replies, delivered) =
                greylist_try(&example, profile, address, &[bob, carol]).await;
            assert_eq!(replies, [Reply::Continue, Reply::Continue], "{kind:?}");
            assert_eq!(delivered, [bob, carol], "{kind:?}");
            // Per recipient: a new one is greylisted, the message goes on to the other.
            let (replies, delivered) =
                greylist_try(&example, profile, address, &[dave, carol]).await;
            assert_eq!(replies, [greylisted(), Reply::Continue], "{kind:?}");
            assert_eq!(delivered, [carol], "{kind:?}");
            // The client address is part of the triplet.
            let (replies, _) = greylist_try(&example, profile, "198.51.100.9", &[bob]).await;
            assert_eq!(replies, [greylisted()], "{kind:?}");
            // Several messages on one connection: those that passed keep passing.
            let mut client = example
                .session(profile.clone(), Family::Inet, address)
                .await;
            for _ in 0..3 {
                let envelope = Envelope::new("<ALICE@example.com>", &[bob, carol]);
                let outcome = client.send_message(&envelope, PLAIN).await.unwrap();
                let delivered = outcome.delivered.expect("delivered");
                assert_eq!(delivered.recipient_addresses(), [bob, carol], "{kind:?}");
            }
            client.quit().await.expect("QUIT");
        }
    });
}

/// A private `redis-server` on a free loopback port, killed when dropped.
struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("starting redis-server: install the Debian package `redis-server`");
        let server = Self { child, port };
        let deadline = Instant::now() + WAIT;
        while server.connection().is_err() {
            assert!(Instant::now() < deadline, "redis-server not answering");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn connection(&self) -> redis::RedisResult<redis::Connection> {
        let mut connection = redis::Client::open(self.url())?.get_connection()?;
        redis::cmd("PING").exec(&mut connection)?;
        Ok(connection)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn greylist_shares_triplets_across_processes_through_redis() {
    let redis = RedisServer::start();
    let url = redis.url();
    let args = [ANY_PORT, "--delay", "1", "--redis", &url];
    let a = Example::start("greylist", &args);
    let b = Example::start("greylist", &args);
    let bob = "<bob@example.net>";
    run(async {
        for (profile, address) in [
            (Profile::postfix(), "192.0.2.1"),
            (Profile::sendmail(), "192.0.2.2"),
        ] {
            let kind = profile.kind;
            let first_sight = Instant::now();
            let (replies, _) = greylist_try(&a, &profile, address, &[bob]).await;
            assert_eq!(replies, [greylisted()], "{kind:?}");
            let (replies, _) = greylist_try(&b, &profile, address, &[bob]).await;
            assert_eq!(replies, [greylisted()], "{kind:?}: too early through B too");
            sleep_past(first_sight, GREYLIST_DELAY).await;
            // B never passed this triplet itself: it knows it from Redis.
            let (replies, delivered) = greylist_try(&b, &profile, address, &[bob]).await;
            assert_eq!(replies, [Reply::Continue], "{kind:?}");
            assert_eq!(delivered, [bob], "{kind:?}");
            let (replies, _) = greylist_try(&a, &profile, address, &[bob]).await;
            assert_eq!(replies, [Reply::Continue], "{kind:?}");
            // The key is in Redis, with a lifetime.
            let key = format!("greylist {address} <alice@example.com> {bob}");
            let mut connection = redis.connection().expect("redis");
            let ttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut connection).unwrap();
            assert!(ttl > 30 * 24 * 3600 * 1000, "{key}: PTTL {ttl}");
        }
    });
}

// ===== dkim_sign and dkim_verify =====

/// The test keys: `tests/data/dkim/NAME.pem` signs, `NAME.txt` is its DNS TXT record,
/// published (for the verifier) as `NAME._domainkey.example.com`.
fn dkim_data(file: &str) -> String {
    format!("{}/tests/data/dkim/{file}", env!("CARGO_MANIFEST_DIR"))
}

fn dkim_record(key: &str) -> String {
    let path = dkim_data(&format!("{key}.txt"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The test's DNS: the TXT records given, nothing else (a `ResolverCache` answered from a
/// table, and a resolver without any server behind it).
struct FixedTxt(std::collections::HashMap<Box<str>, mail_auth::Txt>);

impl mail_auth::ResolverCache<Box<str>, mail_auth::Txt> for FixedTxt {
    fn get<Q: std::hash::Hash + Eq + ?Sized>(&self, name: &Q) -> Option<mail_auth::Txt>
    where
        Box<str>: std::borrow::Borrow<Q>,
    {
        self.0.get(name).cloned()
    }
    fn remove<Q: std::hash::Hash + Eq + ?Sized>(&self, _: &Q) -> Option<mail_auth::Txt>
    where
        Box<str>: std::borrow::Borrow<Q>,
    {
        None
    }
    fn insert(&self, _: Box<str>, _: mail_auth::Txt, _: Instant) {}
}

/// The DKIM results for `message`, with the key records of `keys` published under
/// `KEY._domainkey.example.com` and nothing else resolvable.
fn dkim_results(message: &[u8], keys: &[&str]) -> Vec<mail_auth::DkimResult> {
    use mail_auth::common::{parse::TxtRecordParser, verify::DomainKey};
    use mail_auth::hickory_resolver::config::{ResolverConfig, ResolverOpts};
    let records = keys.iter().map(|key| {
        let record = DomainKey::parse(dkim_record(key).trim().as_bytes());
        let name = format!("{key}._domainkey.example.com.").into_boxed_str();
        (name, mail_auth::Txt::from(record))
    });
    let cache = FixedTxt(records.collect());
    let message = mail_auth::AuthenticatedMessage::parse(message).expect("a message");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let no_server = ResolverConfig::from_parts(None, vec![], vec![]);
        let dns = mail_auth::MessageAuthenticator::new(no_server, ResolverOpts::default())
            .expect("a resolver");
        let params = mail_auth::Parameters::new(&message).with_txt_cache(&cache);
        let outputs = dns.verify_dkim(params).await;
        outputs.iter().map(|o| o.result().clone()).collect()
    })
}

/// A message with the usual headers (no Cc), CRLF line ends.
fn dkim_message(body: &str) -> Vec<u8> {
    format!(
        "From: Alice <alice@example.com>\r\nTo: <bob@example.net>\r\nSubject:  spaced\r\n\t\
folded subject\r\nDate: Mon, 2 Mar 2026 10:00:00 +0000\r\nMessage-ID: <1@example.com>\r\n\
X-Unsigned: yes\r\n\r\n{body}"
    )
    .into_bytes()
}

/// The tag `name` of a DKIM-Signature value, whitespace removed.
fn dkim_tag(signature: &str, name: &str) -> String {
    let value: String = signature.split_whitespace().collect();
    value
        .split(';')
        .find_map(|tag| tag.strip_prefix(&format!("{name}=")))
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn dkim_sign_signs_so_that_the_delivered_message_verifies() {
    use mail_auth::dkim::DkimError;
    let body = "Hello Bob,\r\n\r\ntrailing spaces   \r\n\r\n\r\n";
    for (key, algorithm) in [("rsa", "rsa-sha256"), ("ed25519", "ed25519-sha256")] {
        let pem = dkim_data(&format!("{key}.pem"));
        let args = [
            ANY_PORT,
            "--key",
            &pem,
            "--selector",
            key,
            "--domain",
            "example.com",
        ];
        let example = Example::start("dkim_sign", &args);
        run(async {
            for profile in [Profile::postfix(), Profile::sendmail()] {
                let kind = profile.kind;
                let profile = profile.with_body_chunk_size(7);
                let mut client = example.session(profile, Family::Inet, "192.0.2.1").await;
                let message = dkim_message(body);
                let outcome = client.send_message(&envelope(), &message).await.unwrap();
                assert_eq!(outcome.verdict, Reply::Accept, "{kind:?} {key}");
                let names = delivered_names(&outcome);
                assert_eq!(names[0], "DKIM-Signature", "{kind:?} {key}: {names:?}");
                let signature = &delivered_headers(&outcome, "DKIM-Signature")[0];
                assert_eq!(dkim_tag(signature, "a"), algorithm, "{kind:?}");
                assert_eq!(dkim_tag(signature, "c"), "relaxed/relaxed", "{kind:?}");
                assert_eq!(
                    (dkim_tag(signature, "d"), dkim_tag(signature, "s")),
                    ("example.com".into(), key.into())
                );
                // Only the headers present (mail-auth lists them bottom-up): an absent Cc
                // must not be named, nor the unlisted X-Unsigned.
                let mut signed: Vec<String> = dkim_tag(signature, "h")
                    .split(':')
                    .map(str::to_ascii_lowercase)
                    .collect();
                signed.sort();
                assert_eq!(
                    signed,
                    ["date", "from", "message-id", "subject", "to"],
                    "{kind:?}"
                );
                let delivered = outcome.delivered.as_ref().unwrap().to_bytes();
                let results = dkim_results(&delivered, &[key]);
                assert_eq!(results, [mail_auth::DkimResult::Pass], "{kind:?} {key}");
                // The check can fail: a changed signed header fails; a changed body is
                // `neutral` with mail-auth (body hash mismatch, RFC 6376 6.3 leaves it open).
                let delivered = String::from_utf8(delivered).unwrap();
                let tampered = delivered.replace("folded subject", "folded  subject!");
                let results = dkim_results(tampered.as_bytes(), &[key]);
                assert!(
                    matches!(results[..], [mail_auth::DkimResult::Fail(_)]),
                    "{kind:?} {key}: {results:?}"
                );
                let tampered = delivered.replace("Bob", "Eve");
                let results = dkim_results(tampered.as_bytes(), &[key]);
                assert!(
                    matches!(
                        results[..],
                        [mail_auth::DkimResult::Neutral(mail_auth::Error::Dkim(
                            DkimError::FailedBodyHashMatch
                        ))]
                    ),
                    "{kind:?} {key}: {results:?}"
                );
                client.quit().await.expect("QUIT");
            }
        });
    }
}

/// `message` with a DKIM-Signature by the test key `rsa` for example.com on top.
fn dkim_signed(message: &[u8]) -> Vec<u8> {
    use mail_auth::common::crypto::{RsaKey, Sha256};
    use mail_auth::common::headers::HeaderWriter;
    use rustls_pki_types::{PrivateKeyDer, pem::PemObject};
    let der = PrivateKeyDer::from_pem_file(dkim_data("rsa.pem")).expect("the test key");
    let key = RsaKey::<Sha256>::from_key_der(der).expect("an RSA key");
    let signature = mail_auth::dkim::DkimSigner::from_key(key)
        .domain("example.com")
        .selector("rsa")
        .headers(["From", "To", "Subject"])
        .sign(message)
        .expect("signed");
    let mut signed = signature.to_header().into_bytes();
    signed.extend_from_slice(message);
    signed
}

#[test]
fn dkim_verify_puts_dkim_and_spf_results_on_top() {
    let records = std::env::temp_dir().join(format!("dkim-records-{}", std::process::id()));
    let table = format!(
        "# the test's DNS\nrsa._domainkey.example.com {}\nexample.com \"v=spf1 ip4:192.0.2.1 -all\"\n",
        dkim_record("rsa").trim()
    );
    std::fs::write(&records, table).expect("writing the records file");
    let records_arg = records.to_str().expect("UTF-8 path");
    let args = [
        ANY_PORT,
        "--authserv-id",
        "mx.example.net",
        "--records",
        records_arg,
    ];
    let example = Example::start("dkim_verify", &args);
    let signed = dkim_signed(&dkim_message("Hello Bob\r\n"));
    let tampered = String::from_utf8(signed.clone())
        .unwrap()
        .replace("spaced", "spiced");
    let spf_pass = "spf=pass (mx.example.net: domain of alice@example.com designates 192.0.2.1 \
as permitted sender) smtp.mailfrom=alice@example.com";
    let spf_fail = "spf=fail (mx.example.net: domain of alice@example.com does not designate \
198.51.100.7 as permitted sender) smtp.mailfrom=alice@example.com";
    let cases = [
        (
            "signed",
            "192.0.2.1",
            signed.clone(),
            "dkim=pass header.d=example.com header.s=rsa",
        ),
        ("tampered", "192.0.2.1", tampered.into_bytes(), "dkim=fail"),
        (
            "unsigned",
            "192.0.2.1",
            dkim_message("Hello Bob\r\n"),
            "dkim=none",
        ),
        ("signed, other address", "198.51.100.7", signed, "dkim=pass"),
    ];
    run(async {
        for profile in [Profile::postfix(), Profile::sendmail()] {
            let kind = profile.kind;
            for (case, address, message, dkim) in &cases {
                let profile = profile.clone().with_body_chunk_size(5);
                let mut client = example.session(profile, Family::Inet, address).await;
                let outcome = client.send_message(&envelope(), message).await.unwrap();
                assert_eq!(outcome.verdict, Reply::Accept, "{kind:?} {case}");
                let names = delivered_names(&outcome);
                assert_eq!(
                    names[0], "Authentication-Results",
                    "{kind:?} {case}: {names:?}"
                );
                let results = delivered_headers(&outcome, "Authentication-Results");
                let results = results[0].replace("\n\t", " ");
                assert!(
                    results.starts_with("mx.example.net; "),
                    "{kind:?} {case}: {results}"
                );
                assert!(results.contains(dkim), "{kind:?} {case}: {results}");
                let spf = if *address == "192.0.2.1" {
                    spf_pass
                } else {
                    spf_fail
                };
                assert!(results.contains(spf), "{kind:?} {case}: {results}");
                client.quit().await.expect("QUIT");
            }
        }
    });
    std::fs::remove_file(&records).expect("removing the records file");
}
