//! Behaviour contract, verdicts: where a verdict lands for every stage it can be returned
//! at, custom replies on the wire, per-recipient decisions and stale handles, and Skip for a
//! filter that is done before the body. Real server on loopback, both presets, every runtime
//! (see `support`).

mod support;

use std::sync::{Arc, Mutex};

use async_milter::proto::{Events, Family, ProtocolFlags, ReplyCode};
use async_milter::session::{HeaderHandle, Phase, Recipient};
use async_milter::testing::{Envelope, Modification, Outcome, Reply};
use async_milter::{Needs, Session, Verdict};
use support::{
    CLIENT_ADDR, CLIENT_HOST, MESSAGE, Probe, appended, envelope, filter, frame, name,
    on_every_runtime, profiles, report, run, serve,
};

const MESSAGE_STAGES: [Phase; 7] = [
    Phase::Mail,
    Phase::Rcpt,
    Phase::Data,
    Phase::Header,
    Phase::EndOfHeaders,
    Phase::Body,
    Phase::EndOfMessage,
];

/// Awaits the session up to `stage`.
async fn reach(s: &mut Session, stage: Phase) -> Result<(), async_milter::Error> {
    match stage {
        Phase::Start | Phase::Connect => {}
        Phase::Helo => {
            s.helo().await?;
        }
        Phase::Mail => {
            s.envelope_from().await?;
        }
        Phase::Rcpt => {
            s.next_recipient().await?;
        }
        Phase::Data => while s.next_recipient().await?.is_some() {},
        Phase::Header => {
            s.next_header().await?;
        }
        Phase::EndOfHeaders => while s.next_header().await?.is_some() {},
        Phase::Body => {
            s.next_body_chunk().await?;
        }
        Phase::EndOfMessage => s.end_of_message().await?,
        other => unreachable!("no such phase in the table: {other}"),
    }
    Ok(())
}

fn multi_line_reply() -> ReplyCode {
    ReplyCode::permanent(550, "5.7.1", "100% spam")
        .unwrap()
        .with_line("see https://example.com/why?q=%41")
        .unwrap()
}

const MULTI_LINE_WIRE: &str =
    "550-5.7.1 100%% spam\r\n550 5.7.1 see https://example.com/why?q=%%41";

/// The verdicts to try, with the reply the MTA gets for each.
fn verdicts() -> Vec<(Verdict, Reply)> {
    vec![
        (Verdict::Reject, Reply::Reject),
        (Verdict::Tempfail, Reply::Tempfail),
        (Verdict::Discard, Reply::Discard),
        (Verdict::Accept, Reply::Accept),
        (
            Verdict::Reply(multi_line_reply()),
            Reply::ReplyCode(MULTI_LINE_WIRE.into()),
        ),
        (
            Verdict::Shutdown,
            Reply::ReplyCode("421 4.7.0 closing connection".into()),
        ),
    ]
}

/// The reply that ended the filter's part at `stage`, from a whole-message outcome.
fn reply_at(outcome: &Outcome, stage: Phase) -> Option<Reply> {
    match stage {
        Phase::Mail => Some(outcome.mail.clone()),
        // A verdict while recipients are announced waits for DATA.
        Phase::Rcpt | Phase::Data => outcome.data.clone(),
        Phase::Header => outcome.headers.first().cloned(),
        Phase::EndOfHeaders => outcome.end_of_headers.clone(),
        Phase::Body => outcome.body.first().cloned(),
        Phase::EndOfMessage => outcome.end_of_message.as_ref().map(|e| e.reply.clone()),
        _ => None,
    }
}

/// A filter that returns the planned verdict at the planned stage.
fn planned(plan: Arc<Mutex<(Phase, Verdict)>>) -> support::TestFilter {
    filter(move |s| {
        let plan = plan.clone();
        Box::pin(async move {
            let (stage, verdict) = plan.lock().unwrap().clone();
            reach(s, stage).await?;
            Ok(verdict)
        })
    })
}

