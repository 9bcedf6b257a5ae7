//! Behaviour contract, message flow: one filter call per message, what persists across
//! messages and what resets, awaiting the past, events the MTA never sends, unknown SMTP
//! commands, and negotiation from declared needs. Every test runs a real server on loopback
//! under both the Postfix and the Sendmail preset, on every runtime (see `support`).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_milter::proto::{Actions, Events, MacroStage, ProtocolFlags};
use async_milter::session::Text;
use async_milter::testing::{Envelope, Profile, Reply};
use async_milter::{Needs, Verdict};
use support::{
    CLIENT_ADDR, CLIENT_HOST, MESSAGE, Probe, appended, envelope, filter, name, on_every_runtime,
    passed, profiles, report, run, serve,
};

fn text(t: &Text) -> String {
    t.to_str().expect("UTF-8").to_owned()
}

/// What one filter call saw.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    call: usize,
    fresh_at_start: bool,
    client: Option<(String, String)>,
    helo: Option<String>,
    connect_macro: Option<String>,
    sender: String,
    mail_addr_macro: Option<String>,
    rcpt_macro_at_mail: Option<String>,
    queue_id_at_mail: Option<String>,
    recipients: Vec<String>,
    subject: Option<String>,
}

on_every_runtime!(each_message_gets_its_own_call_connection_data_persists_message_data_resets);
fn each_message_gets_its_own_call_connection_data_persists_message_data_resets() {
    run(async {
        for profile in profiles() {
            let probe = Probe::new();
            let tx = probe.sender();
            let calls = Arc::new(AtomicUsize::new(0));
            let harness = serve(filter(move |s| {
                let tx = tx.clone();
                let calls = calls.clone();
                Box::pin(async move {
                    let call = calls.fetch_add(1, Ordering::SeqCst) + 1;
                    let fresh_at_start = s.sender().is_none()
                        && s.recipients().count() == 0
                        && s.headers().is_empty()
                        && s.macro_value("{mail_addr}").is_none()
                        && s.macro_value("{rcpt_addr}").is_none();
                    let helo = s.helo().await?.map(|h| text(&h));
                    let sender = text(&s.envelope_from().await?.address);
                    let mail_addr_macro = s.macro_str("{mail_addr}").map(str::to_owned);
                    let rcpt_macro_at_mail = s.macro_str("{rcpt_addr}").map(str::to_owned);
                    let queue_id_at_mail = s.queue_id().map(str::to_owned);
                    let mut recipients = Vec::new();
                    while let Some(rcpt) = s.next_recipient().await? {
                        recipients.push(text(rcpt.address()));
                    }
                    let mut subject = None;
                    while let Some(h) = s.next_header().await? {
                        if h.name.eq_ignore_ascii_case("Subject") {
                            subject = Some(text(&h.value));
                        }
                    }
                    s.end_of_message().await?;
                    report(
                        &tx,
                        Seen {
                            call,
                            fresh_at_start,
                            client: s.client().map(|c| (text(&c.hostname), text(&c.address))),
                            helo,
                            connect_macro: s.macro_str("_").map(str::to_owned),
                            sender,
                            mail_addr_macro,
                            rcpt_macro_at_mail,
                            queue_id_at_mail,
                            recipients,
                            subject,
                        },
                    );
                    s.add_header("X-Call", call.to_string())?;
                    Ok(Verdict::Accept)
                })
            }))
            .await;
            let who = name(&profile);
            let sendmail = who == "sendmail";
            let mut client = harness.client(profile).await;
            for n in 1..=3 {
                let from = format!("<sender{n}@example.com>");
                let rcpt = format!("<rcpt{n}@example.net>");
                let message = format!("Subject: message {n}\r\n\r\nbody {n}\r\n");
                let outcome = client
                    .send_message(&Envelope::new(&from, &[&rcpt]), message.as_bytes())
                    .await
                    .expect("message");
                assert_eq!(outcome.verdict, Reply::Accept, "{who} message {n}");
                let delivered = outcome.delivered.expect("delivered");
                // The MTA adds the space after the colon: HDR_LEADSPC is not negotiated.
                assert_eq!(
                    delivered.header("X-Call"),
                    Some(format!(" {n}").as_str()),
                    "{who}: message {n} got its own call"
                );
                let seen = probe.next().await;
                assert_eq!(
                    seen,
                    Seen {
                        call: n,
                        fresh_at_start: true,
                        client: Some((CLIENT_HOST.into(), CLIENT_ADDR.into())),
                        helo: Some(CLIENT_HOST.into()),
                        connect_macro: Some(format!("{CLIENT_HOST} [{CLIENT_ADDR}]")),
                        sender: from.clone(),
                        mail_addr_macro: Some(format!("sender{n}@example.com")),
                        rcpt_macro_at_mail: None,
                        // Postfix knows the queue id only after the first RCPT.
                        queue_id_at_mail: sendmail.then(|| "63QAbc0a012345".to_owned()),
                        recipients: vec![rcpt.clone()],
                        subject: Some(format!("message {n}")),
                    },
                    "{who} message {n}"
                );
            }
            client.quit().await.expect("quit");
            harness.stop().await.expect("server stops");
        }
    });
}

