//! Behaviour contract, edits: every edit type and the exact packets it puts on the wire, the
//! flush order, body replacement split into frames of at most 65535 bytes, validation when
//! queued (actions not negotiated, invalid names and values), and edits dropped when the
//! message is not passed. Real server on loopback, both presets, every runtime (see
//! `support`).

mod support;

use async_milter::proto::Actions;
use async_milter::session::HeaderPosition;
use async_milter::testing::{Envelope, MtaKind, Profile, Reply};
use async_milter::{Needs, Verdict};
use support::{
    MESSAGE, Probe, appended, envelope, filter, frame, name, on_every_runtime, profiles, report,
    run, serve,
};

const EDIT_MESSAGE: &[u8] = b"From: a@example.com\r\nSubject: s\r\nX-Mark: one\r\nX-Mark: two\r\nTo: bob@example.net\r\n\r\nold body\r\n";

fn indexed(index: u32, rest: &[u8]) -> Vec<u8> {
    let mut payload = index.to_be_bytes().to_vec();
    payload.extend_from_slice(rest);
    payload
}

on_every_runtime!(every_edit_is_flushed_in_protocol_order_with_exact_bytes);
// One message with every edit, then its packets byte by byte: long, but one story.
#[allow(clippy::too_many_lines)]
fn every_edit_is_flushed_in_protocol_order_with_exact_bytes() {
    run(async {
        for profile in profiles() {
            let harness = serve(filter(|s| {
                Box::pin(async move {
                    s.end_of_message().await?;
                    let headers = s.headers().to_vec();
                    let subject = headers[1].handle;
                    let (mark1, mark2) = (headers[2].handle, headers[3].handle);
                    let to = headers[4].handle;
                    // Queued in an order unlike the flush order.
                    s.quarantine("held for review")?;
                    s.add_header("X-Added", "1")?;
                    s.replace_body("new body\r\n")?;
                    s.delete_header(mark2)?;
                    s.insert_header(HeaderPosition::Before(subject), "X-Before-Subject", "b")?;
                    s.change_header(mark1, "changed")?;
                    s.add_recipient("<new@example.net>", None)?;
                    s.add_recipient("<par@example.net>", Some("NOTIFY=NEVER"))?;
                    s.remove_recipient("<bob@example.net>")?;
                    s.insert_header(HeaderPosition::Top, "X-Top", "t")?;
                    s.change_sender("<bounce@example.com>", Some("RET=HDRS"))?;
                    s.insert_header(HeaderPosition::After(to), "X-After-To", "a")?;
                    s.add_header("X-Added", "2")?;
                    Ok(Verdict::Accept)
                })
            }))
            .await;
            let who = name(&profile);
            let postfix = profile.kind == MtaKind::Postfix;
            let (mut client, log) = harness.tapped(profile).await;
            support::greet(&mut client).await;
            let outcome = client
                .send_message(&envelope(), EDIT_MESSAGE)
                .await
                .unwrap();
            let frames = log.take();
            let eom_start = frames
                .iter()
                .position(|(kind, _)| *kind == b'e')
                .expect("a sender change");
            // Just above the filter's header p is p + 1 on Postfix (its own Received is
            // counted) and p + 8 on Sendmail (its header templates are).
            let before = |p: u32| if postfix { p + 1 } else { p + 8 };
            let add = |value: &[u8]| {
                let mut rest = b"X-Added\0".to_vec();
                rest.extend_from_slice(value);
                rest.push(0);
                if postfix {
                    frame(b'h', &rest)
                } else {
                    frame(b'i', &indexed(0x7fff_fffe, &rest))
                }
            };
            assert_eq!(
                frames[eom_start..],
                [
                    frame(b'e', b"<bounce@example.com>\0RET=HDRS\0"),
                    frame(b'-', b"<bob@example.net>\0"),
                    frame(b'+', b"<new@example.net>\0"),
                    frame(b'2', b"<par@example.net>\0NOTIFY=NEVER\0"),
                    frame(b'i', &indexed(before(5), b"X-After-To\0a\0")),
                    frame(b'i', &indexed(before(1), b"X-Before-Subject\0b\0")),
                    frame(b'i', &indexed(0, b"X-Top\0t\0")),
                    frame(b'm', &indexed(2, b"X-Mark\0\0")),
                    frame(b'm', &indexed(1, b"X-Mark\0changed\0")),
                    add(b"1"),
                    add(b"2"),
                    frame(b'b', b"new body\r\n"),
                    frame(b'q', b"held for review\0"),
                    frame(b'a', b""),
                ],
                "{who}"
            );
            assert_eq!(outcome.verdict, Reply::Accept, "{who}");
            assert_eq!(outcome.quarantined.as_deref(), Some("held for review"));
            let delivered = outcome.delivered.expect("delivered");
            assert_eq!(delivered.sender, "<bounce@example.com>", "{who}");
            assert_eq!(delivered.sender_args, ["RET=HDRS"], "{who}");
            assert_eq!(
                delivered.recipient_addresses(),
                [
                    "<carol@example.net>",
                    "<new@example.net>",
                    "<par@example.net>"
                ],
                "{who}"
            );
            assert_eq!(delivered.body, b"new body\r\n", "{who}");
            if postfix {
                // The kit models Postfix's header list (its own Received: included).
                let lines: Vec<String> = delivered
                    .headers
                    .iter()
                    .map(|h| format!("{}:{}", h.name, h.value.lines().next().unwrap()))
                    .collect();
                assert_eq!(
                    lines,
                    [
                        "X-Top: t",
                        "Received: from client.example.com (client.example.com [192.0.2.1])",
                        "From: a@example.com",
                        "X-Before-Subject: b",
                        "Subject: s",
                        "X-Mark: changed",
                        "To: bob@example.net",
                        "X-After-To: a",
                        "X-Added: 1",
                        "X-Added: 2",
                    ]
                );
            }
            client.quit().await.expect("quit");
            harness.stop().await.expect("server stops");
        }
    });
}