on_every_runtime!(message_verdicts_land_on_the_whole_message_at_every_stage);
fn message_verdicts_land_on_the_whole_message_at_every_stage() {
    run(async {
        for profile in profiles() {
            let plan = Arc::new(Mutex::new((Phase::Mail, Verdict::Continue)));
            let harness = serve(planned(plan.clone())).await;
            let who = name(&profile);
            for stage in MESSAGE_STAGES {
                for (verdict, expected) in verdicts() {
                    *plan.lock().unwrap() = (stage, verdict.clone());
                    let mut client = harness.client(profile.clone()).await;
                    // Two messages on one connection: each gets its own call and verdict.
                    let messages = if verdict == Verdict::Shutdown { 1 } else { 2 };
                    for n in 0..messages {
                        let outcome = client.send_message(&envelope(), MESSAGE).await.unwrap();
                        let what = format!("{who}: {verdict:?} at {stage:?}, message {n}");
                        assert_eq!(reply_at(&outcome, stage), Some(expected.clone()), "{what}");
                        assert_eq!(outcome.verdict, expected, "{what}");
                        if stage == Phase::Rcpt {
                            // Held: every recipient is accepted, DATA gets the verdict.
                            assert!(
                                outcome.rcpts.iter().all(|(_, r)| *r == Reply::Continue),
                                "{what}: {:?}",
                                outcome.rcpts
                            );
                        }
                        // Nothing before the stage carries the verdict.
                        if stage > Phase::Mail {
                            assert_eq!(outcome.mail, Reply::Continue, "{what}");
                        }
                        if stage > Phase::Header {
                            assert!(outcome.headers.iter().all(|r| *r == Reply::Continue));
                        }
                        assert!(outcome.modifications.is_empty(), "{what}");
                        assert_eq!(outcome.delivered.is_some(), expected == Reply::Accept);
                    }
                    client.quit().await.expect("quit");
                }
            }
            harness.stop().await.expect("server stops");
        }
    });
}

on_every_runtime!(connection_verdicts_at_connect_and_helo_end_the_session);
fn connection_verdicts_at_connect_and_helo_end_the_session() {
    run(async {
        for profile in profiles() {
            let plan = Arc::new(Mutex::new((Phase::Connect, Verdict::Continue)));
            let harness = serve(planned(plan.clone())).await;
            let who = name(&profile);
            for stage in [Phase::Connect, Phase::Helo] {
                for (verdict, expected) in verdicts() {
                    if verdict == Verdict::Discard {
                        continue; // not a connection verdict; see the test below
                    }
                    *plan.lock().unwrap() = (stage, verdict.clone());
                    let what = format!("{who}: {verdict:?} at {stage:?}");
                    let mut client = harness.negotiated(profile.clone()).await;
                    let connect = client
                        .connect(CLIENT_HOST, Family::Inet, 50000, CLIENT_ADDR)
                        .await
                        .unwrap();
                    let reply = if stage == Phase::Connect {
                        connect
                    } else {
                        assert_eq!(connect, Reply::Continue, "{what}");
                        client.helo(CLIENT_HOST).await.unwrap()
                    };
                    assert_eq!(reply, expected, "{what}");
                    assert!(client.is_closed(), "{what}: the session is over");
                }
            }
            harness.stop().await.expect("server stops");
        }
    });
}

on_every_runtime!(discard_before_mail_applies_to_the_first_message);
/// Discard means nothing for a connection: at connect or HELO it waits for the message.
fn discard_before_mail_applies_to_the_first_message() {
    run(async {
        for profile in profiles() {
            let plan = Arc::new(Mutex::new((Phase::Helo, Verdict::Discard)));
            let harness = serve(planned(plan)).await;
            let who = name(&profile);
            let mut client = harness.client(profile).await;
            let outcome = client.send_message(&envelope(), MESSAGE).await.unwrap();
            assert_eq!(outcome.mail, Reply::Discard, "{who}");
            client.quit().await.expect("quit");
            harness.stop().await.expect("server stops");
        }
    });
}