on_every_runtime!(a_new_mail_without_abort_ends_the_previous_message);
fn a_new_mail_without_abort_ends_the_previous_message() {
    run(async {
        for profile in profiles() {
            let probe = Probe::new();
            let tx = probe.sender();
            let harness = serve(filter(move |s| {
                let tx = tx.clone();
                Box::pin(async move {
                    let from = text(&s.envelope_from().await?.address);
                    s.add_header("X-From", &from)?;
                    let result = async {
                        while s.next_recipient().await?.is_some() {}
                        s.end_of_message().await
                    }
                    .await;
                    report(&tx, (from, format!("{result:?}")));
                    result?;
                    Ok(Verdict::Accept)
                })
            }))
            .await;
            let who = name(&profile);
            let mut client = harness.client(profile.clone()).await;
            assert_eq!(
                client.mail("<first@example.com>", &[]).await.unwrap(),
                Reply::Continue
            );
            assert_eq!(
                client.rcpt("<bob@example.net>", &[]).await.unwrap(),
                Reply::Continue
            );
            // Postfix sends the next MAIL without ABORT (the kit's Sendmail sends ABORT first,
            // as Sendmail does); either way the first message is over.
            let outcome = client
                .send_message(
                    &Envelope::new("<second@example.com>", &["<bob@example.net>"]),
                    MESSAGE,
                )
                .await
                .expect("second message");
            assert_eq!(
                probe.next().await,
                ("<first@example.com>".to_owned(), "Err(Aborted)".to_owned()),
                "{who}"
            );
            assert_eq!(
                probe.next().await,
                ("<second@example.com>".to_owned(), "Ok(())".to_owned()),
                "{who}"
            );
            assert_eq!(outcome.verdict, Reply::Accept, "{who}");
            assert_eq!(
                outcome.modifications,
                [appended(&profile, "X-From", "<second@example.com>")],
                "{who}: the first message's edit was discarded"
            );
            client.quit().await.expect("quit");
            harness.stop().await.expect("server stops");
        }
    });
}

on_every_runtime!(awaiting_the_past_is_a_typed_error);
fn awaiting_the_past_is_a_typed_error() {
    run(async {
        for profile in profiles() {
            let probe = Probe::new();
            let tx = probe.sender();
            let harness = serve(filter(move |s| {
                let tx = tx.clone();
                Box::pin(async move {
                    while s.next_header().await?.is_some() {}
                    report(&tx, format!("{:?}", s.envelope_from().await));
                    report(&tx, format!("{:?}", s.next_recipient().await.map(|_| ())));
                    let chunk = s.next_body_chunk().await?;
                    report(&tx, format!("chunk {}", chunk.is_some()));
                    report(&tx, format!("{:?}", s.next_header().await));
                    s.end_of_message().await?;
                    report(&tx, format!("{:?}", s.next_body_chunk().await));
                    report(&tx, format!("{:?}", s.helo().await));
                    Ok(Verdict::Continue)
                })
            }))
            .await;
            let who = name(&profile);
            let mut client = harness.client(profile).await;
            let outcome = client.send_message(&envelope(), MESSAGE).await.unwrap();
            assert_eq!(outcome.verdict, Reply::Continue, "{who}");
            assert_eq!(
                probe.drain(),
                [
                    "Err(Misuse(PhasePassed { wanted: Mail, current: EndOfHeaders }))",
                    "Err(Misuse(PhasePassed { wanted: Rcpt, current: EndOfHeaders }))",
                    "chunk true",
                    "Err(Misuse(PhasePassed { wanted: Header, current: Body }))",
                    "Ok(None)",
                    "Ok(Some(\"client.example.com\"))",
                ],
                "{who}"
            );
            client.quit().await.expect("quit");
            harness.stop().await.expect("server stops");
        }
    });
}

