//! Behaviour contract, faults: ABORT, end of stream and QUIT in the middle of a message
//! cancel the filter cleanly (its next await fails with `Aborted`, or its future is dropped
//! at once on end of stream), queued edits are discarded, and a filter error or panic
//! becomes the configured reply while the connection and every other one keep working.
//! Real server on loopback, both presets, every runtime (see `support`); the filter reports
//! through channels.

mod support;

use async_milter::connection::ConnectionConfig;
use async_milter::proto::ReplyCode;
use async_milter::server::ServerConfig;
use async_milter::testing::{Envelope, Reply};
use async_milter::{Error, Verdict};
use futures::join;
use support::{
    DropGuard, Gate, MESSAGE, Probe, appended, envelope, filter, name, on_every_runtime, profiles,
    report, run, serve, serve_with,
};

/// Reads the whole message; `Err` as the filter saw it.
async fn read_all(s: &mut async_milter::Session) -> Result<(), Error> {
    while s.next_recipient().await?.is_some() {}
    while s.next_header().await?.is_some() {}
    while s.next_body_chunk().await?.is_some() {}
    s.end_of_message().await
}

/// How far the test drives a message before aborting it.
#[derive(Clone, Copy, Debug)]
enum Until {
    Mail,
    Rcpt,
    Header,
    Body,
}

on_every_runtime!(abort_mid_message_fails_the_next_await_and_discards_edits);
fn abort_mid_message_fails_the_next_await_and_discards_edits() {
    run(async {
        for profile in profiles() {
            let probe = Probe::new();
            let tx = probe.sender();
            let harness = serve(filter(move |s| {
                let tx = tx.clone();
                Box::pin(async move {
                    let from = s.envelope_from().await?.address;
                    s.add_header("X-From", from.as_bytes())?;
                    let result = read_all(s).await;
                    report(&tx, format!("{from} {result:?}"));
                    result?;
                    Ok(Verdict::Accept)
                })
            }))
            .await;
            let who = name(&profile);
            let mut client = harness.client(profile.clone()).await;
            for until in [Until::Mail, Until::Rcpt, Until::Header, Until::Body] {
                let c = &mut client;
                c.mail("<aborted@example.com>", &[]).await.unwrap();
                if !matches!(until, Until::Mail) {
                    c.rcpt("<b@example.net>", &[]).await.unwrap();
                }
                if matches!(until, Until::Header | Until::Body) {
                    c.data().await.unwrap();
                    c.header("Subject", " aborted").await.unwrap();
                }
                if matches!(until, Until::Body) {
                    c.end_of_headers().await.unwrap();
                    c.body(b"partial\r\n").await.unwrap();
                }
                c.abort().await.unwrap();
                assert_eq!(
                    probe.next().await,
                    "<aborted@example.com> Err(Aborted)",
                    "{who} {until:?}"
                );
                // The next message on the connection is a new call with only its own edits.
                let outcome = c
                    .send_message(
                        &Envelope::new("<next@example.com>", &["<b@example.net>"]),
                        MESSAGE,
                    )
                    .await
                    .unwrap();
                assert_eq!(probe.next().await, "<next@example.com> Ok(())");
                assert_eq!(outcome.verdict, Reply::Accept, "{who} {until:?}");
                assert_eq!(
                    outcome.modifications,
                    [appended(&profile, "X-From", "<next@example.com>")],
                    "{who} {until:?}"
                );
            }
            client.quit().await.expect("quit");
            harness.stop().await.expect("server stops");
        }
    });
}

on_every_runtime!(quit_mid_message_cancels_the_filter);
fn quit_mid_message_cancels_the_filter() {
    run(async {
        for profile in profiles() {
            let probe = Probe::new();
            let tx = probe.sender();
            let harness = serve(filter(move |s| {
                let tx = tx.clone();
                Box::pin(async move {
                    let _guard = DropGuard(tx.clone(), "dropped");
                    let result = read_all(s).await;
                    let seen = match &result {
                        Ok(()) => "Ok(())",
                        Err(Error::Aborted) => "Err(Aborted)",
                        Err(_) => "another error",
                    };
                    report(&tx, seen);
                    result?;
                    Ok(Verdict::Accept)
                })
            }))
            .await;
            let who = name(&profile);
            let mut client = harness.client(profile).await;
            client.mail("<a@example.com>", &[]).await.unwrap();
            client.rcpt("<b@example.net>", &[]).await.unwrap();
            client.data().await.unwrap();
            // Both profiles send ABORT before QUIT inside a transaction.
            client.quit().await.unwrap();
            assert_eq!(probe.next().await, "Err(Aborted)", "{who}");
            assert_eq!(probe.next().await, "dropped", "{who}");
            harness.stop().await.expect("server stops");
        }
    });
}