on_every_runtime!(accept_before_the_body_with_and_without_queued_edits);
fn accept_before_the_body_with_and_without_queued_edits() {
    run(async {
        for profile in profiles() {
            let harness = serve(filter(|s| {
                Box::pin(async move {
                    let first = s.next_header().await?.expect("a header");
                    if first.value == "tag me" {
                        s.add_header("X-Tagged", "yes")?;
                    }
                    Ok(Verdict::Accept)
                })
            }))
            .await;
            let who = name(&profile);
            let mut client = harness
                .client(profile.clone().with_body_chunk_size(8))
                .await;
            // Without edits: accepted at once, the MTA sends nothing more for the message.
            let outcome = client
                .send_message(&envelope(), b"Subject: plain\r\n\r\nbody\r\n")
                .await
                .unwrap();
            assert_eq!(outcome.headers, [Reply::Accept], "{who}");
            assert_eq!(outcome.end_of_message, None, "{who}");
            assert_eq!(outcome.verdict, Reply::Accept, "{who}");
            // With edits: the message goes on to end of message, the body is skipped.
            let outcome = client
                .send_message(
                    &envelope(),
                    b"Subject: tag me\r\nTo: bob@example.net\r\n\r\nline one\r\nline two\r\n",
                )
                .await
                .unwrap();
            assert_eq!(outcome.headers, [Reply::Continue, Reply::Continue], "{who}");
            assert_eq!(outcome.end_of_headers, Some(Reply::Continue), "{who}");
            assert_eq!(outcome.body, [Reply::Skip], "{who}");
            assert_eq!(outcome.verdict, Reply::Accept, "{who}");
            assert_eq!(
                outcome.modifications,
                [appended(&profile, "X-Tagged", "yes")],
                "{who}"
            );
            client.quit().await.expect("quit");
            harness.stop().await.expect("server stops");
        }
    });
}

on_every_runtime!(custom_replies_are_escaped_and_multi_line_on_the_wire);
fn custom_replies_are_escaped_and_multi_line_on_the_wire() {
    run(async {
        for profile in profiles() {
            let harness = serve(filter(|s| {
                Box::pin(async move {
                    while let Some(rcpt) = s.next_recipient().await? {
                        if rcpt.address() == "<percent@example.net>" {
                            rcpt.reply(ReplyCode::temporary(452, "4.2.2", "mailbox 100% full")?)?;
                        }
                    }
                    s.end_of_message().await?;
                    Ok(Verdict::Reply(multi_line_reply()))
                })
            }))
            .await;
            let who = name(&profile);
            let (mut client, log) = harness.tapped(profile).await;
            support::greet(&mut client).await;
            log.take();
            let outcome = client
                .send_message(
                    &Envelope::new(
                        "<a@example.com>",
                        &["<percent@example.net>", "<b@example.net>"],
                    ),
                    MESSAGE,
                )
                .await
                .unwrap();
            assert_eq!(
                outcome.verdict,
                Reply::ReplyCode(MULTI_LINE_WIRE.into()),
                "{who}"
            );
            let frames = log.take();
            let replies: Vec<_> = frames.iter().filter(|(kind, _)| *kind == b'y').collect();
            assert_eq!(
                replies,
                [
                    &frame(b'y', b"452 4.2.2 mailbox 100%% full\0"),
                    &frame(b'y', format!("{MULTI_LINE_WIRE}\0").as_bytes()),
                ],
                "{who}"
            );
            client.quit().await.expect("quit");
            harness.stop().await.expect("server stops");
        }
    });
}