on_every_runtime!(events_negotiated_away_are_absent);
fn events_negotiated_away_are_absent() {
    run(async {
        for profile in profiles() {
            let probe = Probe::new();
            let tx = probe.sender();
            let needs = Needs::everything().events(
                Events::ALL - Events::UNKNOWN - Events::CONNECT - Events::HELO - Events::MAIL,
            );
            let harness = serve(
                filter(move |s| {
                    let tx = tx.clone();
                    Box::pin(async move {
                        report(&tx, format!("client {:?}", s.client().map(|_| ())));
                        report(&tx, format!("{:?}", s.helo().await));
                        report(&tx, format!("{:?}", s.envelope_from().await.map(|_| ())));
                        let mut rcpts = 0;
                        while s.next_recipient().await?.is_some() {
                            rcpts += 1;
                        }
                        report(&tx, format!("rcpts {rcpts}"));
                        s.end_of_message().await?;
                        Ok(Verdict::Accept)
                    })
                })
                .with_needs(needs),
            )
            .await;
            let who = name(&profile);
            let mut client = harness.negotiated(profile).await;
            let negotiated = client.negotiated().unwrap().clone();
            for flag in [
                ProtocolFlags::NO_CONNECT,
                ProtocolFlags::NO_HELO,
                ProtocolFlags::NO_MAIL,
            ] {
                assert!(negotiated.protocol.contains(flag), "{who}: {flag:?}");
            }
            let reply = client
                .connect(
                    CLIENT_HOST,
                    async_milter::proto::Family::Inet,
                    1,
                    CLIENT_ADDR,
                )
                .await
                .unwrap();
            assert_eq!(reply, Reply::NotSent, "{who}");
            assert_eq!(
                client.helo(CLIENT_HOST).await.unwrap(),
                Reply::NotSent,
                "{who}"
            );
            let outcome = client.send_message(&envelope(), MESSAGE).await.unwrap();
            assert_eq!(outcome.mail, Reply::NotSent, "{who}");
            assert_eq!(outcome.verdict, Reply::Accept, "{who}");
            assert_eq!(
                probe.drain(),
                [
                    "client None",
                    "Ok(None)",
                    "Err(Unavailable(Absent(Mail)))",
                    "rcpts 2"
                ],
                "{who}"
            );
            client.quit().await.expect("quit");
            harness.stop().await.expect("server stops");
        }
    });
}

on_every_runtime!(streams_end_cleanly_when_data_and_end_of_headers_are_never_sent);
/// A filter reading recipients and headers to their end, whatever comes after them: DATA
/// and end of headers may be absent (a version-2 MTA sends no DATA; a filter that needs
/// neither DATA nor end of headers has them negotiated away). The streams end with `None`,
/// not with an error, and the filter's edits still arrive.
fn streams_end_cleanly_when_data_and_end_of_headers_are_never_sent() {
    run(async {
        let without_data_eoh =
            Needs::everything().events(Events::ALL - Events::UNKNOWN - Events::DATA - Events::EOH);
        let cases: Vec<(Profile, Needs, &str)> = profiles()
            .into_iter()
            .flat_map(|p| {
                [
                    (p.clone().with_version(2), Needs::everything(), "version 2"),
                    (p, without_data_eoh.clone(), "NO_DATA | NO_EOH"),
                ]
            })
            .collect();
        for (profile, needs, case) in cases {
            let probe = Probe::new();
            let tx = probe.sender();
            let harness = serve(
                filter(move |s| {
                    let tx = tx.clone();
                    Box::pin(async move {
                        let mut rcpts = 0;
                        while s.next_recipient().await?.is_some() {
                            rcpts += 1;
                        }
                        let mut headers = 0;
                        while s.next_header().await?.is_some() {
                            headers += 1;
                        }
                        report(&tx, (rcpts, headers));
                        s.end_of_message().await?;
                        s.add_header("X-Seen", format!("{rcpts} {headers}"))?;
                        Ok(Verdict::Accept)
                    })
                })
                .with_needs(needs),
            )
            .await;
            let who = format!("{} {case}", name(&profile));
            let mut client = harness.client(profile).await;
            let outcome = client.send_message(&envelope(), MESSAGE).await.unwrap();
            assert_eq!(outcome.data.as_ref(), Some(&Reply::NotSent), "{who}");
            assert_eq!(outcome.verdict, Reply::Accept, "{who}");
            assert_eq!(probe.next().await, (2, 3), "{who}");
            assert_eq!(
                outcome.delivered.unwrap().header("X-Seen"),
                Some(" 2 3"),
                "{who}"
            );
            client.quit().await.expect("quit");
            harness.stop().await.expect("server stops");
        }
    });
}

