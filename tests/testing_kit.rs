//! The test kit against scripted fake filters over an in-memory stream: exact bytes per
//! profile, flag handling, strictness, timeouts, and how modifications are applied.

use std::time::{Duration, Instant};

use async_milter::proto::{
    Actions, Command, CommandKind, Family, FrameDecoder, MacroStage, OptNeg, OptNegReply,
    ProtocolFlags, Response, WireStr,
};
use async_milter::testing::{
    ClientError, Envelope, MilterClient, Modification, MtaKind, NegotiationError, Profile, Reply,
    connect,
};
use async_std::os::unix::net::UnixStream;
use async_std::task::{self, JoinHandle};
use futures::{AsyncReadExt, AsyncWriteExt};

type Respond = Box<dyn FnMut(&Command<'_>) -> Vec<Response<'static>> + Send>;

/// What the fake filter answers in OPTNEG, and how it answers everything else.
struct Script {
    options: OptNeg,
    macros: Vec<(MacroStage, &'static str)>,
    respond: Respond,
}

impl Script {
    /// Negotiates `actions` and `protocol` at version 6 and answers `respond`.
    fn new(
        actions: Actions,
        protocol: ProtocolFlags,
        respond: impl FnMut(&Command<'_>) -> Vec<Response<'static>> + Send + 'static,
    ) -> Self {
        Self {
            options: OptNeg {
                version: 6,
                actions,
                protocol,
            },
            macros: Vec::new(),
            respond: Box::new(respond),
        }
    }

    /// Continue to every command that expects an answer under `protocol`; `eom` at end of
    /// message.
    fn continuing(
        actions: Actions,
        protocol: ProtocolFlags,
        mut eom: impl FnMut() -> Vec<Response<'static>> + Send + 'static,
    ) -> Self {
        Self::new(actions, protocol, move |command| match command {
            Command::EndOfMessage(_) => eom(),
            command if answers(command.kind(), protocol) => vec![Response::Continue],
            _ => vec![],
        })
    }
}

/// Whether a filter with these protocol flags answers `kind`.
fn answers(kind: CommandKind, protocol: ProtocolFlags) -> bool {
    let options = OptNeg {
        version: 6,
        actions: Actions::EMPTY,
        protocol,
    };
    options.expects_reply(kind)
}

/// Every frame the fake filter received, as `code + escaped payload`.
type Record = Vec<String>;

fn show(kind: u8, payload: &[u8]) -> String {
    format!("{}{}", char::from(kind), payload.escape_ascii())
}

/// Starts a fake filter on one end of a socket pair; returns the client on the other end.
fn start(profile: Profile, script: Script) -> (MilterClient<UnixStream>, JoinHandle<Record>) {
    let (mta, filter) = UnixStream::pair().expect("socket pair");
    (
        MilterClient::new(mta, profile),
        spawn_filter(filter, script),
    )
}

/// Runs the fake filter on `stream` until end of stream; returns what it received.
fn spawn_filter<S>(stream: S, mut script: Script) -> JoinHandle<Record>
where
    S: futures::AsyncRead + futures::AsyncWrite + Unpin + Send + 'static,
{
    task::spawn(async move {
        let mut stream = stream;
        let mut decoder = FrameDecoder::new();
        let mut record = Vec::new();
        let mut buf = vec![0; 1 << 16];
        loop {
            while let Some(frame) = decoder.decode().expect("client frames are valid") {
                record.push(show(frame.kind, &frame.payload));
                let command = Command::decode_frame(&frame).expect("client commands are valid");
                let mut out = Vec::new();
                if let Command::OptNeg(_) = command {
                    let requests: Vec<(MacroStage, WireStr<'_>)> = script
                        .macros
                        .iter()
                        .map(|(stage, list)| (*stage, WireStr::from(*list)))
                        .collect();
                    Response::OptNeg(OptNegReply::new(script.options, &requests))
                        .encode(&mut out)
                        .expect("encode");
                } else if command.kind().expects_reply() {
                    for response in (script.respond)(&command) {
                        response.encode(&mut out).expect("encode");
                    }
                }
                if !out.is_empty() && stream.write_all(&out).await.is_err() {
                    return record;
                }
            }
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return record,
                Ok(read) => decoder.push(&buf[..read]),
            }
        }
    })
}

fn macros(command: u8, pairs: &[(&str, &str)]) -> String {
    let mut payload = vec![command];
    for (name, value) in pairs {
        payload.extend_from_slice(name.as_bytes());
        payload.push(0);
        payload.extend_from_slice(value.as_bytes());
        payload.push(0);
    }
    show(b'D', &payload)
}

fn cmd(kind: u8, payload: &[u8]) -> String {
    show(kind, payload)
}

const MESSAGE: &[u8] = b"From: Alice <alice@example.com>\n\
Subject: Hello\n\
X-Folded: first\n\
\tsecond\n\
Message-ID: <m1@example.com>\n\
\n\
Body line\n";

fn envelope() -> Envelope {
    Envelope {
        from: "<alice@example.com>".into(),
        from_args: vec!["BODY=8BITMIME".into()],
        rcpts: vec![
            ("<bob@example.net>".into(), vec![]),
            ("<carol@example.net>".into(), vec!["NOTIFY=NEVER".into()]),
        ],
    }
}

async fn full_session<S>(client: &mut MilterClient<S>) -> Result<(), ClientError>
where
    S: futures::AsyncRead + futures::AsyncWrite + Unpin,
{
    client.negotiate().await?;
    assert_eq!(
        client
            .connect("client.example.com", Family::Inet6, 50000, "2001:db8::1")
            .await?,
        Reply::Continue
    );
    assert_eq!(client.helo("client.example.com").await?, Reply::Continue);
    let outcome = client.send_message(&envelope(), MESSAGE).await?;
    assert!(matches!(outcome.verdict, Reply::Continue | Reply::Accept));
    assert!(outcome.delivered.is_some());
    client.quit().await
}

#[async_std::test]
async fn postfix_session_bytes() {
    let script = Script::continuing(Actions::EMPTY, ProtocolFlags::EMPTY, || {
        vec![Response::Continue]
    });
    let (mut client, filter) = start(Profile::postfix(), script);
    full_session(&mut client).await.expect("session");
    let record = filter.await;
    let qid = "4XBQ1F2K3Lz9";
    let expected = vec![
        cmd(b'O', b"\0\0\0\x06\0\0\x01\xff\0\x1f\xff\xff"),
        macros(
            b'C',
            &[
                ("j", "mx.example.net"),
                ("{daemon_name}", "mx.example.net"),
                ("{daemon_addr}", "127.0.0.1"),
                ("v", "Postfix 3.7.11"),
                ("_", "client.example.com [2001:db8::1]"),
            ],
        ),
        cmd(b'C', b"client.example.com\x006\xc3\x502001:db8::1\0"),
        macros(b'H', &[]),
        cmd(b'H', b"client.example.com\0"),
        macros(
            b'M',
            &[
                ("{mail_addr}", "alice@example.com"),
                ("{mail_host}", "example.com"),
                ("{mail_mailer}", "smtp"),
            ],
        ),
        cmd(b'M', b"<alice@example.com>\0BODY=8BITMIME\0"),
        macros(
            b'R',
            &[
                ("{rcpt_addr}", "bob@example.net"),
                ("{rcpt_host}", "example.net"),
                ("{rcpt_mailer}", "smtp"),
            ],
        ),
        cmd(b'R', b"<bob@example.net>\0"),
        macros(
            b'R',
            &[
                ("i", qid),
                ("{rcpt_addr}", "carol@example.net"),
                ("{rcpt_host}", "example.net"),
                ("{rcpt_mailer}", "smtp"),
            ],
        ),
        cmd(b'R', b"<carol@example.net>\0NOTIFY=NEVER\0"),
        macros(b'T', &[("i", qid)]),
        cmd(b'T', b""),
        macros(b'L', &[("i", qid)]),
        cmd(b'L', b"From\0Alice <alice@example.com>\0"),
        macros(b'L', &[("i", qid)]),
        cmd(b'L', b"Subject\0Hello\0"),
        macros(b'L', &[("i", qid)]),
        cmd(b'L', b"X-Folded\0first\n\tsecond\0"),
        macros(b'L', &[("i", qid)]),
        cmd(b'L', b"Message-ID\0<m1@example.com>\0"),
        macros(b'N', &[("i", qid)]),
        cmd(b'N', b""),
        macros(b'B', &[("i", qid)]),
        cmd(b'B', b"Body line\r\n"),
        macros(b'E', &[("i", qid)]),
        cmd(b'E', b""),
        cmd(b'A', b""),
        cmd(b'A', b""),
        cmd(b'Q', b""),
    ];
    assert_eq!(record, expected);
}

#[async_std::test]
async fn sendmail_session_bytes() {
    let script = Script::continuing(Actions::EMPTY, ProtocolFlags::EMPTY, || {
        vec![Response::Accept]
    });
    let (mut client, filter) = start(Profile::sendmail(), script);
    full_session(&mut client).await.expect("session");
    let record = filter.await;
    let qid = "63QAbc0a012345";
    let expected = vec![
        cmd(b'O', b"\0\0\0\x06\0\0\x01\xff\0\x1f\xff\xff"),
        macros(
            b'C',
            &[
                ("j", "mx.example.net"),
                ("_", "client.example.com [IPv6:2001:db8:0:0:0:0:0:1]"),
                ("{daemon_name}", "MTA"),
                ("{if_name}", "localhost"),
                ("{if_addr}", "127.0.0.1"),
            ],
        ),
        cmd(
            b'C',
            b"client.example.com\x006\xc3\x50IPv6:2001:db8:0:0:0:0:0:1\0",
        ),
        cmd(b'H', b"client.example.com\0"),
        macros(
            b'M',
            &[
                ("i", qid),
                ("{mail_mailer}", "esmtp"),
                ("{mail_host}", "example.com"),
                ("{mail_addr}", "alice@example.com"),
            ],
        ),
        cmd(b'M', b"<alice@example.com>\0BODY=8BITMIME\0"),
        macros(
            b'R',
            &[
                ("{rcpt_mailer}", "esmtp"),
                ("{rcpt_host}", "example.net"),
                ("{rcpt_addr}", "bob@example.net"),
            ],
        ),
        cmd(b'R', b"<bob@example.net>\0"),
        macros(
            b'R',
            &[
                ("{rcpt_mailer}", "esmtp"),
                ("{rcpt_host}", "example.net"),
                ("{rcpt_addr}", "carol@example.net"),
            ],
        ),
        cmd(b'R', b"<carol@example.net>\0NOTIFY=NEVER\0"),
        cmd(b'T', b""),
        cmd(b'L', b"From\0Alice <alice@example.com>\0"),
        cmd(b'L', b"Subject\0Hello\0"),
        cmd(b'L', b"X-Folded\0first\n\tsecond\0"),
        cmd(b'L', b"Message-ID\0<m1@example.com>\0"),
        cmd(b'N', b""),
        cmd(b'B', b"Body line\r\n"),
        macros(b'E', &[("{msg_id}", "<m1@example.com>")]),
        cmd(b'E', b""),
        cmd(b'Q', b""),
    ];
    assert_eq!(record, expected);
}

#[async_std::test]
async fn unknown_payload_and_macros_per_profile() {
    for (profile, expected) in [
        (
            Profile::postfix(),
            vec![macros(b'U', &[]), cmd(b'U', b"XFOO\0")],
        ),
        (Profile::sendmail(), vec![cmd(b'U', b"XFOO bar baz\0")]),
    ] {
        let script = Script::continuing(Actions::EMPTY, ProtocolFlags::EMPTY, Vec::new);
        let (mut client, filter) = start(profile, script);
        client.negotiate().await.unwrap();
        assert_eq!(
            client.unknown("XFOO bar baz").await.unwrap(),
            Reply::Continue
        );
        drop(client);
        assert_eq!(filter.await[1..], expected[..]);
    }
}

#[async_std::test]
async fn no_and_nr_flags_are_honoured() {
    let protocol = ProtocolFlags::NO_HELO
        | ProtocolFlags::NO_HEADER
        | ProtocolFlags::NR_RCPT
        | ProtocolFlags::NR_EOH
        | ProtocolFlags::NO_BODY;
    let script = Script::continuing(Actions::EMPTY, protocol, || vec![Response::Continue]);
    let (mut client, filter) = start(Profile::postfix().with_queue_id("Q1"), script);
    client.negotiate().await.unwrap();
    assert_eq!(client.helo("h").await.unwrap(), Reply::NotSent);
    let outcome = client
        .send_message(&Envelope::new("<a@b.example>", &["<c@d.example>"]), MESSAGE)
        .await
        .unwrap();
    assert_eq!(outcome.rcpts[0].1, Reply::NoReply);
    assert_eq!(outcome.headers, vec![Reply::NotSent; 4]);
    assert_eq!(outcome.end_of_headers, Some(Reply::NoReply));
    assert_eq!(outcome.body, vec![Reply::NotSent]);
    assert_eq!(outcome.verdict, Reply::Continue);
    client.quit().await.unwrap();
    let kinds: String = filter
        .await
        .iter()
        .map(|frame| frame.chars().next().unwrap())
        .collect();
    // MACRO H is sent although HELO is suppressed; no MACRO L or B for suppressed headers/body.
    assert_eq!(kinds, "ODDMDRDTDNDEAAQ");
}

#[async_std::test]
async fn header_leading_space_and_folding() {
    let message = b"Subject:  two spaces\r\nX-Tab:\tvalue\r\nX-Fold: a\r\n  b\r\n\tc\r\n\r\n";
    for (protocol, expected) in [
        (
            ProtocolFlags::EMPTY,
            [
                "Subject\0 two spaces\0",
                "X-Tab\0\tvalue\0",
                "X-Fold\0a\n  b\n\tc\0",
            ],
        ),
        (
            ProtocolFlags::HEADER_LEADING_SPACE,
            [
                "Subject\0  two spaces\0",
                "X-Tab\0\tvalue\0",
                "X-Fold\0 a\n  b\n\tc\0",
            ],
        ),
    ] {
        let script = Script::continuing(Actions::EMPTY, protocol, || vec![Response::Continue]);
        let (mut client, filter) = start(Profile::sendmail(), script);
        client.negotiate().await.unwrap();
        let outcome = client
            .send_message(&Envelope::new("<a@b.example>", &["<c@d.example>"]), message)
            .await
            .unwrap();
        assert!(outcome.body.is_empty(), "an empty body sends no BODY");
        drop(client);
        let headers: Vec<String> = filter
            .await
            .into_iter()
            .filter(|frame| frame.starts_with('L'))
            .collect();
        let expected: Vec<String> = expected.iter().map(|h| cmd(b'L', h.as_bytes())).collect();
        assert_eq!(headers, expected);
    }
}

#[async_std::test]
async fn body_is_sent_in_chunks() {
    let mut message = b"Subject: big\n\n".to_vec();
    let line = [b'x'; 98];
    for _ in 0..1500 {
        message.extend_from_slice(&line);
        message.push(b'\n');
    }
    // 1500 lines of 98 bytes + CRLF = 150000 bytes.
    for (profile, sizes) in [
        (Profile::postfix(), vec![65535, 65535, 18930]),
        (
            Profile::sendmail().with_body_chunk_size(40000),
            vec![40000, 40000, 40000, 30000],
        ),
    ] {
        let script = Script::continuing(Actions::EMPTY, ProtocolFlags::EMPTY, || {
            vec![Response::Continue]
        });
        let (mut client, filter) = start(profile, script);
        client.negotiate().await.unwrap();
        let outcome = client
            .send_message(
                &Envelope::new("<a@b.example>", &["<c@d.example>"]),
                &message,
            )
            .await
            .unwrap();
        assert_eq!(outcome.body.len(), sizes.len());
        let delivered = outcome.delivered.unwrap();
        assert_eq!(delivered.body.len(), 150_000);
        assert!(delivered.body.starts_with(b"xx") && delivered.body.ends_with(b"x\r\n"));
        drop(client);
        let chunks: Vec<usize> = filter
            .await
            .iter()
            .filter(|frame| frame.starts_with('B'))
            .map(|frame| frame.len() - 1 - escaped_extra(frame))
            .collect();
        assert_eq!(chunks, sizes);
    }
}

/// `show` escapes CR and LF as two characters each; undo that for a length count.
fn escaped_extra(frame: &str) -> usize {
    frame.matches("\\r").count() + frame.matches("\\n").count()
}

#[async_std::test]
async fn skip_stops_the_body() {
    let mut message = b"Subject: big\n\n".to_vec();
    message.extend(std::iter::repeat_n(b'y', 200_000));
    let script = Script::new(
        Actions::EMPTY,
        ProtocolFlags::SKIP,
        |command| match command {
            Command::Body(_) => vec![Response::Skip],
            Command::EndOfMessage(_) => vec![Response::Accept],
            _ => vec![Response::Continue],
        },
    );
    let (mut client, filter) = start(Profile::postfix(), script);
    client.negotiate().await.unwrap();
    let outcome = client
        .send_message(
            &Envelope::new("<a@b.example>", &["<c@d.example>"]),
            &message,
        )
        .await
        .unwrap();
    assert_eq!(outcome.body, vec![Reply::Skip]);
    assert_eq!(outcome.verdict, Reply::Accept);
    drop(client);
    assert_eq!(
        filter.await.iter().filter(|f| f.starts_with('B')).count(),
        1
    );
}

const SAMPLE: &[u8] = b"Received: from relay.example.org\r\n\
From: alice@example.com\r\n\
To: bob@example.net\r\n\
X-Tag: one\r\n\
X-Tag: two\r\n\
X-Tag: three\r\n\
Subject: sample\r\n\
\r\n\
original body\r\n";

fn editing_filter() -> Script {
    Script::continuing(
        Actions::V6 - Actions::SET_MACRO_LIST,
        ProtocolFlags::EMPTY,
        || {
            vec![
                Response::AddHeader {
                    name: "X-Added".into(),
                    value: "added".into(),
                },
                Response::InsertHeader {
                    index: 0,
                    name: "X-Top".into(),
                    value: "top".into(),
                },
                Response::InsertHeader {
                    index: 2,
                    name: "X-Second".into(),
                    value: "second".into(),
                },
                Response::ChangeHeader {
                    index: 1,
                    name: "x-tag".into(),
                    value: "".into(),
                },
                Response::ChangeHeader {
                    index: 2,
                    name: "X-TAG".into(),
                    value: "changed".into(),
                },
                Response::ChangeHeader {
                    index: 1,
                    name: "Subject".into(),
                    value: "new subject".into(),
                },
                Response::DeleteRcpt("bob@EXAMPLE.net".into()),
                Response::AddRcpt("<dave@example.org>".into()),
                Response::AddRcptWithArgs {
                    rcpt: "<erin@example.org>".into(),
                    args: Some("NOTIFY=NEVER".into()),
                },
                Response::ChangeFrom {
                    sender: "<bounce@example.com>".into(),
                    args: Some("RET=HDRS".into()),
                },
                Response::ReplaceBody(b"new "),
                Response::ReplaceBody(b"body\r\n"),
                Response::Quarantine("looks odd".into()),
                Response::Continue,
            ]
        },
    )
}

fn header_lines(delivered: &async_milter::testing::Delivered) -> Vec<String> {
    delivered
        .headers
        .iter()
        .map(|h| format!("{}:{}", h.name, h.value))
        .collect()
}

#[async_std::test]
async fn modifications_applied_postfix() {
    let (mut client, filter) = start(Profile::postfix().with_queue_id("QID1"), editing_filter());
    client.negotiate().await.unwrap();
    client
        .connect("client.example.com", Family::Inet, 4000, "192.0.2.7")
        .await
        .unwrap();
    client.helo("helo.example.com").await.unwrap();
    let envelope = Envelope::new(
        "<alice@example.com>",
        &["<bob@example.net>", "<carol@example.net>"],
    );
    let outcome = client.send_message(&envelope, SAMPLE).await.unwrap();
    assert_eq!(outcome.verdict, Reply::Continue);
    assert_eq!(outcome.modifications.len(), 12, "REPLBODY run is one entry");
    assert_eq!(
        outcome.modifications[10],
        Modification::ReplaceBody(b"new body\r\n".to_vec())
    );
    assert_eq!(outcome.quarantined.as_deref(), Some("looks odd"));
    let delivered = outcome.delivered.unwrap();
    // Postfix: the hidden Received counts for INSHEADER; the delete shifts X-Tag indexes.
    assert_eq!(
        header_lines(&delivered),
        [
            "X-Top: top",
            "Received: from helo.example.com (client.example.com [192.0.2.7])\n\tby mx.example.net (Postfix) with ESMTP id QID1",
            "X-Second: second",
            "Received: from relay.example.org",
            "From: alice@example.com",
            "To: bob@example.net",
            "X-Tag: two",
            "X-Tag: changed",
            "Subject: new subject",
            "X-Added: added",
        ]
    );
    // Without HDR_LEADSPC the MTA puts one space after the colon of a filter's header.
    assert_eq!(delivered.header("x-added"), Some(" added"));
    assert_eq!(
        delivered.headers_named("X-Tag").collect::<Vec<_>>(),
        [" two", " changed"]
    );
    assert_eq!(delivered.sender, "<bounce@example.com>");
    assert_eq!(delivered.sender_args, ["RET=HDRS"]);
    assert_eq!(
        delivered.recipient_addresses(),
        [
            "<carol@example.net>",
            "<dave@example.org>",
            "<erin@example.org>"
        ]
    );
    assert_eq!(delivered.recipients[2].args, ["NOTIFY=NEVER"]);
    assert_eq!(delivered.body, b"new body\r\n");
    assert!(
        delivered
            .to_bytes()
            .starts_with(b"X-Top: top\r\nReceived: from helo")
    );
    client.quit().await.unwrap();
    drop(client);
    filter.await;
}

#[async_std::test]
async fn modifications_applied_sendmail() {
    let (mut client, filter) = start(Profile::sendmail(), editing_filter());
    client.negotiate().await.unwrap();
    let envelope = Envelope::new(
        "<alice@example.com>",
        &["<bob@example.net>", "<carol@example.net>"],
    );
    let outcome = client.send_message(&envelope, SAMPLE).await.unwrap();
    let delivered = outcome.delivered.unwrap();
    // Sendmail: no hidden header in the model; deleted X-Tag keeps its slot, so index 2 is
    // still the second original X-Tag.
    assert_eq!(
        header_lines(&delivered),
        [
            "X-Top: top",
            "Received: from relay.example.org",
            "X-Second: second",
            "From: alice@example.com",
            "To: bob@example.net",
            "X-Tag: changed",
            "X-Tag: three",
            "Subject: new subject",
            "X-Added: added",
        ]
    );
    assert_eq!(
        delivered.recipient_addresses(),
        [
            "<carol@example.net>",
            "<dave@example.org>",
            "<erin@example.org>"
        ]
    );
    drop(client);
    filter.await;
}

#[async_std::test]
async fn leading_space_negotiated_stores_values_verbatim() {
    let script = Script::continuing(
        Actions::ADD_HEADERS,
        ProtocolFlags::HEADER_LEADING_SPACE,
        || {
            vec![
                Response::AddHeader {
                    name: "X-A".into(),
                    value: "\tverbatim".into(),
                },
                Response::Accept,
            ]
        },
    );
    let (mut client, filter) = start(Profile::sendmail(), script);
    client.negotiate().await.unwrap();
    let outcome = client
        .send_message(
            &Envelope::new("<a@b.example>", &["<c@d.example>"]),
            b"S: x\n\nb\n",
        )
        .await
        .unwrap();
    let delivered = outcome.delivered.unwrap();
    assert_eq!(delivered.to_bytes(), b"S: x\r\nX-A:\tverbatim\r\n\r\nb\r\n");
    // The accessors give the value untrimmed, so a missing space would show.
    assert_eq!(delivered.header("x-a"), Some("\tverbatim"));
    assert_eq!(delivered.header("S"), Some(" x"));
    assert_eq!(delivered.headers[1].trimmed_value(), "verbatim");
    drop(client);
    filter.await;
}

#[async_std::test]
async fn refused_recipients_are_dropped_and_verdicts_stop_the_message() {
    let script = Script::new(
        Actions::EMPTY,
        ProtocolFlags::EMPTY,
        |command| match command {
            Command::Rcpt(envelope) if envelope.address == "<trap@example.net>" => {
                vec![Response::ReplyCode("550 5.1.1 no such user".into())]
            }
            Command::Header(header) if header.name == "Subject" => vec![Response::Reject],
            _ => vec![Response::Continue],
        },
    );
    let (mut client, filter) = start(Profile::postfix(), script);
    client.negotiate().await.unwrap();
    let envelope = Envelope::new("<a@b.example>", &["<trap@example.net>", "<ok@example.net>"]);
    let outcome = client.send_message(&envelope, SAMPLE).await.unwrap();
    assert_eq!(
        outcome.rcpts,
        [
            (
                "<trap@example.net>".to_owned(),
                Reply::ReplyCode("550 5.1.1 no such user".into())
            ),
            ("<ok@example.net>".to_owned(), Reply::Continue),
        ]
    );
    assert_eq!(outcome.headers.len(), 7);
    assert_eq!(outcome.verdict, Reply::Reject);
    assert!(outcome.delivered.is_none() && outcome.end_of_message.is_none());
    client.quit().await.unwrap();
    let record = filter.await;
    let tail: Vec<&str> = record.iter().rev().take(3).map(String::as_str).collect();
    // Postfix aborts after the rejected message and again before QUIT (no HELO here, so once).
    assert_eq!(tail, ["Q", "A", "LSubject\\x00sample\\x00"]);
}

#[async_std::test]
async fn reject_at_mail_postfix_aborts_sendmail_does_not() {
    for (profile, tail) in [(Profile::postfix(), "MAQ"), (Profile::sendmail(), "MQ")] {
        let script = Script::new(
            Actions::EMPTY,
            ProtocolFlags::EMPTY,
            |command| match command {
                Command::Mail(_) => vec![Response::Tempfail],
                _ => vec![Response::Continue],
            },
        );
        let (mut client, filter) = start(profile, script);
        client.negotiate().await.unwrap();
        let outcome = client
            .send_message(&Envelope::new("<a@b.example>", &["<c@d.example>"]), SAMPLE)
            .await
            .unwrap();
        assert_eq!(outcome.verdict, Reply::Tempfail);
        assert!(outcome.rcpts.is_empty() && outcome.delivered.is_none());
        client.quit().await.unwrap();
        let kinds: String = filter
            .await
            .iter()
            .map(|f| f.chars().next().unwrap())
            .filter(|c| *c != 'D')
            .collect();
        assert_eq!(kinds, format!("O{tail}"));
    }
}

#[async_std::test]
async fn connection_level_verdict_closes_the_session() {
    for (profile, expected) in [(Profile::postfix(), "ODC"), (Profile::sendmail(), "ODCQ")] {
        let script = Script::new(Actions::EMPTY, ProtocolFlags::EMPTY, |_| {
            vec![Response::Reject]
        });
        let (mut client, filter) = start(profile, script);
        client.negotiate().await.unwrap();
        let reply = client
            .connect("h", Family::Inet, 1, "192.0.2.1")
            .await
            .unwrap();
        assert_eq!(reply, Reply::Reject);
        assert!(client.is_closed());
        assert!(matches!(
            client.helo("h").await,
            Err(ClientError::SessionClosed)
        ));
        client.quit().await.unwrap();
        // The filter sees EOF even though the client object is still alive.
        let kinds: String = filter
            .await
            .iter()
            .map(|f| f.chars().next().unwrap())
            .collect();
        assert_eq!(kinds, expected);
        drop(client);
    }
}

#[async_std::test]
async fn requested_macro_lists_are_honoured() {
    for (profile, expected_rcpt, expected_eom) in [
        (
            Profile::postfix(),
            macros(b'R', &[("{rcpt_addr}", "c@d.example")]),
            // Postfix ignores the empty EOM list and keeps its default.
            Some(macros(b'E', &[("i", "4XBQ1F2K3Lz9")])),
        ),
        (
            Profile::sendmail(),
            macros(b'R', &[("{rcpt_addr}", "c@d.example")]),
            // Sendmail uses a requested EOM list only together with an EOH list: default here.
            Some(macros(
                b'E',
                &[("{msg_id}", "<63QAbc0a012345@mx.example.net>")],
            )),
        ),
    ] {
        let mut script = Script::continuing(Actions::EMPTY, ProtocolFlags::EMPTY, || {
            vec![Response::Continue]
        });
        script.macros = vec![
            (MacroStage::Rcpt, "{rcpt_addr}"),
            (MacroStage::EndOfMessage, ""),
        ];
        let (mut client, filter) = start(profile, script);
        let negotiated = client.negotiate().await.unwrap();
        assert_eq!(
            negotiated.requested_macros(MacroStage::Rcpt),
            Some("{rcpt_addr}")
        );
        client
            .send_message(
                &Envelope::new("<a@b.example>", &["<c@d.example>"]),
                b"\nbody\n",
            )
            .await
            .unwrap();
        drop(client);
        let record = filter.await;
        assert!(record.contains(&expected_rcpt), "{record:?}");
        assert_eq!(
            record.iter().find(|f| f.starts_with("DE")).cloned(),
            expected_eom
        );
    }
}

#[async_std::test]
async fn sendmail_empty_eom_list_with_eoh_list_suppresses_eom_macros() {
    let mut script = Script::continuing(Actions::EMPTY, ProtocolFlags::EMPTY, || {
        vec![Response::Continue]
    });
    script.macros = vec![
        (MacroStage::EndOfHeaders, "j"),
        (MacroStage::EndOfMessage, ""),
    ];
    let (mut client, filter) = start(Profile::sendmail(), script);
    client.negotiate().await.unwrap();
    client
        .send_message(
            &Envelope::new("<a@b.example>", &["<c@d.example>"]),
            b"A: b\n\n",
        )
        .await
        .unwrap();
    drop(client);
    let record = filter.await;
    assert!(record.contains(&macros(b'N', &[("j", "mx.example.net")])));
    assert!(!record.iter().any(|f| f.starts_with("DE")));
}

#[async_std::test]
async fn silent_filter_times_out() {
    let script = Script::new(
        Actions::EMPTY,
        ProtocolFlags::EMPTY,
        |command| match command {
            Command::Helo(_) => vec![],
            _ => vec![Response::Continue],
        },
    );
    let profile = Profile::postfix().with_timeout(Duration::from_millis(300));
    let (mut client, filter) = start(profile, script);
    client.negotiate().await.unwrap();
    let started = Instant::now();
    let error = client.helo("h").await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        matches!(
            error,
            ClientError::Timeout {
                command: CommandKind::Helo,
                ..
            }
        ),
        "{error}"
    );
    assert!(elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(3));
    drop(client);
    filter.await;
}

#[async_std::test]
async fn progress_is_consumed_and_restarts_the_wait() {
    let script = Script::new(
        Actions::EMPTY,
        ProtocolFlags::EMPTY,
        |command| match command {
            Command::EndOfMessage(_) => {
                vec![Response::Progress, Response::Progress, Response::Accept]
            }
            Command::Helo(_) => vec![Response::Progress, Response::Continue],
            _ => vec![Response::Continue],
        },
    );
    let (mut client, filter) = start(Profile::postfix(), script);
    client.negotiate().await.unwrap();
    assert_eq!(client.helo("h").await.unwrap(), Reply::Continue);
    client.mail("<a@b.example>", &[]).await.unwrap();
    let eom = client.end_of_message().await.unwrap();
    assert_eq!((eom.reply, eom.progress), (Reply::Accept, 2));
    drop(client);
    filter.await;

    // Sendmail accepts PROGRESS only at end of message.
    let script = Script::new(Actions::EMPTY, ProtocolFlags::EMPTY, |_| {
        vec![Response::Progress, Response::Continue]
    });
    let (mut client, filter) = start(Profile::sendmail(), script);
    client.negotiate().await.unwrap();
    assert!(matches!(
        client.helo("h").await,
        Err(ClientError::UnexpectedResponse {
            command: CommandKind::Helo,
            response: b'p'
        })
    ));
    drop(client);
    filter.await;
}

/// Runs a one-message session against a filter answering `respond` and returns the error.
async fn failing(
    profile: Profile,
    actions: Actions,
    protocol: ProtocolFlags,
    respond: impl FnMut(&Command<'_>) -> Vec<Response<'static>> + Send + 'static,
) -> ClientError {
    let (mut client, filter) = start(profile, Script::new(actions, protocol, respond));
    client.negotiate().await.unwrap();
    let result = async {
        client.helo("h").await?;
        task::sleep(Duration::from_millis(50)).await;
        client
            .send_message(
                &Envelope::new("<a@b.example>", &["<c@d.example>"]),
                b"A: b\n\nc\n",
            )
            .await?;
        client.quit().await
    }
    .await;
    drop(client);
    filter.await;
    result.unwrap_err()
}

#[async_std::test]
async fn responses_not_allowed_are_errors() {
    let error = failing(
        Profile::postfix(),
        Actions::V6,
        ProtocolFlags::EMPTY,
        |command| match command {
            Command::Data => vec![Response::AddHeader {
                name: "X".into(),
                value: "y".into(),
            }],
            _ => vec![Response::Continue],
        },
    )
    .await;
    assert!(matches!(
        error,
        ClientError::UnexpectedResponse {
            command: CommandKind::Data,
            response: b'h'
        }
    ));

    let error = failing(
        Profile::postfix(),
        Actions::EMPTY,
        ProtocolFlags::EMPTY,
        |command| match command {
            Command::Body(_) => vec![Response::Skip],
            _ => vec![Response::Continue],
        },
    )
    .await;
    assert!(
        matches!(
            error,
            ClientError::UnexpectedResponse { response: b's', .. }
        ),
        "SKIP without SKIP negotiated: {error}"
    );

    let error = failing(
        Profile::postfix(),
        Actions::EMPTY,
        ProtocolFlags::EMPTY,
        |command| match command {
            Command::Helo(_) => vec![Response::Discard],
            _ => vec![Response::Continue],
        },
    )
    .await;
    assert!(matches!(
        error,
        ClientError::UnexpectedResponse { response: b'd', .. }
    ));

    let error = failing(
        Profile::postfix(),
        Actions::EMPTY,
        ProtocolFlags::EMPTY,
        |command| match command {
            Command::Mail(_) => vec![Response::ReplyCode("250 ok".into())],
            _ => vec![Response::Continue],
        },
    )
    .await;
    assert!(matches!(error, ClientError::InvalidReplyCode(_)));
}

#[async_std::test]
async fn modification_checks_at_end_of_message() {
    let error = failing(
        Profile::postfix(),
        Actions::ADD_HEADERS,
        ProtocolFlags::EMPTY,
        |command| match command {
            Command::EndOfMessage(_) => vec![
                Response::DeleteRcpt("<c@d.example>".into()),
                Response::Continue,
            ],
            _ => vec![Response::Continue],
        },
    )
    .await;
    assert!(matches!(
        error,
        ClientError::ActionNotNegotiated { response: b'-', .. }
    ));

    let error = failing(
        Profile::postfix(),
        Actions::V6,
        ProtocolFlags::EMPTY,
        |command| match command {
            Command::EndOfMessage(_) => vec![
                Response::ReplaceBody(b"a"),
                Response::AddHeader {
                    name: "X".into(),
                    value: "y".into(),
                },
                Response::ReplaceBody(b"b"),
                Response::Continue,
            ],
            _ => vec![Response::Continue],
        },
    )
    .await;
    assert!(matches!(error, ClientError::SplitBodyReplacement));
}

#[async_std::test]
async fn unsolicited_answers_are_errors() {
    // A reply to HELO although NR_HELO was negotiated.
    let error = failing(
        Profile::postfix(),
        Actions::EMPTY,
        ProtocolFlags::NR_HELO,
        |_| vec![Response::Continue],
    )
    .await;
    assert!(
        matches!(
            error,
            ClientError::Unsolicited {
                response: Some(b'c')
            }
        ),
        "{error}"
    );

    // Two answers to one command.
    let error = failing(
        Profile::postfix(),
        Actions::EMPTY,
        ProtocolFlags::EMPTY,
        |command| match command {
            Command::Helo(_) => vec![Response::Continue, Response::Continue],
            _ => vec![Response::Continue],
        },
    )
    .await;
    assert!(matches!(error, ClientError::Unsolicited { .. }), "{error}");
}

#[async_std::test]
async fn negotiation_is_checked() {
    async fn negotiate(profile: Profile, options: OptNeg) -> Result<(), ClientError> {
        let mut script = Script::new(options.actions, options.protocol, |_| vec![]);
        script.options = options;
        let (mut client, filter) = start(profile, script);
        let result = client.negotiate().await.map(drop);
        drop(client);
        filter.await;
        result
    }
    let v = |version, actions, protocol| OptNeg {
        version,
        actions: Actions::from_bits(actions),
        protocol: ProtocolFlags::from_bits(protocol),
    };
    let offer_v4 = Profile::postfix().with_version(4);
    assert_eq!(offer_v4.offer.protocol.bits(), 0x37F);
    assert!(matches!(
        negotiate(offer_v4.clone(), v(6, 0, 0)).await,
        Err(ClientError::Negotiation(NegotiationError::VersionTooHigh {
            offered: 4,
            replied: 6
        }))
    ));
    assert!(negotiate(offer_v4, v(4, 0, 0)).await.is_ok());
    assert!(matches!(
        negotiate(Profile::postfix(), v(1, 0, 0)).await,
        Err(ClientError::Negotiation(NegotiationError::VersionTooLow(1)))
    ));
    let few_actions = Profile::sendmail().with_actions(Actions::ADD_HEADERS);
    assert!(matches!(
        negotiate(few_actions, v(6, 0x11, 0)).await,
        Err(ClientError::Negotiation(NegotiationError::ActionsNotOffered(a))) if a == Actions::CHANGE_HEADERS
    ));
    // Protocol bits outside the offer: Sendmail refuses, Postfix does not check.
    let narrow = |p: Profile| p.with_protocol(ProtocolFlags::V2);
    assert!(matches!(
        negotiate(narrow(Profile::sendmail()), v(6, 0, 0x1000)).await,
        Err(ClientError::Negotiation(
            NegotiationError::ProtocolNotOffered(_)
        ))
    ));
    assert!(
        negotiate(narrow(Profile::postfix()), v(6, 0, 0x1000))
            .await
            .is_ok()
    );
}

#[async_std::test]
async fn version_gating_suppresses_data_and_unknown() {
    let mut script = Script::continuing(Actions::EMPTY, ProtocolFlags::EMPTY, || {
        vec![Response::Continue]
    });
    script.options.version = 2;
    let (mut client, filter) = start(Profile::postfix().with_version(2), script);
    let negotiated = client.negotiate().await.unwrap();
    assert_eq!(negotiated.version, 2);
    assert_eq!(client.unknown("XFOO").await.unwrap(), Reply::NotSent);
    assert_eq!(client.data().await.unwrap(), Reply::NotSent);
    drop(client);
    let kinds: String = filter
        .await
        .iter()
        .map(|f| f.chars().next().unwrap())
        .collect();
    // Postfix still sends the MACRO packets for UNKNOWN and DATA.
    assert_eq!(kinds, "ODD");
}

#[async_std::test]
async fn postfix_repeated_helo_is_followed_by_abort() {
    let script = Script::continuing(Actions::EMPTY, ProtocolFlags::EMPTY, Vec::new);
    let (mut client, filter) = start(
        Profile::postfix().without_macro_list(CommandKind::Helo),
        script,
    );
    client.negotiate().await.unwrap();
    client.helo("one").await.unwrap();
    client.helo("two").await.unwrap();
    client.quit().await.unwrap();
    let kinds: String = filter
        .await
        .iter()
        .map(|f| f.chars().next().unwrap())
        .collect();
    assert_eq!(kinds, "OHHAAQ");
}

#[async_std::test]
async fn accept_at_rcpt_delivers_unmodified_to_all_recipients() {
    let script = Script::new(
        Actions::EMPTY,
        ProtocolFlags::EMPTY,
        |command| match command {
            Command::Rcpt(_) => vec![Response::Accept],
            _ => vec![Response::Continue],
        },
    );
    let (mut client, filter) = start(Profile::sendmail(), script);
    client.negotiate().await.unwrap();
    let envelope = Envelope::new("<a@b.example>", &["<c@d.example>", "<e@f.example>"]);
    let outcome = client.send_message(&envelope, SAMPLE).await.unwrap();
    assert_eq!(outcome.verdict, Reply::Accept);
    assert_eq!(outcome.rcpts[1].1, Reply::NotSent);
    let delivered = outcome.delivered.unwrap();
    assert_eq!(
        delivered.recipient_addresses(),
        ["<c@d.example>", "<e@f.example>"]
    );
    assert_eq!(delivered.header("subject"), Some(" sample"));
    assert_eq!(client.profile().kind, MtaKind::Sendmail);
    drop(client);
    filter.await;
}

#[async_std::test]
async fn filter_closing_mid_message_is_an_error() {
    let (mta, filter) = UnixStream::pair().unwrap();
    let handle = task::spawn(async move {
        let mut stream = filter;
        let mut buf = [0; 64];
        let _ = stream.read(&mut buf).await;
        let mut out = Vec::new();
        Response::OptNeg(OptNegReply::new(
            OptNeg {
                version: 6,
                actions: Actions::EMPTY,
                protocol: ProtocolFlags::EMPTY,
            },
            &[],
        ))
        .encode(&mut out)
        .unwrap();
        stream.write_all(&out).await.unwrap();
        // Then hang up.
    });
    let mut client = MilterClient::new(mta, Profile::postfix());
    client.negotiate().await.unwrap();
    handle.await;
    let error = client.helo("h").await.unwrap_err();
    assert!(
        matches!(error, ClientError::Closed { .. } | ClientError::Io(_)),
        "{error}"
    );
}

/// A filter served by this crate: stamps the message and accepts it.
async fn stamp(
    session: &mut async_milter::Session,
) -> Result<async_milter::Verdict, async_milter::Error> {
    session.end_of_message().await?;
    session.add_header("X-Stamped", "yes")?;
    Ok(async_milter::Verdict::Accept)
}

/// Serves [`stamp`] on `spec` until the returned sender fires (or is dropped).
async fn serve_stamp(
    spec: &str,
) -> (
    async_milter::server::SocketSpec,
    futures::channel::oneshot::Sender<()>,
    JoinHandle<std::io::Result<()>>,
) {
    let server = async_milter::server::Server::bind(spec).await.unwrap();
    let bound = server.local_spec().clone();
    let (stop, stopped) = futures::channel::oneshot::channel::<()>();
    let filter = async_milter::session::FnFilter::new(stamp);
    (
        bound,
        stop,
        task::spawn(server.serve_until(filter, stopped)),
    )
}

/// One whole session over a client from [`connect`]: the real filter's header arrives.
async fn stamped_session(spec: &str, profile: Profile) {
    let mut client = connect(spec, profile).await.unwrap();
    client.negotiate().await.unwrap();
    client
        .connect("client.example.com", Family::Inet, 4000, "192.0.2.1")
        .await
        .unwrap();
    client.helo("client.example.com").await.unwrap();
    let outcome = client.send_message(&envelope(), SAMPLE).await.unwrap();
    assert_eq!(outcome.verdict, Reply::Accept, "{spec}");
    assert_eq!(
        outcome.delivered.unwrap().header("X-Stamped"),
        Some(" yes"),
        "{spec}"
    );
    client.quit().await.unwrap();
}

#[async_std::test]
async fn connects_by_socket_spec_over_tcp_and_unix_sockets() {
    let (bound, stop, served) = serve_stamp("inet:0@127.0.0.1").await;
    let async_milter::server::SocketSpec::Inet(addr) = bound else {
        panic!("bound TCP");
    };
    let port = addr.port();
    for spec in [
        format!("inet:{port}@127.0.0.1"),
        format!("inet:127.0.0.1:{port}"),
        format!("inet:{port}@localhost"),
        format!("127.0.0.1:{port}"),
        bound.to_string(),
    ] {
        stamped_session(&spec, Profile::postfix()).await;
    }
    stop.send(()).unwrap();
    served.await.unwrap();

    let dir = std::env::temp_dir().join(format!("async-milter-kit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("filter.sock");
    let path = path.to_str().unwrap();
    let (bound, stop, served) = serve_stamp(&format!("unix:{path}")).await;
    assert_eq!(bound.to_string(), format!("unix:{path}"));
    for spec in [
        format!("unix:{path}"),
        format!("local:{path}"),
        path.to_owned(),
    ] {
        stamped_session(&spec, Profile::sendmail()).await;
    }
    stop.send(()).unwrap();
    served.await.unwrap();

    // Nothing listens there any more; and a spec that does not parse.
    let error = connect(&format!("unix:{path}"), Profile::postfix())
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::Io(_)), "{error}");
    let error = connect("inet:nonsense", Profile::postfix())
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::InvalidSpec(_)), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// What a real filter saw in one call: client host, address, port, HELO name, `_` macro.
type SeenClient = (String, String, u16, Option<String>, Option<String>);

/// A filter served by this crate that records the SMTP client of every call and stamps the
/// message with it.
struct ClientRecorder {
    seen: std::sync::Arc<std::sync::Mutex<Vec<SeenClient>>>,
}

impl async_milter::Filter for ClientRecorder {
    async fn filter(
        &self,
        session: &mut async_milter::Session,
    ) -> Result<async_milter::Verdict, async_milter::Error> {
        session.end_of_message().await?;
        let client = session.client().expect("CONNECT was sent");
        let host = client.hostname.to_string();
        let seen = (
            host.clone(),
            client.address.to_string(),
            client.port,
            session.helo_name().map(ToString::to_string),
            session.macro_str("_").map(str::to_owned),
        );
        let mut calls = self.seen.lock().unwrap();
        calls.push(seen);
        session.add_header("X-Client", &host)?;
        session.add_header("X-Call", calls.len().to_string())?;
        Ok(async_milter::Verdict::Accept)
    }
}

#[async_std::test]
async fn quit_new_connection_starts_a_second_session_on_the_same_stream() {
    for profile in [Profile::postfix(), Profile::sendmail()] {
        let kind = profile.kind;
        let seen = std::sync::Arc::default();
        let filter = ClientRecorder {
            seen: std::sync::Arc::clone(&seen),
        };
        let mut client = async_milter::testing::in_process(filter, profile).unwrap();
        client.negotiate().await.unwrap();

        // First SMTP session: one message.
        let reply = client
            .connect("first.example.com", Family::Inet, 1111, "192.0.2.1")
            .await
            .unwrap();
        assert_eq!(reply, Reply::Continue, "{kind:?}");
        client.helo("helo.first.example.com").await.unwrap();
        let outcome = client.send_message(&envelope(), SAMPLE).await.unwrap();
        let delivered = outcome.delivered.expect("accepted");
        assert_eq!(delivered.header("X-Client"), Some(" first.example.com"));
        assert_eq!(delivered.header("X-Call"), Some(" 1"));

        client.quit_new_connection().await.unwrap();
        assert!(
            !client.is_closed(),
            "{kind:?}: the milter connection stays open"
        );

        // Second SMTP session on the same milter connection, no new OPTNEG: a message
        // before HELO (the first session's HELO must be gone), then one after.
        let reply = client
            .connect("second.example.org", Family::Inet6, 2222, "2001:db8::2")
            .await
            .unwrap();
        assert_eq!(reply, Reply::Continue, "{kind:?}");
        let outcome = client.send_message(&envelope(), SAMPLE).await.unwrap();
        let delivered = outcome.delivered.expect("accepted");
        assert_eq!(delivered.header("X-Client"), Some(" second.example.org"));
        assert_eq!(delivered.header("X-Call"), Some(" 2"));
        client.helo("helo.second.example.org").await.unwrap();
        let outcome = client.send_message(&envelope(), SAMPLE).await.unwrap();
        assert_eq!(outcome.verdict, Reply::Accept, "{kind:?}");
        assert_eq!(
            outcome.delivered.expect("accepted").header("X-Call"),
            Some(" 3")
        );
        client.quit().await.unwrap();

        // Sendmail sends IPv6 uncompressed with its `IPv6:` prefix, which the filter strips.
        let (address, wire) = if kind == MtaKind::Postfix {
            ("2001:db8::2", "2001:db8::2".to_owned())
        } else {
            let full = "2001:db8:0:0:0:0:0:2";
            (full, format!("IPv6:{full}"))
        };
        let second = |helo: Option<&str>| {
            (
                "second.example.org".to_owned(),
                address.to_owned(),
                2222,
                helo.map(str::to_owned),
                Some(format!("second.example.org [{wire}]")),
            )
        };
        assert_eq!(
            *seen.lock().unwrap(),
            [
                (
                    "first.example.com".to_owned(),
                    "192.0.2.1".to_owned(),
                    1111,
                    Some("helo.first.example.com".to_owned()),
                    Some("first.example.com [192.0.2.1]".to_owned()),
                ),
                second(None),
                second(Some("helo.second.example.org")),
            ],
            "{kind:?}"
        );
    }
}

#[async_std::test]
async fn quit_new_connection_bytes() {
    let script = Script::continuing(Actions::EMPTY, ProtocolFlags::EMPTY, || {
        vec![Response::Continue]
    });
    let (mut client, filter) = start(Profile::sendmail(), script);
    client.negotiate().await.unwrap();
    client
        .connect("a.example", Family::Inet, 1, "192.0.2.1")
        .await
        .unwrap();
    client.mail("<a@example.com>", &[]).await.unwrap();
    // An open transaction is aborted first; QUIT_NC gets no reply.
    client.quit_new_connection().await.unwrap();
    client
        .connect("b.example", Family::Inet, 2, "192.0.2.2")
        .await
        .unwrap();
    client.quit().await.unwrap();
    let kinds: String = filter
        .await
        .iter()
        .map(|f| f.chars().next().unwrap())
        .collect();
    assert_eq!(kinds, "ODCDMAKDCQ");
}
