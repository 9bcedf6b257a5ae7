//! Regressions found in review and issue items: each test drives a real filter through the
//! test kit.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_milter::proto::{Actions, Events, Family, MAX_REPLY_LINE, MacroStage, ReplyCode};
use async_milter::server::ServerConfig;
use async_milter::session::FnFilter;
use async_milter::testing::{Envelope, MtaKind, Profile, Reply, in_process};
use async_milter::{Error, Filter, Needs, Session, Verdict};

const MESSAGE: &[u8] = b"Subject: hello\r\nX-Bad: yes\r\n\r\nbody\r\n";

/// Recipients until the stream ends, then accept: DATA is switched off, so the stream
/// ends at the first header, which must read as the end, not as a phase passed.
async fn recipients_then_accept(session: &mut Session) -> Result<Verdict, Error> {
    while session.next_recipient().await?.is_some() {}
    while session.next_header().await?.is_some() {}
    Ok(Verdict::Accept)
}

#[async_std::test]
async fn streams_end_at_the_next_event_when_the_one_between_is_switched_off() {
    for profile in [Profile::postfix(), Profile::sendmail()] {
        let needs =
            Needs::everything().events(Events::MAIL | Events::RCPT | Events::HEADER | Events::EOH);
        let filter = FnFilter::new(recipients_then_accept).with_needs(needs);
        let mut client = in_process(filter, profile).unwrap();
        client.negotiate().await.unwrap();
        let envelope = Envelope::new("<a@example.com>", &["<b@example.com>"]);
        let outcome = client.send_message(&envelope, MESSAGE).await.unwrap();
        assert_eq!(
            outcome.verdict,
            Reply::Accept,
            "{:?}",
            client.profile().kind
        );
    }
}

/// Rejects any message with an `X-Bad` header; needs headers only, never MAIL.
struct HeadersOnly {
    calls: Arc<AtomicUsize>,
}

impl Filter for HeadersOnly {
    fn needs(&self) -> Needs {
        Needs::everything().events(Events::HEADER | Events::EOH)
    }

    async fn filter(&self, session: &mut Session) -> Result<Verdict, Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        while let Some(header) = session.next_header().await? {
            if header.name.eq_ignore_ascii_case("X-Bad") {
                return Ok(Verdict::Reject);
            }
        }
        Ok(Verdict::Continue)
    }
}

#[async_std::test]
async fn every_message_gets_its_own_call_without_mail_or_abort() {
    for profile in [Profile::sendmail(), Profile::postfix()] {
        let calls = Arc::new(AtomicUsize::new(0));
        let filter = HeadersOnly {
            calls: calls.clone(),
        };
        let mut client = in_process(filter, profile).unwrap();
        client.negotiate().await.unwrap();
        client
            .connect("client.example.com", Family::Inet, 4000, "192.0.2.1")
            .await
            .unwrap();
        client.helo("client.example.com").await.unwrap();
        let envelope = Envelope::new("<a@example.com>", &["<b@example.com>"]);
        for round in 0..3 {
            let outcome = client.send_message(&envelope, MESSAGE).await.unwrap();
            assert_eq!(outcome.verdict, Reply::Reject, "message {round}");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}

/// Counts calls and sees HELO twice within the call that began at connect.
async fn helo_twice(session: &mut Session) -> Result<Verdict, Error> {
    session.envelope_from().await?;
    Ok(Verdict::Continue)
}

#[async_std::test]
async fn abort_after_a_repeated_helo_does_not_end_the_call_begun_at_connect() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let filter = FnFilter::new(helo_twice);
    let mut client = in_process(
        Counting {
            inner: filter,
            calls: counted,
        },
        Profile::postfix(),
    )
    .unwrap();
    client.negotiate().await.unwrap();
    client
        .connect("c.example", Family::Inet, 1, "192.0.2.1")
        .await
        .unwrap();
    client.helo("c.example").await.unwrap();
    // Postfix on a second EHLO (after STARTTLS, say): HELO, then ABORT.
    client.helo("c.example").await.unwrap();
    client.abort().await.unwrap();
    let envelope = Envelope::new("<a@example.com>", &["<b@example.com>"]);
    let outcome = client.send_message(&envelope, MESSAGE).await.unwrap();
    assert_eq!(outcome.verdict, Reply::Continue);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "one call for the first message"
    );
}

/// Wraps a filter and counts its calls.
struct Counting<F> {
    inner: F,
    calls: Arc<AtomicUsize>,
}

impl<F: Filter> Filter for Counting<F> {
    fn needs(&self) -> Needs {
        self.inner.needs().optional_actions(Actions::EMPTY)
    }

    async fn filter(&self, session: &mut Session) -> Result<Verdict, Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.filter(session).await
    }
}

async fn reads_headers(session: &mut Session) -> Result<Verdict, Error> {
    while session.next_header().await?.is_some() {}
    Ok(Verdict::Accept)
}