on_every_runtime!(unknown_smtp_commands_do_not_break_the_phase_machine);
// One scripted session per case, step by step: long, but read top to bottom.
#[allow(clippy::too_many_lines)]
fn unknown_smtp_commands_do_not_break_the_phase_machine() {
    run(async {
        let sees_unknown = Needs::everything().events(Events::ALL);
        let no_reply = Needs::everything()
            .events(Events::ALL)
            .answers(Events::ALL - Events::UNKNOWN);
        let cases = [
            (Needs::everything(), Reply::NotSent),
            (sees_unknown, Reply::Continue),
            (no_reply, Reply::NoReply),
        ];
        for profile in profiles() {
            for (needs, unknown_reply) in cases.clone() {
                let probe = Probe::new();
                let tx = probe.sender();
                let harness = serve(
                    filter(move |s| {
                        let tx = tx.clone();
                        Box::pin(async move {
                            let helo = s.helo().await?.map(|h| text(&h));
                            let from = text(&s.envelope_from().await?.address);
                            let mut rcpts = Vec::new();
                            while let Some(r) = s.next_recipient().await? {
                                rcpts.push(text(r.address()));
                            }
                            let mut headers = 0;
                            while s.next_header().await?.is_some() {
                                headers += 1;
                            }
                            s.end_of_message().await?;
                            report(&tx, (helo, from, rcpts, headers));
                            s.add_header("X-Ok", "yes")?;
                            Ok(Verdict::Accept)
                        })
                    })
                    .with_needs(needs),
                )
                .await;
                let who = format!("{} {unknown_reply:?}", name(&profile));
                let mut client = harness.negotiated(profile.clone()).await;
                let c = &mut client;
                c.connect(
                    CLIENT_HOST,
                    async_milter::proto::Family::Inet,
                    1,
                    CLIENT_ADDR,
                )
                .await
                .unwrap();
                assert_eq!(
                    c.unknown("XCLIENT NAME=x").await.unwrap(),
                    unknown_reply,
                    "{who}"
                );
                c.helo(CLIENT_HOST).await.unwrap();
                assert_eq!(
                    c.unknown("VRFY root").await.unwrap(),
                    unknown_reply,
                    "{who}"
                );
                assert_eq!(
                    c.mail("<a@example.com>", &[]).await.unwrap(),
                    Reply::Continue
                );
                assert_eq!(
                    c.unknown("EXPN staff").await.unwrap(),
                    unknown_reply,
                    "{who}"
                );
                assert_eq!(
                    c.rcpt("<b@example.net>", &[]).await.unwrap(),
                    Reply::Continue
                );
                assert_eq!(c.unknown("XFOO").await.unwrap(), unknown_reply, "{who}");
                assert_eq!(
                    c.rcpt("<c@example.net>", &[]).await.unwrap(),
                    Reply::Continue
                );
                assert_eq!(c.data().await.unwrap(), Reply::Continue, "{who}");
                assert_eq!(c.header("Subject", " hi").await.unwrap(), Reply::Continue);
                assert_eq!(c.end_of_headers().await.unwrap(), Reply::Continue);
                let eom = c.end_of_message().await.unwrap();
                assert!(passed(&eom.reply), "{who}: {eom:?}");
                assert_eq!(
                    eom.modifications,
                    [appended(&profile, "X-Ok", "yes")],
                    "{who}"
                );
                assert_eq!(
                    probe.next().await,
                    (
                        Some(CLIENT_HOST.to_owned()),
                        "<a@example.com>".to_owned(),
                        vec!["<b@example.net>".to_owned(), "<c@example.net>".to_owned()],
                        1
                    ),
                    "{who}"
                );
                client.quit().await.expect("quit");
                harness.stop().await.expect("server stops");
            }
        }
    });
}