on_every_runtime!(recipients_are_refused_one_by_one_while_the_message_goes_on);
fn recipients_are_refused_one_by_one_while_the_message_goes_on() {
    run(async {
        for profile in profiles() {
            let harness = serve(filter(|s| {
                Box::pin(async move {
                    let mut kept = 0;
                    while let Some(rcpt) = s.next_recipient().await? {
                        match rcpt.address().to_str().unwrap() {
                            "<reject@example.net>" => rcpt.reject()?,
                            "<tempfail@example.net>" => rcpt.tempfail()?,
                            "<custom@example.net>" => {
                                rcpt.reply(ReplyCode::permanent(550, "5.1.1", "no such user")?)?;
                            }
                            _ => kept += 1,
                        }
                    }
                    s.end_of_message().await?;
                    s.add_header("X-Kept", kept.to_string())?;
                    Ok(Verdict::Accept)
                })
            }))
            .await;
            let who = name(&profile);
            let mut client = harness.client(profile.clone()).await;
            let rcpts = [
                "<reject@example.net>",
                "<ok1@example.net>",
                "<tempfail@example.net>",
                "<custom@example.net>",
                "<ok2@example.net>",
            ];
            let outcome = client
                .send_message(&Envelope::new("<a@example.com>", &rcpts), MESSAGE)
                .await
                .unwrap();
            let replies: Vec<Reply> = outcome.rcpts.iter().map(|(_, r)| r.clone()).collect();
            assert_eq!(
                replies,
                [
                    Reply::Reject,
                    Reply::Continue,
                    Reply::Tempfail,
                    Reply::ReplyCode("550 5.1.1 no such user".into()),
                    Reply::Continue
                ],
                "{who}"
            );
            assert_eq!(outcome.data, Some(Reply::Continue), "{who}");
            assert_eq!(outcome.verdict, Reply::Accept, "{who}");
            assert_eq!(
                outcome.modifications,
                [appended(&profile, "X-Kept", "2")],
                "{who}"
            );
            assert_eq!(
                outcome.delivered.unwrap().recipient_addresses(),
                ["<ok1@example.net>", "<ok2@example.net>"],
                "{who}"
            );
            client.quit().await.expect("quit");
            harness.stop().await.expect("server stops");
        }
    });
}

on_every_runtime!(handles_used_after_their_moment_are_stale);
fn handles_used_after_their_moment_are_stale() {
    run(async {
        for profile in profiles() {
            let probe = Probe::new();
            let tx = probe.sender();
            let kept: Arc<Mutex<Option<(Recipient, HeaderHandle)>>> = Arc::default();
            let harness = serve(filter(move |s| {
                let tx = tx.clone();
                let kept = kept.clone();
                Box::pin(async move {
                    let previous = kept.lock().unwrap().take();
                    let first = s.next_recipient().await?.expect("a recipient");
                    let second = s.next_recipient().await?.expect("two recipients");
                    report(&tx, format!("earlier recipient: {:?}", first.reject()));
                    report(&tx, format!("current recipient: {:?}", second.tempfail()));
                    let header = s.next_header().await?.expect("a header");
                    report(&tx, format!("recipient at header: {:?}", second.reject()));
                    if let Some((old_rcpt, old_header)) = previous {
                        report(
                            &tx,
                            format!("last message's recipient: {:?}", old_rcpt.reject()),
                        );
                        report(
                            &tx,
                            format!("last message's header: {:?}", s.delete_header(old_header)),
                        );
                    }
                    *kept.lock().unwrap() = Some((second, header.handle));
                    s.end_of_message().await?;
                    Ok(Verdict::Continue)
                })
            }))
            .await;
            let who = name(&profile);
            let mut client = harness.client(profile).await;
            for n in 0..2 {
                let outcome = client.send_message(&envelope(), MESSAGE).await.unwrap();
                assert_eq!(
                    outcome.rcpts,
                    [
                        ("<bob@example.net>".to_owned(), Reply::Continue),
                        ("<carol@example.net>".to_owned(), Reply::Tempfail)
                    ],
                    "{who} message {n}"
                );
                assert!(outcome.modifications.is_empty(), "{who}");
            }
            let mut expected = vec![
                "earlier recipient: Err(Misuse(StaleHandle))",
                "current recipient: Ok(())",
                "recipient at header: Err(Misuse(StaleHandle))",
            ];
            expected.extend(expected.clone());
            expected.extend([
                "last message's recipient: Err(Misuse(StaleHandle))",
                "last message's header: Err(Misuse(StaleHandle))",
            ]);
            assert_eq!(probe.drain(), expected, "{who}");
            client.quit().await.expect("quit");
            harness.stop().await.expect("server stops");
        }
    });
}