/// `size` bytes of a, b, c, … z, a, …
fn pattern(size: usize) -> Vec<u8> {
    (b'a'..=b'z').cycle().take(size).collect()
}

fn sizes(frames: &[(u8, Vec<u8>)], kind: u8) -> Vec<usize> {
    frames
        .iter()
        .filter(|(k, _)| *k == kind)
        .map(|(_, p)| p.len())
        .collect()
}

on_every_runtime!(a_replaced_body_is_split_into_frames_of_at_most_65535_bytes);
fn a_replaced_body_is_split_into_frames_of_at_most_65535_bytes() {
    run(async {
        for profile in profiles() {
            // Whole replacements of several sizes, and a body rewritten chunk by chunk.
            let harness = serve(filter(|s| {
                Box::pin(async move {
                    let subject = s.next_header().await?.expect("subject").value;
                    let size: usize = subject.to_str().unwrap().parse().unwrap_or(0);
                    if subject == "rewrite" {
                        while let Some(chunk) = s.next_body_chunk().await? {
                            s.append_body(chunk.to_ascii_uppercase())?;
                        }
                    } else {
                        s.end_of_message().await?;
                        s.replace_body("this replacement is replaced")?;
                        let body = pattern(size);
                        s.replace_body(body)?;
                    }
                    Ok(Verdict::Continue)
                })
            }))
            .await;
            let who = name(&profile);
            let (mut client, log) = harness.tapped(profile).await;
            support::greet(&mut client).await;
            for (size, expected) in [
                (0_usize, vec![0]),
                (10, vec![10]),
                (65_535, vec![65_535]),
                (65_536, vec![65_535, 1]),
                (200_000, vec![65_535, 65_535, 65_535, 3_395]),
            ] {
                log.take();
                let message = format!("Subject: {size}\r\n\r\nold\r\n");
                let outcome = client
                    .send_message(&envelope(), message.as_bytes())
                    .await
                    .unwrap();
                assert_eq!(sizes(&log.take(), b'b'), expected, "{who} {size}");
                let body = pattern(size);
                assert_eq!(outcome.delivered.unwrap().body, body, "{who} {size}");
            }
            log.take();
            let mut original = Vec::new();
            for i in 0..4000 {
                original.extend_from_slice(format!("line {i} of a long body\r\n").as_bytes());
            }
            let mut message = b"Subject: rewrite\r\n\r\n".to_vec();
            message.extend_from_slice(&original);
            let outcome = client.send_message(&envelope(), &message).await.unwrap();
            assert!(
                outcome.body.len() > 1,
                "{who}: the body came in several chunks"
            );
            let frame_sizes = sizes(&log.take(), b'b');
            assert!(frame_sizes.iter().all(|&n| n <= 65_535), "{who}");
            assert_eq!(frame_sizes.iter().sum::<usize>(), original.len(), "{who}");
            assert_eq!(
                outcome.delivered.unwrap().body,
                original.to_ascii_uppercase(),
                "{who}"
            );
            client.quit().await.expect("quit");
            harness.stop().await.expect("server stops");
        }
    });
}

