//! Two parts of the session API that libmilter and kilter users expect: unknown SMTP
//! commands (awaitable and answerable) and recipients the MTA rejected itself (seen, marked,
//! when asked for). Driven through the test kit under both MTA profiles.

use std::sync::{Arc, Mutex};

use async_milter::proto::{Events, Family, ProtocolFlags};
use async_milter::session::Unavailable;
use async_milter::testing::{MtaKind, Profile, Reply, in_process};
use async_milter::{Error, FnFilter, Needs, Phase, ReplyCode, Session, Verdict, filter_fn};

fn run(body: impl std::future::Future<Output = ()>) {
    async_std::task::block_on(body);
}

fn profiles() -> [Profile; 2] {
    [Profile::postfix(), Profile::sendmail()]
}

type Log = Arc<Mutex<Vec<String>>>;

/// Refuses `XFOO` with a 502 and `XTEMP` with the default 4xx; lets the others pass; logs
/// each command and the phase it arrived in.
fn unknown_policy(log: &Log) -> impl async_milter::Filter {
    let log = log.clone();
    FnFilter::new(filter_fn(move |session: &mut Session| {
        let log = log.clone();
        Box::pin(async move {
            while session.phase() < Phase::Data {
                let Some(command) = session.next_unknown().await? else {
                    continue;
                };
                let line = command.line().to_str().unwrap_or("?").to_owned();
                log.lock()
                    .unwrap()
                    .push(format!("{} {line}", session.phase()));
                if line.starts_with("XFOO") {
                    command.reply(ReplyCode::permanent(502, "5.5.1", "no XFOO here")?)?;
                } else if line.starts_with("XTEMP") {
                    command.tempfail()?;
                }
            }
            let seen: Vec<String> = session
                .unknown_commands()
                .map(|t| t.to_str().unwrap_or("?").to_owned())
                .collect();
            log.lock().unwrap().push(format!("all {}", seen.join(",")));
            Ok(Verdict::Continue)
        })
    }))
    .with_needs(
        Needs::new()
            .events(Events::ALL)
            .answers(Events::UNKNOWN | Events::RCPT),
    )
}

#[test]
fn unknown_commands_are_awaited_and_answered() {
    run(async {
        for profile in profiles() {
            let log = Log::default();
            let mut client = in_process(unknown_policy(&log), profile.clone()).unwrap();
            let negotiated = client.negotiate().await.unwrap();
            assert!(!negotiated.protocol.contains(ProtocolFlags::NO_UNKNOWN));
            assert!(!negotiated.protocol.contains(ProtocolFlags::NR_UNKNOWN));
            client
                .connect("client.example.com", Family::Inet, 1, "192.0.2.1")
                .await
                .unwrap();
            assert_eq!(
                client.unknown("XFOO bar").await.unwrap(),
                Reply::ReplyCode("502 5.5.1 no XFOO here".into())
            );
            client.helo("client.example.com").await.unwrap();
            assert_eq!(client.unknown("XBAR").await.unwrap(), Reply::Continue);
            assert_eq!(
                client.mail("<a@example.com>", &[]).await.unwrap(),
                Reply::NoReply
            );
            assert_eq!(client.unknown("XTEMP now").await.unwrap(), Reply::Tempfail);
            assert_eq!(
                client.rcpt("<b@example.net>", &[]).await.unwrap(),
                Reply::Continue
            );
            assert_eq!(client.data().await.unwrap(), Reply::NoReply);
            assert_eq!(client.end_of_headers().await.unwrap(), Reply::NoReply);
            let eom = client.end_of_message().await.unwrap();
            assert_eq!(eom.reply, Reply::Continue);
            client.quit().await.unwrap();
            let word = |line: &str| {
                if profile.kind == MtaKind::Postfix {
                    line.split(' ').next().unwrap().to_owned()
                } else {
                    line.to_owned()
                }
            };
            assert_eq!(
                *log.lock().unwrap(),
                [
                    format!("connect {}", word("XFOO bar")),
                    "HELO XBAR".to_owned(),
                    format!("MAIL {}", word("XTEMP now")),
                    format!("all {},XBAR,{}", word("XFOO bar"), word("XTEMP now")),
                ]
            );
        }
    });
}

#[test]
fn unknown_commands_need_declaring_and_answers_need_declaring() {
    run(async {
        let outcome: Arc<Mutex<Vec<String>>> = Arc::default();
        let not_declared = {
            let outcome = outcome.clone();
            filter_fn(move |session: &mut Session| {
                let outcome = outcome.clone();
                Box::pin(async move {
                    let result = session.next_unknown().await;
                    outcome.lock().unwrap().push(match result {
                        Err(Error::Unavailable(Unavailable::UnknownNotSent)) => "not sent".into(),
                        other => format!("{other:?}"),
                    });
                    Ok(Verdict::Accept)
                })
            })
        };
        let mut client = in_process(
            FnFilter::new(not_declared).with_needs(Needs::new().events(Events::CONNECT)),
            Profile::postfix(),
        )
        .unwrap();
        let negotiated = client.negotiate().await.unwrap();
        assert!(negotiated.protocol.contains(ProtocolFlags::NO_UNKNOWN));
        client
            .connect("client.example.com", Family::Inet, 1, "192.0.2.1")
            .await
            .unwrap();
        client.quit().await.unwrap();

        let silent = {
            let outcome = outcome.clone();
            filter_fn(move |session: &mut Session| {
                let outcome = outcome.clone();
                Box::pin(async move {
                    if let Some(command) = session.next_unknown().await? {
                        outcome
                            .lock()
                            .unwrap()
                            .push(format!("{:?}", command.reject().map_err(|e| e.to_string())));
                    }
                    Ok(Verdict::Continue)
                })
            })
        };
        let mut client = in_process(
            FnFilter::new(silent).with_needs(Needs::new().events(Events::UNKNOWN)),
            Profile::postfix(),
        )
        .unwrap();
        let negotiated = client.negotiate().await.unwrap();
        assert!(negotiated.protocol.contains(ProtocolFlags::NR_UNKNOWN));
        assert_eq!(client.unknown("XFOO").await.unwrap(), Reply::NoReply);
        client.quit().await.unwrap();
        // Give the in-process task a moment to record what the filter saw.
        for _ in 0..100 {
            if outcome.lock().unwrap().len() == 2 {
                break;
            }
            async_std::task::sleep(std::time::Duration::from_millis(10)).await;
        }
        // The two connections' filters run in tasks of their own: either may record first.
        let mut seen = outcome.lock().unwrap().clone();
        seen.sort();
        assert_eq!(
            seen,
            [
                "Err(\"filter misuse: unknown commands were negotiated as not answered\")"
                    .to_owned(),
                "not sent".to_owned(),
            ]
        );
    });
}