on_every_runtime!(recipients_negotiated_as_unanswered_cannot_be_refused);
fn recipients_negotiated_as_unanswered_cannot_be_refused() {
    run(async {
        for profile in profiles() {
            let probe = Probe::new();
            let tx = probe.sender();
            let needs = Needs::everything().answers(Events::ALL - Events::RCPT);
            let harness = serve(
                filter(move |s| {
                    let tx = tx.clone();
                    Box::pin(async move {
                        let rcpt = s.next_recipient().await?.expect("a recipient");
                        report(&tx, format!("{:?}", rcpt.reject()));
                        s.end_of_message().await?;
                        Ok(Verdict::Continue)
                    })
                })
                .with_needs(needs),
            )
            .await;
            let who = name(&profile);
            let mut client = harness.client(profile).await;
            assert!(
                client
                    .negotiated()
                    .unwrap()
                    .protocol
                    .contains(ProtocolFlags::NR_RCPT)
            );
            let outcome = client.send_message(&envelope(), MESSAGE).await.unwrap();
            assert!(
                outcome.rcpts.iter().all(|(_, r)| *r == Reply::NoReply),
                "{who}"
            );
            assert_eq!(
                probe.next().await,
                "Err(Misuse(Unanswerable(Rcpt)))",
                "{who}"
            );
            client.quit().await.expect("quit");
            harness.stop().await.expect("server stops");
        }
    });
}

on_every_runtime!(a_filter_done_before_the_body_skips_it_and_still_flushes_at_end_of_message);
/// A filter done before the body: chunks are answered with Skip where negotiated (and only
/// chunks), else with Continue; queued edits still go out at end of message.
fn a_filter_done_before_the_body_skips_it_and_still_flushes_at_end_of_message() {
    run(async {
        let no_skip = Needs::everything().options(ProtocolFlags::EMPTY);
        for profile in profiles() {
            for (needs, skip) in [(Needs::everything(), true), (no_skip.clone(), false)] {
                // Returned at end of headers with an edit; still running and waiting for end
                // of message; returned early with no edit.
                for mode in ["returned with edit", "waiting", "returned plain"] {
                    let harness = serve(
                        filter(move |s| {
                            Box::pin(async move {
                                while s.next_header().await?.is_some() {}
                                match mode {
                                    "returned with edit" => {
                                        s.add_header("X-Done", "early")?;
                                        Ok(Verdict::Continue)
                                    }
                                    "waiting" => {
                                        s.end_of_message().await?;
                                        s.add_header("X-Done", "late")?;
                                        Ok(Verdict::Accept)
                                    }
                                    _ => Ok(Verdict::Continue),
                                }
                            })
                        })
                        .with_needs(needs.clone()),
                    )
                    .await;
                    let who = format!("{} skip={skip} {mode}", name(&profile));
                    let mut client = harness
                        .client(profile.clone().with_body_chunk_size(4))
                        .await;
                    assert_eq!(
                        client
                            .negotiated()
                            .unwrap()
                            .protocol
                            .contains(ProtocolFlags::SKIP),
                        skip,
                        "{who}"
                    );
                    let outcome = client.send_message(&envelope(), MESSAGE).await.unwrap();
                    assert!(
                        outcome.headers.iter().all(|r| *r == Reply::Continue),
                        "{who}"
                    );
                    assert_eq!(outcome.end_of_headers, Some(Reply::Continue), "{who}");
                    if skip {
                        assert_eq!(outcome.body, [Reply::Skip], "{who}");
                    } else {
                        // "line one\r\nline two\r\n" in chunks of 4.
                        assert_eq!(outcome.body, vec![Reply::Continue; 5], "{who}");
                    }
                    let expected: Vec<Modification> = match mode {
                        "returned with edit" => vec![appended(&profile, "X-Done", "early")],
                        "waiting" => vec![appended(&profile, "X-Done", "late")],
                        _ => vec![],
                    };
                    assert_eq!(outcome.modifications, expected, "{who}");
                    assert!(support::passed(&outcome.verdict), "{who}");
                    client.quit().await.expect("quit");
                    harness.stop().await.expect("server stops");
                }
            }
        }
    });
}