/// Tries every edit and reports each result.
fn try_every_edit(s: &mut async_milter::Session) -> Vec<String> {
    let handle = s.headers()[0].handle;
    vec![
        format!("add {:?}", s.add_header("X-A", "1")),
        format!(
            "insert {:?}",
            s.insert_header(HeaderPosition::Top, "X-I", "1")
        ),
        format!("change {:?}", s.change_header(handle, "new")),
        format!("delete {:?}", s.delete_header(handle)),
        format!("body {:?}", s.replace_body("x")),
        format!("append {:?}", s.append_body("x")),
        format!("sender {:?}", s.change_sender("<s@example.com>", None)),
        format!("rcpt {:?}", s.add_recipient("<r@example.com>", None)),
        format!(
            "rcpt args {:?}",
            s.add_recipient("<r@example.com>", Some("NOTIFY=NEVER"))
        ),
        format!("remove {:?}", s.remove_recipient("<bob@example.net>")),
        format!("quarantine {:?}", s.quarantine("why")),
    ]
}

on_every_runtime!(edits_not_negotiated_are_refused_when_queued);
fn edits_not_negotiated_are_refused_when_queued() {
    run(async {
        let only_headers = Needs::everything().optional_actions(Actions::ADD_HEADERS);
        let all = Needs::everything();
        let offer_without = Actions::V6 - Actions::QUARANTINE - Actions::CHANGE_BODY;
        let cases: Vec<(Profile, Needs, Vec<&str>)> = profiles()
            .into_iter()
            .flat_map(|p| {
                [
                    // The filter declared only header additions.
                    (
                        p.clone(),
                        only_headers.clone(),
                        vec![
                            "add Ok(())",
                            "insert Ok(())",
                            "change Err(Unavailable(NotNegotiated(Actions(CHANGE_HEADERS))))",
                            "delete Err(Unavailable(NotNegotiated(Actions(CHANGE_HEADERS))))",
                            "body Err(Unavailable(NotNegotiated(Actions(CHANGE_BODY))))",
                            "append Err(Unavailable(NotNegotiated(Actions(CHANGE_BODY))))",
                            "sender Err(Unavailable(NotNegotiated(Actions(CHANGE_FROM))))",
                            "rcpt Err(Unavailable(NotNegotiated(Actions(ADD_RCPT))))",
                            "rcpt args Err(Unavailable(NotNegotiated(Actions(ADD_RCPT_WITH_ARGS))))",
                            "remove Err(Unavailable(NotNegotiated(Actions(DELETE_RCPT))))",
                            "quarantine Err(Unavailable(NotNegotiated(Actions(QUARANTINE))))",
                        ],
                    ),
                    // The MTA does not offer quarantine and body replacement.
                    (
                        p.with_actions(offer_without),
                        all.clone(),
                        vec![
                            "add Ok(())",
                            "insert Ok(())",
                            "change Ok(())",
                            "delete Ok(())",
                            "body Err(Unavailable(NotNegotiated(Actions(CHANGE_BODY))))",
                            "append Err(Unavailable(NotNegotiated(Actions(CHANGE_BODY))))",
                            "sender Ok(())",
                            "rcpt Ok(())",
                            "rcpt args Ok(())",
                            "remove Ok(())",
                            "quarantine Err(Unavailable(NotNegotiated(Actions(QUARANTINE))))",
                        ],
                    ),
                ]
            })
            .collect();
        for (profile, needs, expected) in cases {
            let probe = Probe::new();
            let tx = probe.sender();
            let harness = serve(
                filter(move |s| {
                    let tx = tx.clone();
                    Box::pin(async move {
                        s.end_of_message().await?;
                        report(&tx, try_every_edit(s));
                        Ok(Verdict::Accept)
                    })
                })
                .with_needs(needs),
            )
            .await;
            let who = name(&profile);
            let mut client = harness.client(profile).await;
            let outcome = client.send_message(&envelope(), MESSAGE).await.unwrap();
            assert_eq!(probe.next().await, expected, "{who}");
            // What was accepted went out; the kit refuses any packet not negotiated.
            let accepted = expected.iter().filter(|e| e.ends_with("Ok(())")).count();
            assert_eq!(outcome.modifications.len(), accepted, "{who}");
            assert_eq!(outcome.verdict, Reply::Accept, "{who}");
            client.quit().await.expect("quit");
            harness.stop().await.expect("server stops");
        }
    });
}