#[async_std::test]
async fn a_flood_of_headers_fails_the_message_instead_of_growing_without_bound() {
    let config = async_milter::connection::ConnectionConfig {
        max_headers: 50,
        ..Default::default()
    };
    let mut message = Vec::new();
    for i in 0..51 {
        message.extend_from_slice(format!("X-Junk-{i}: x\r\n").as_bytes());
    }
    message.extend_from_slice(b"\r\nbody\r\n");
    let builder = async_milter::connection::Builder::new(async_milter::rt::AsyncStd).config(config);
    let mut client =
        async_milter::testing::in_process_with(&builder, reads_headers, Profile::postfix())
            .unwrap();
    client.negotiate().await.unwrap();
    let envelope = Envelope::new("<a@example.com>", &["<b@example.com>"]);
    let outcome = client.send_message(&envelope, &message).await.unwrap();
    assert!(
        matches!(outcome.verdict, Reply::Tempfail),
        "{:?}",
        outcome.verdict
    );
    // One header fewer is fine.
    let mut client =
        async_milter::testing::in_process_with(&builder, reads_headers, Profile::postfix())
            .unwrap();
    client.negotiate().await.unwrap();
    let shorter = &message[message.iter().position(|&b| b == b'\n').unwrap() + 1..];
    let outcome = client.send_message(&envelope, shorter).await.unwrap();
    assert_eq!(outcome.verdict, Reply::Accept);
}