on_every_runtime!(a_held_recipient_stage_verdict_without_data_lands_at_the_first_header);
/// With no DATA (a version-2 MTA), a verdict held during RCPT lands at the first header.
fn a_held_recipient_stage_verdict_without_data_lands_at_the_first_header() {
    run(async {
        for profile in profiles() {
            let plan = Arc::new(Mutex::new((Phase::Rcpt, Verdict::Reject)));
            let harness = serve(planned(plan)).await;
            let who = name(&profile);
            let mut client = harness.client(profile.with_version(2)).await;
            let outcome = client.send_message(&envelope(), MESSAGE).await.unwrap();
            assert!(
                outcome.rcpts.iter().all(|(_, r)| *r == Reply::Continue),
                "{who}"
            );
            assert_eq!(outcome.data, Some(Reply::NotSent), "{who}");
            assert_eq!(outcome.headers, [Reply::Reject], "{who}");
            assert_eq!(outcome.verdict, Reply::Reject, "{who}");
            client.quit().await.expect("quit");
            harness.stop().await.expect("server stops");
        }
    });
}

on_every_runtime!(malformed_reply_codes_are_refused_when_built);
/// Reply codes are checked when built (4xx/5xx, enhanced class matching, no line breaks),
/// so a filter can never put a malformed one on the wire.
fn malformed_reply_codes_are_refused_when_built() {
    run(async {
        for profile in profiles() {
            let probe = Probe::new();
            let tx = probe.sender();
            let harness = serve(filter(move |s| {
                let tx = tx.clone();
                Box::pin(async move {
                    let rcpt = s.next_recipient().await?.expect("a recipient");
                    let attempts = [
                        ReplyCode::new(250, "", "not an error"),
                        ReplyCode::new(650, "", "no such class"),
                        ReplyCode::permanent(450, "4.0.0", "wrong class for permanent"),
                        ReplyCode::temporary(550, "5.0.0", "wrong class for temporary"),
                        ReplyCode::new(550, "4.7.1", "enhanced class differs"),
                        ReplyCode::new(550, "5.7", "enhanced code too short"),
                        ReplyCode::new(550, "5.7.1", "line\r\nbreak"),
                    ];
                    let refused = attempts.iter().filter(|a| a.is_err()).count();
                    report(&tx, (refused, attempts.len()));
                    rcpt.reply(ReplyCode::new(550, "", "no enhanced code")?)?;
                    Ok(Verdict::Continue)
                })
            }))
            .await;
            let who = name(&profile);
            let mut client = harness.client(profile).await;
            let outcome = client.send_message(&envelope(), MESSAGE).await.unwrap();
            let (refused, total) = probe.next().await;
            assert_eq!(refused, total, "{who}");
            assert_eq!(
                outcome.rcpts[0].1,
                Reply::ReplyCode("550 no enhanced code".into()),
                "{who}"
            );
            client.quit().await.expect("quit");
            harness.stop().await.expect("server stops");
        }
    });
}