on_every_runtime!(invalid_names_and_values_are_refused_when_queued);
fn invalid_names_and_values_are_refused_when_queued() {
    run(async {
        for profile in profiles() {
            let probe = Probe::new();
            let tx = probe.sender();
            let harness = serve(filter(move |s| {
                let tx = tx.clone();
                Box::pin(async move {
                    s.end_of_message().await?;
                    let handle = s.headers()[0].handle;
                    let results = vec![
                        s.add_header("", "v"),
                        s.add_header("Bad Name", "v"),
                        s.add_header("X:Colon", "v"),
                        s.add_header("X-Ünicode", "v"),
                        s.add_header("X-Nul", "a\0b"),
                        s.add_header("X-Bare-Lf", "a\nb"),
                        s.add_header("X-Crlf-No-Fold", "a\r\nb"),
                        s.insert_header(HeaderPosition::Top, "Bad Name", "v"),
                        s.change_header(handle, ""),
                        s.change_header(handle, "a\nb"),
                        s.quarantine(""),
                        s.add_recipient("", None),
                        s.remove_recipient(""),
                        s.change_sender("<a\0b>", None),
                    ];
                    let refused = results
                        .iter()
                        .filter(|r| {
                            matches!(
                                r,
                                Err(async_milter::Error::Misuse(
                                    async_milter::session::Misuse::InvalidValue(_)
                                        | async_milter::session::Misuse::EmptyHeaderValue
                                ))
                            )
                        })
                        .count();
                    report(&tx, (refused, results.len()));
                    // Valid ones, including a folded value with CRLF (sent with LF).
                    s.add_header("X-Folded", "first\r\n\tsecond")?;
                    s.change_header(handle, "ok")?;
                    Ok(Verdict::Accept)
                })
            }))
            .await;
            let who = name(&profile);
            let mut client = harness.client(profile.clone()).await;
            let outcome = client.send_message(&envelope(), MESSAGE).await.unwrap();
            let (refused, total) = probe.next().await;
            assert_eq!(refused, total, "{who}: every invalid edit refused");
            assert_eq!(
                outcome.modifications,
                [
                    async_milter::testing::Modification::ChangeHeader {
                        index: 1,
                        name: "From".into(),
                        value: "ok".into()
                    },
                    appended(&profile, "X-Folded", "first\n\tsecond"),
                ],
                "{who}"
            );
            client.quit().await.expect("quit");
            harness.stop().await.expect("server stops");
        }
    });
}

on_every_runtime!(edits_are_dropped_when_the_message_is_not_passed);
fn edits_are_dropped_when_the_message_is_not_passed() {
    run(async {
        for profile in profiles() {
            let harness = serve(filter(|s| {
                Box::pin(async move {
                    s.end_of_message().await?;
                    s.add_header("X-Never", "sent")?;
                    s.replace_body("never")?;
                    let verdict = match s.sender().unwrap().bare().unwrap() {
                        "reject@example.com" => Verdict::Reject,
                        "tempfail@example.com" => Verdict::Tempfail,
                        "discard@example.com" => Verdict::Discard,
                        _ => Verdict::Accept,
                    };
                    Ok(verdict)
                })
            }))
            .await;
            let who = name(&profile);
            let mut client = harness.client(profile).await;
            for (sender, expected) in [
                ("<reject@example.com>", Reply::Reject),
                ("<tempfail@example.com>", Reply::Tempfail),
                ("<discard@example.com>", Reply::Discard),
            ] {
                let outcome = client
                    .send_message(&Envelope::new(sender, &["<b@example.net>"]), MESSAGE)
                    .await
                    .unwrap();
                assert_eq!(outcome.verdict, expected, "{who}");
                assert!(outcome.modifications.is_empty(), "{who} {sender}");
            }
            client.quit().await.expect("quit");
            harness.stop().await.expect("server stops");
        }
    });
}