/// After the header limit failed the message, a peer that kept sending headers started a
/// filter call (and an error log line) per header.
#[async_std::test]
async fn headers_sent_after_the_limit_failed_the_message_start_no_new_calls() {
    let config = async_milter::connection::ConnectionConfig {
        max_headers: 5,
        ..Default::default()
    };
    let calls = Arc::new(AtomicUsize::new(0));
    let filter = Counting {
        inner: FnFilter::new(reads_headers),
        calls: calls.clone(),
    };
    let builder = async_milter::connection::Builder::new(async_milter::rt::AsyncStd).config(config);
    let mut client =
        async_milter::testing::in_process_with(&builder, filter, Profile::sendmail()).unwrap();
    client.negotiate().await.unwrap();
    client
        .connect("client.example.com", Family::Inet, 4000, "192.0.2.1")
        .await
        .unwrap();
    client.mail("<a@example.com>", &[]).await.unwrap();
    client.rcpt("<b@example.com>", &[]).await.unwrap();
    client.data().await.unwrap();
    let mut replies = Vec::new();
    for i in 0..50 {
        replies.push(client.header(&format!("X-Flood-{i}"), " x").await.unwrap());
    }
    assert_eq!(replies.iter().filter(|r| **r == Reply::Continue).count(), 5);
    assert!(
        replies[5..].iter().all(|r| *r == Reply::Tempfail),
        "{replies:?}"
    );
    assert_eq!(
        client.end_of_message().await.unwrap().reply,
        Reply::Tempfail
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "one call for the whole message"
    );
    // The next message is served as usual.
    let envelope = Envelope::new("<a@example.com>", &["<b@example.com>"]);
    let outcome = client.send_message(&envelope, MESSAGE).await.unwrap();
    assert_eq!(outcome.verdict, Reply::Accept);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// Few headers, but large ones: the header count was limited, their bytes were not.
#[async_std::test]
async fn large_headers_fail_the_message_beyond_the_header_bytes_limit() {
    let config = async_milter::connection::ConnectionConfig {
        max_header_bytes: 64 * 1024,
        ..Default::default()
    };
    let value = "v".repeat(20 * 1024);
    let message_with = |headers: usize| {
        let mut message = Vec::new();
        for i in 0..headers {
            message.extend_from_slice(format!("X-Big-{i}: {value}\r\n").as_bytes());
        }
        message.extend_from_slice(b"\r\nbody\r\n");
        message
    };
    let builder = async_milter::connection::Builder::new(async_milter::rt::AsyncStd).config(config);
    let envelope = Envelope::new("<a@example.com>", &["<b@example.com>"]);
    for (headers, expected) in [(4, Reply::Tempfail), (3, Reply::Accept)] {
        let mut client =
            async_milter::testing::in_process_with(&builder, reads_headers, Profile::postfix())
                .unwrap();
        client.negotiate().await.unwrap();
        let outcome = client
            .send_message(&envelope, &message_with(headers))
            .await
            .unwrap();
        assert_eq!(outcome.verdict, expected, "{headers} headers of 20 KiB");
    }
}

/// Adds `X-Queue-Id-At-Mail` and `X-Queue-Id-At-Eom` with what `Session::queue_id` said.
async fn report_queue_id(session: &mut Session) -> Result<Verdict, Error> {
    session.envelope_from().await?;
    let at_mail = session.queue_id().unwrap_or("-").to_owned();
    session.end_of_message().await?;
    let at_eom = session.queue_id().unwrap_or("-").to_owned();
    session.add_header("X-Queue-Id-At-Mail", at_mail)?;
    session.add_header("X-Queue-Id-At-Eom", at_eom)?;
    Ok(Verdict::Accept)
}

/// A filter asking for `{auth_authen}` at MAIL replaced Sendmail's MAIL list, which is the
/// only one with the queue id `i`, so `Session::queue_id` stayed empty on Sendmail.
#[async_std::test]
async fn a_macro_list_at_mail_keeps_the_queue_id() {
    for profile in [Profile::sendmail(), Profile::postfix()] {
        let kind = profile.kind;
        let queue_id = profile.queue_id.clone();
        let needs = Needs::new()
            .events(Events::MAIL)
            .actions(Actions::ADD_HEADERS)
            .macros(MacroStage::Mail, "{auth_authen}");
        let filter = FnFilter::new(report_queue_id).with_needs(needs);
        let mut client = in_process(filter, profile).unwrap();
        client.negotiate().await.unwrap();
        let envelope = Envelope::new("<a@example.com>", &["<b@example.com>"]);
        let outcome = client.send_message(&envelope, MESSAGE).await.unwrap();
        let delivered = outcome.delivered.expect("delivered");
        // Postfix picks its queue id only after the first RCPT (protocol reference §5.7).
        let at_mail = if kind == MtaKind::Postfix {
            "-"
        } else {
            queue_id.as_str()
        };
        // Delivered values are as they stand after the colon: the MTA adds the space.
        assert_eq!(
            delivered.header("X-Queue-Id-At-Mail"),
            Some(format!(" {at_mail}").as_str()),
            "{kind:?}"
        );
        assert_eq!(
            delivered.header("X-Queue-Id-At-Eom"),
            Some(format!(" {queue_id}").as_str()),
            "{kind:?}"
        );
    }
}

/// Rejects at end of message naming the `X-Name` header's value, as a filter naming a
/// refused attachment would.
async fn reject_naming_header(session: &mut Session) -> Result<Verdict, Error> {
    let mut name = String::new();
    while let Some(header) = session.next_header().await? {
        if header.name.eq_ignore_ascii_case("X-Name") {
            name = String::from_utf8_lossy(header.value.as_bytes()).into_owned();
        }
    }
    session.end_of_message().await?;
    let text = format!("attachment {name} refused");
    Ok(Verdict::Reply(
        ReplyCode::sanitized(550, "5.7.1", &text).map_err(Error::filter)?,
    ))
}

/// A peer-controlled value in a reject text cannot turn the reject into an error reply.
#[async_std::test]
async fn a_hostile_name_in_a_sanitized_reply_still_rejects() {
    let folded = format!(
        "Subject: x\r\nX-Name: a.exe\r\n 250 2.0.0 Ok 100%{}\r\n\r\nbody\r\n",
        "n".repeat(2000)
    );
    for profile in [Profile::postfix(), Profile::sendmail()] {
        let needs = Needs::new().events(Events::HEADER | Events::EOH);
        let filter = FnFilter::new(reject_naming_header).with_needs(needs);
        let mut client = in_process(filter, profile).unwrap();
        client.negotiate().await.unwrap();
        let envelope = Envelope::new("<a@example.com>", &["<b@example.com>"]);
        let outcome = client
            .send_message(&envelope, folded.as_bytes())
            .await
            .unwrap();
        let Reply::ReplyCode(text) = outcome.verdict else {
            panic!("not a custom reply: {:?}", outcome.verdict);
        };
        assert!(
            text.starts_with("550 5.7.1 attachment a.exe  250 2.0.0 Ok 100%%nnn"),
            "{text:?}"
        );
        assert!(!text.contains(['\r', '\n', '\0']), "{text:?}");
        assert_eq!(text.len(), MAX_REPLY_LINE);
    }
}

async fn accept_all(_session: &mut Session) -> Result<Verdict, Error> {
    Ok(Verdict::Accept)
}

#[async_std::test]
async fn a_macro_list_with_a_nul_is_refused_when_the_server_starts() {
    // Negotiation cannot carry it, so every connection would end at OPTNEG: the server
    // refuses the filter before it accepts any.
    let needs = Needs::everything().macros(MacroStage::Connect, "{daemon_name}\0j");
    let filter = FnFilter::new(accept_all).with_needs(needs);
    let server = async_milter::Server::bind_with("inet:0@127.0.0.1", ServerConfig::default())
        .await
        .unwrap();
    let served = async_std::future::timeout(Duration::from_secs(30), server.serve(filter))
        .await
        .expect("serve returns at once");
    let error = served.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    assert!(error.to_string().contains("macro list"), "{error}");
}