on_every_runtime!(negotiation_follows_declared_needs);
fn negotiation_follows_declared_needs() {
    run(async {
        for profile in profiles() {
            let probe = Probe::new();
            let tx = probe.sender();
            let needs = Needs::new()
                .actions(Actions::ADD_HEADERS)
                .events(Events::MAIL | Events::RCPT | Events::HEADER | Events::EOH)
                .answers(Events::RCPT)
                .macros(MacroStage::Mail, "{auth_authen}");
            let harness = serve(
                filter(move |s| {
                    let tx = tx.clone();
                    Box::pin(async move {
                        s.envelope_from().await?;
                        report(&tx, s.macro_str("{auth_authen}").map(str::to_owned));
                        while let Some(rcpt) = s.next_recipient().await? {
                            if rcpt.address() == "<trap@example.net>" {
                                rcpt.reject()?;
                            }
                        }
                        let mut headers = 0;
                        while s.next_header().await?.is_some() {
                            headers += 1;
                        }
                        s.end_of_message().await?;
                        s.add_header("X-Headers", headers.to_string())?;
                        Ok(Verdict::Accept)
                    })
                })
                .with_needs(needs),
            )
            .await;
            let who = name(&profile);
            let (mut client, log) = harness
                .tapped(profile.with_macro("{auth_authen}", "alice"))
                .await;
            let negotiated = client.negotiated().unwrap().clone();
            assert_eq!(negotiated.version, 6, "{who}");
            assert_eq!(
                negotiated.actions,
                Actions::ADD_HEADERS | Actions::SET_MACRO_LIST,
                "{who}"
            );
            assert_eq!(
                negotiated.protocol,
                ProtocolFlags::NO_CONNECT
                    | ProtocolFlags::NO_HELO
                    | ProtocolFlags::NR_MAIL
                    | ProtocolFlags::NO_DATA
                    | ProtocolFlags::NR_HEADER
                    | ProtocolFlags::NR_EOH
                    | ProtocolFlags::NO_BODY
                    | ProtocolFlags::NO_UNKNOWN,
                "{who}"
            );
            // The queue id `i` comes along: the list replaces the MTA's default MAIL list.
            assert_eq!(
                negotiated.macro_requests,
                [(MacroStage::Mail, "i {auth_authen}".to_owned())],
                "{who}"
            );
            log.take();
            greet_expecting(&mut client, Reply::NotSent).await;
            let outcome = client
                .send_message(
                    &Envelope::new(
                        "<a@example.com>",
                        &["<trap@example.net>", "<b@example.net>"],
                    ),
                    MESSAGE,
                )
                .await
                .unwrap();
            assert_eq!(outcome.mail, Reply::NoReply, "{who}");
            assert_eq!(
                outcome.rcpts,
                [
                    ("<trap@example.net>".to_owned(), Reply::Reject),
                    ("<b@example.net>".to_owned(), Reply::Continue)
                ],
                "{who}"
            );
            assert_eq!(outcome.data, Some(Reply::NotSent), "{who}");
            assert_eq!(outcome.headers, vec![Reply::NoReply; 3], "{who}");
            assert_eq!(outcome.end_of_headers, Some(Reply::NoReply), "{who}");
            assert_eq!(outcome.body, [Reply::NotSent], "{who}");
            assert_eq!(outcome.verdict, Reply::Accept, "{who}");
            // On the wire: the two RCPT answers and end of message, nothing else.
            let kinds: Vec<u8> = log.take().into_iter().map(|(kind, _)| kind).collect();
            let add = if who == "postfix" { b'h' } else { b'i' };
            assert_eq!(kinds, [b'r', b'c', add, b'a'], "{who}");
            assert_eq!(probe.next().await, Some("alice".to_owned()), "{who}");
            client.quit().await.expect("quit");
            harness.stop().await.expect("server stops");
        }
    });
}

async fn greet_expecting<S>(client: &mut async_milter::testing::MilterClient<S>, expected: Reply)
where
    S: futures::io::AsyncRead + futures::io::AsyncWrite + Unpin,
{
    let reply = client
        .connect(
            CLIENT_HOST,
            async_milter::proto::Family::Inet,
            1,
            CLIENT_ADDR,
        )
        .await
        .unwrap();
    assert_eq!(reply, expected);
    assert_eq!(client.helo(CLIENT_HOST).await.unwrap(), expected);
}