/// Logs each recipient with its mark and refuses `<no@example.net>`.
fn rcpt_logger(log: &Log, options: ProtocolFlags) -> impl async_milter::Filter {
    let log = log.clone();
    FnFilter::new(filter_fn(move |session: &mut Session| {
        let log = log.clone();
        Box::pin(async move {
            while let Some(rcpt) = session.next_recipient().await? {
                let address = rcpt.address().to_str().unwrap_or("?").to_owned();
                let mark = if rcpt.is_rejected() {
                    format!(
                        "rejected by the MTA ({} {})",
                        session.macro_str("{rcpt_host}").unwrap_or("-"),
                        session.macro_str("{rcpt_addr}").unwrap_or("-")
                    )
                } else {
                    "accepted".to_owned()
                };
                log.lock().unwrap().push(format!("{address} {mark}"));
                if address == "<no@example.net>" {
                    rcpt.reject()?;
                }
            }
            let accepted: Vec<String> = session
                .recipients()
                .map(|a| a.address.to_str().unwrap().to_owned())
                .collect();
            let rejected: Vec<String> = session
                .rejected_recipients()
                .map(|a| a.address.to_str().unwrap().to_owned())
                .collect();
            log.lock().unwrap().push(format!(
                "accepted {} rejected {}",
                accepted.join(","),
                rejected.join(",")
            ));
            Ok(Verdict::Continue)
        })
    }))
    .with_needs(
        Needs::new()
            .events(Events::MAIL | Events::RCPT | Events::DATA)
            .answers(Events::RCPT)
            .options(options),
    )
}

#[test]
fn rejected_recipients_are_seen_marked_when_asked_for() {
    run(async {
        for profile in profiles() {
            let log = Log::default();
            let mut client =
                in_process(rcpt_logger(&log, ProtocolFlags::RCPT_REJECTED), profile).unwrap();
            let negotiated = client.negotiate().await.unwrap();
            assert!(negotiated.protocol.contains(ProtocolFlags::RCPT_REJECTED));
            client
                .connect("client.example.com", Family::Inet, 1, "192.0.2.1")
                .await
                .unwrap();
            client.helo("client.example.com").await.unwrap();
            client.mail("<a@example.com>", &[]).await.unwrap();
            assert_eq!(
                client.rcpt("<b@example.net>", &[]).await.unwrap(),
                Reply::Continue
            );
            assert_eq!(
                client
                    .rcpt_rejected(
                        "<gone@example.net>",
                        &[],
                        "550 5.1.1 <gone@example.net>: Recipient address rejected"
                    )
                    .await
                    .unwrap(),
                Reply::Continue
            );
            assert_eq!(
                client.rcpt("<no@example.net>", &[]).await.unwrap(),
                Reply::Reject
            );
            assert_eq!(client.data().await.unwrap(), Reply::NoReply);
            let eom = client.end_of_message().await.unwrap();
            assert_eq!(eom.reply, Reply::Continue);
            client.quit().await.unwrap();
            assert_eq!(
                *log.lock().unwrap(),
                [
                    "<b@example.net> accepted",
                    "<gone@example.net> rejected by the MTA (5.1.1 <gone@example.net>: \
                     Recipient address rejected)",
                    "<no@example.net> accepted",
                    "accepted <b@example.net>,<no@example.net> rejected <gone@example.net>",
                ]
            );
        }
    });
}

#[test]
fn rejected_recipients_are_not_sent_to_a_filter_that_did_not_ask() {
    run(async {
        let log = Log::default();
        let mut client =
            in_process(rcpt_logger(&log, ProtocolFlags::EMPTY), Profile::sendmail()).unwrap();
        let negotiated = client.negotiate().await.unwrap();
        assert!(!negotiated.protocol.contains(ProtocolFlags::RCPT_REJECTED));
        client.mail("<a@example.com>", &[]).await.unwrap();
        assert_eq!(
            client
                .rcpt_rejected("<gone@example.net>", &[], "550 5.1.1 no")
                .await
                .unwrap(),
            Reply::NotSent
        );
        client.rcpt("<b@example.net>", &[]).await.unwrap();
        client.data().await.unwrap();
        client.end_of_message().await.unwrap();
        client.quit().await.unwrap();
        assert_eq!(
            *log.lock().unwrap(),
            [
                "<b@example.net> accepted",
                "accepted <b@example.net> rejected ",
            ]
        );
    });
}