on_every_runtime!(end_of_stream_mid_message_drops_the_filter_and_the_server_goes_on);
fn end_of_stream_mid_message_drops_the_filter_and_the_server_goes_on() {
    run(async {
        for profile in profiles() {
            let probe = Probe::new();
            let tx = probe.sender();
            let gate = Gate::new();
            let filter_gate = gate.clone();
            let harness = serve(filter(move |s| {
                let tx = tx.clone();
                let gate = filter_gate.clone();
                Box::pin(async move {
                    let _guard = DropGuard(tx.clone(), "dropped");
                    let from = s.envelope_from().await?;
                    let result = read_all(s).await;
                    if from.address == "<stuck@example.com>" {
                        // Busy at end of message: no await on the session to fail.
                        report(&tx, "at end of message");
                        gate.wait().await;
                    }
                    report(
                        &tx,
                        if result.is_ok() {
                            "completed"
                        } else {
                            "failed"
                        },
                    );
                    result?;
                    Ok(Verdict::Accept)
                })
            }))
            .await;
            let who = name(&profile);

            // 1. The filter waits for the next header when the MTA goes away.
            let (mut client, log) = harness.tapped(profile.clone()).await;
            support::greet(&mut client).await;
            client.mail("<a@example.com>", &[]).await.unwrap();
            client.rcpt("<b@example.net>", &[]).await.unwrap();
            client.data().await.unwrap();
            client.header("Subject", " going away").await.unwrap();
            log.close();
            assert_eq!(probe.next().await, "dropped", "{who}: dropped at once");
            drop(client);

            // 2. The filter is busy at end of message when the MTA goes away.
            let (mut client, log) = harness.tapped(profile.clone()).await;
            support::greet(&mut client).await;
            client.mail("<stuck@example.com>", &[]).await.unwrap();
            client.rcpt("<b@example.net>", &[]).await.unwrap();
            let (eom, ()) = join!(client.end_of_message(), async {
                assert_eq!(probe.next().await, "at end of message");
                log.close();
                assert_eq!(probe.next().await, "dropped", "{who}: dropped while busy");
            });
            assert!(eom.is_err(), "{who}: {eom:?}");
            drop(client);

            // 3. Other connections are served as before.
            let mut client = harness.client(profile).await;
            let outcome = client.send_message(&envelope(), MESSAGE).await.unwrap();
            assert_eq!(outcome.verdict, Reply::Accept, "{who}");
            assert_eq!(probe.next().await, "completed");
            client.quit().await.expect("quit");
            assert_eq!(probe.next().await, "dropped");
            assert!(probe.drain().is_empty());
            gate.open();
            harness.stop().await.expect("server stops");
        }
    });
}

/// What the filter does for a message, chosen by its sender.
async fn faulty(s: &mut async_milter::Session) -> Result<Verdict, Error> {
    let from = s.envelope_from().await?.address;
    match from.to_str().unwrap() {
        "<error-at-mail@example.com>" => return Err(Error::filter("broken at MAIL")),
        "<error-at-header@example.com>" => {
            s.next_header().await?;
            s.add_header("X-Lost", "edits of a failed filter are dropped")?;
            return Err(Error::filter("broken at header"));
        }
        "<panic-at-body@example.com>" => {
            s.next_body_chunk().await?;
            panic!("filter panicked on purpose");
        }
        "<panic-at-eom@example.com>" => {
            s.end_of_message().await?;
            s.add_header("X-Lost", "edits of a panicked filter are dropped")?;
            panic!("filter panicked on purpose at end of message");
        }
        _ => {}
    }
    s.end_of_message().await?;
    s.add_header("X-Fine", "yes")?;
    Ok(Verdict::Accept)
}

/// Where in an outcome the fault's reply shows.
type ReplyOf = fn(&async_milter::testing::Outcome) -> Option<Reply>;

fn faults() -> [(&'static str, ReplyOf); 4] {
    [
        ("<error-at-mail@example.com>", |o| Some(o.mail.clone())),
        ("<error-at-header@example.com>", |o| {
            o.headers.first().cloned()
        }),
        ("<panic-at-body@example.com>", |o| o.body.first().cloned()),
        ("<panic-at-eom@example.com>", |o| {
            o.end_of_message.as_ref().map(|e| e.reply.clone())
        }),
    ]
}

on_every_runtime!(filter_errors_and_panics_get_the_error_verdict_and_the_next_message_is_served);
fn filter_errors_and_panics_get_the_error_verdict_and_the_next_message_is_served() {
    run(async {
        let custom = ReplyCode::temporary(451, "4.3.0", "filter trouble, 100% sorry").unwrap();
        let configured = [
            (None, Reply::Tempfail),
            (Some(Verdict::Reject), Reply::Reject),
            (
                Some(Verdict::Reply(custom)),
                Reply::ReplyCode("451 4.3.0 filter trouble, 100%% sorry".into()),
            ),
        ];
        for profile in profiles() {
            for (error_verdict, expected) in configured.clone() {
                let mut config = ServerConfig::default();
                if let Some(verdict) = error_verdict {
                    config.connection = ConnectionConfig {
                        error_verdict: verdict,
                        ..ConnectionConfig::default()
                    };
                }
                let harness = serve_with(filter(|s| Box::pin(faulty(s))), config).await;
                let who = format!("{} {expected:?}", name(&profile));
                let mut client = harness.client(profile.clone()).await;
                // A second connection, open the whole time, must not notice anything.
                let mut bystander = harness.client(profile.clone()).await;
                for (sender, reply_of) in faults() {
                    let outcome = client
                        .send_message(&Envelope::new(sender, &["<b@example.net>"]), MESSAGE)
                        .await
                        .unwrap();
                    assert_eq!(reply_of(&outcome), Some(expected.clone()), "{who} {sender}");
                    assert_eq!(outcome.verdict, expected, "{who} {sender}");
                    assert!(outcome.modifications.is_empty(), "{who} {sender}");
                    // The next message on the same connection is served normally.
                    let outcome = client.send_message(&envelope(), MESSAGE).await.unwrap();
                    assert_eq!(outcome.verdict, Reply::Accept, "{who} after {sender}");
                    assert_eq!(
                        outcome.modifications,
                        [appended(&profile, "X-Fine", "yes")],
                        "{who} after {sender}"
                    );
                    let outcome = bystander.send_message(&envelope(), MESSAGE).await.unwrap();
                    assert_eq!(outcome.verdict, Reply::Accept, "{who} bystander");
                }
                client.quit().await.expect("quit");
                bystander.quit().await.expect("quit");
                harness.stop().await.expect("server stops");
            }
        }
    });
}

on_every_runtime!(a_filter_error_before_mail_fails_the_message_not_the_connection);
/// An error before MAIL is about the message, never the connection: the session goes on
/// and the message gets the error reply.
fn a_filter_error_before_mail_fails_the_message_not_the_connection() {
    run(async {
        for profile in profiles() {
            let harness = serve(filter(|s| {
                Box::pin(async move {
                    if s.helo().await?.is_some_and(|h| h == "broken.example.com") {
                        return Err(Error::filter("cannot handle this client"));
                    }
                    s.end_of_message().await?;
                    Ok(Verdict::Accept)
                })
            }))
            .await;
            let who = name(&profile);
            let mut client = harness.negotiated(profile).await;
            let connect = client
                .connect(
                    "broken.example.com",
                    async_milter::proto::Family::Inet,
                    1,
                    "192.0.2.9",
                )
                .await
                .unwrap();
            assert_eq!(connect, Reply::Continue, "{who}");
            assert_eq!(
                client.helo("broken.example.com").await.unwrap(),
                Reply::Continue
            );
            let outcome = client.send_message(&envelope(), MESSAGE).await.unwrap();
            assert_eq!(outcome.mail, Reply::Tempfail, "{who}");
            client.quit().await.expect("quit");
            harness.stop().await.expect("server stops");
        }
    });
}
