//! The callback style: negotiation derived from the hooks registered, statuses landing where
//! libmilter's do, the per-connection value and its close hook, edits at end of message.

// Hooks are async fns by contract; these have nothing to await.
#![allow(clippy::unused_async)]

use std::sync::{Arc, Mutex};

use async_milter::hooks::{Context, Hooks, Status};
use async_milter::proto::{Actions, Family, ProtocolFlags as P};
use async_milter::session::{Address, Client, HeaderField, HeaderHandle};
use async_milter::testing::{Envelope, Modification, Profile, Reply, in_process};
use async_milter::{Bytes, Error, ReplyCode, Text};

fn run(body: impl std::future::Future<Output = ()>) {
    async_std::task::block_on(body);
}

type Log = Arc<Mutex<Vec<String>>>;

fn text(t: &Text) -> String {
    t.to_str().unwrap_or("?").to_owned()
}

/// A value that logs every hook into a shared log.
#[derive(Default)]
struct Logger {
    log: Log,
    messages: u32,
    subject: Option<HeaderHandle>,
}

impl Logger {
    fn note(&self, line: String) {
        self.log.lock().unwrap().push(line);
    }
    async fn connect(&mut self, _: &mut Context<'_>, client: Client) {
        self.note(format!("connect {}", text(&client.hostname)));
    }
    async fn helo(&mut self, _: &mut Context<'_>, name: Text) -> Status {
        self.note(format!("helo {}", text(&name)));
        if text(&name) == "bad.example" {
            return Status::Reject;
        }
        Status::Continue
    }
    async fn mail(&mut self, ctx: &mut Context<'_>, from: Address) -> Status {
        self.messages += 1;
        self.subject = None;
        self.note(format!("mail {} #{}", text(&from.address), self.messages));
        if text(&from.address) == "<spammer@example.com>" {
            ctx.set_reply(ReplyCode::permanent(550, "5.7.1", "not you").unwrap());
            return Status::Reject;
        }
        if text(&from.address) == "<mismatch@example.com>" {
            // A 4xx reply does not apply to a reject: the default reject goes out.
            ctx.set_reply(ReplyCode::temporary(451, "4.7.1", "later").unwrap());
            return Status::Reject;
        }
        Status::Continue
    }
    async fn rcpt(&mut self, ctx: &mut Context<'_>, to: Address) -> Status {
        let rejected = ctx.recipient_rejected_by_mta();
        self.note(format!("rcpt {} rejected={rejected}", text(&to.address)));
        match text(&to.address).as_str() {
            "<nobody@example.net>" => Status::Reject,
            "<later@example.net>" => {
                ctx.set_reply(ReplyCode::temporary(450, "4.2.1", "mailbox busy").unwrap());
                Status::Tempfail
            }
            _ => Status::Continue,
        }
    }
    async fn data(&mut self, _: &mut Context<'_>) {
        self.note("data".into());
    }
    async fn header(&mut self, _: &mut Context<'_>, field: HeaderField) {
        self.note(format!("header {}", text(&field.name)));
        if field.name.eq_ignore_ascii_case("Subject") {
            self.subject = Some(field.handle);
        }
    }
    async fn eoh(&mut self, _: &mut Context<'_>) {
        self.note("eoh".into());
    }
    async fn body(&mut self, _: &mut Context<'_>, chunk: Bytes) -> Status {
        self.note(format!("body {}", chunk.len()));
        Status::Skip
    }
    async fn eom(&mut self, ctx: &mut Context<'_>) -> Result<Status, Error> {
        self.note(format!("eom queue id {}", ctx.queue_id().unwrap_or("-")));
        ctx.add_header("X-Hooks", "seen")?;
        if let Some(subject) = self.subject {
            ctx.delete_header(subject)?;
        }
        ctx.add_recipient("<added@example.com>", Some("NOTIFY=NEVER"))?;
        Ok(Status::Accept)
    }
    async fn abort(&mut self, _: &mut Context<'_>) {
        self.note("abort".into());
    }
    async fn unknown(&mut self, _: &mut Context<'_>, line: Text) -> Status {
        self.note(format!("unknown {}", text(&line)));
        Status::Reject
    }
}

fn logger_hooks(log: &Log) -> Hooks<Logger> {
    let log = log.clone();
    let closed = log.clone();
    Hooks::new(move || Logger {
        log: log.clone(),
        ..Logger::default()
    })
    .on_connect(Logger::connect)
    .on_helo(Logger::helo)
    .on_mail(Logger::mail)
    .on_rcpt(Logger::rcpt)
    .on_data(Logger::data)
    .on_header(Logger::header)
    .on_eoh(Logger::eoh)
    .on_body(Logger::body)
    .on_eom(Logger::eom)
    .on_abort(Logger::abort)
    .on_unknown(Logger::unknown)
    .on_close(move |value: &mut Logger| {
        closed
            .lock()
            .unwrap()
            .push(format!("close after {} messages", value.messages));
    })
}

// ===== negotiation =====

#[derive(Default)]
struct Nothing;

impl Nothing {
    async fn answers(&mut self, _: &mut Context<'_>) -> Status {
        Status::Continue
    }
    async fn silent(&mut self, _: &mut Context<'_>) {}
    async fn client(&mut self, _: &mut Context<'_>, _: Client) -> Status {
        Status::Continue
    }
    async fn name(&mut self, _: &mut Context<'_>, _: Text) -> Result<Status, Error> {
        Ok(Status::Continue)
    }
    async fn field(&mut self, _: &mut Context<'_>, _: HeaderField) {}
    async fn field_answering(&mut self, _: &mut Context<'_>, _: HeaderField) -> Status {
        Status::Continue
    }
    async fn chunk(&mut self, _: &mut Context<'_>, _: Bytes) -> Status {
        Status::Continue
    }
    async fn address(&mut self, _: &mut Context<'_>, _: Address) -> Result<(), Error> {
        Ok(())
    }
}

const ALL_NO: P = P::from_bits(
    P::NO_CONNECT.bits()
        | P::NO_HELO.bits()
        | P::NO_MAIL.bits()
        | P::NO_RCPT.bits()
        | P::NO_BODY.bits()
        | P::NO_HEADER.bits()
        | P::NO_EOH.bits()
        | P::NO_UNKNOWN.bits()
        | P::NO_DATA.bits(),
);

async fn negotiated(hooks: Hooks<Nothing>) -> P {
    let mut client = in_process(hooks, Profile::postfix()).unwrap();
    let negotiated = client.negotiate().await.unwrap();
    client.quit().await.unwrap();
    negotiated.protocol
}

#[test]
fn negotiation_follows_the_hooks_registered_and_their_return_types() {
    run(async {
        let new = || Hooks::new(|| Nothing);
        let cases: Vec<(&str, Hooks<Nothing>, P)> = vec![
            ("only eom", new().on_eom(Nothing::answers), ALL_NO),
            (
                "connect and helo returning a status",
                new()
                    .on_connect(Nothing::client)
                    .on_helo(Nothing::name)
                    .on_eom(Nothing::silent),
                ALL_NO - P::NO_CONNECT - P::NO_HELO,
            ),
            (
                "header returning nothing",
                new().on_header(Nothing::field),
                (ALL_NO - P::NO_HEADER) | P::NR_HEADER,
            ),
            (
                "header returning a status",
                new().on_header(Nothing::field_answering),
                ALL_NO - P::NO_HEADER,
            ),
            (
                "mail and rcpt returning Result<()>",
                new().on_mail(Nothing::address).on_rcpt(Nothing::address),
                (ALL_NO - P::NO_MAIL - P::NO_RCPT) | P::NR_MAIL | P::NR_RCPT,
            ),
            (
                "body returning a status: SKIP",
                new().on_body(Nothing::chunk),
                (ALL_NO - P::NO_BODY) | P::SKIP,
            ),
            (
                "data, eoh and unknown returning nothing",
                new()
                    .on_data(Nothing::silent)
                    .on_eoh(Nothing::silent)
                    .on_unknown(|_: &mut Nothing, _: &mut Context<'_>, _: Text| async {}),
                (ALL_NO - P::NO_DATA - P::NO_EOH - P::NO_UNKNOWN)
                    | P::NR_DATA
                    | P::NR_EOH
                    | P::NR_UNKNOWN,
            ),
            (
                "rejected recipients asked for",
                new().on_rcpt(Nothing::address).options(P::RCPT_REJECTED),
                (ALL_NO - P::NO_RCPT) | P::NR_RCPT | P::RCPT_REJECTED,
            ),
        ];
        for (what, hooks, expected) in cases {
            assert_eq!(negotiated(hooks).await, expected, "{what}");
        }
    });
}

#[test]
fn actions_default_to_every_edit_and_can_be_required() {
    run(async {
        let mut client = in_process(Hooks::new(|| Nothing), Profile::sendmail()).unwrap();
        assert_eq!(
            client.negotiate().await.unwrap().actions,
            Actions::V6 - Actions::SET_MACRO_LIST
        );
        let required = Hooks::new(|| Nothing).actions(Actions::ADD_HEADERS);
        let mut client = in_process(required, Profile::sendmail()).unwrap();
        assert_eq!(
            client.negotiate().await.unwrap().actions,
            Actions::ADD_HEADERS
        );
    });
}

// ===== behaviour =====

async fn wait_for(log: &Log, line: &str) {
    for _ in 0..200 {
        if log.lock().unwrap().iter().any(|l| l == line) {
            return;
        }
        async_std::task::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("{line:?} never logged: {:?}", log.lock().unwrap());
}

#[test]
fn every_hook_runs_in_order_with_statuses_landing_where_libmilters_do() {
    run(async {
        for profile in [Profile::postfix(), Profile::sendmail()] {
            let log = Log::default();
            let mut client = in_process(logger_hooks(&log), profile.clone()).unwrap();
            client.negotiate().await.unwrap();
            client
                .connect("client.example.com", Family::Inet, 1, "192.0.2.1")
                .await
                .unwrap();
            assert_eq!(client.unknown("XFOO").await.unwrap(), Reply::Reject);
            assert_eq!(
                client.helo("client.example.com").await.unwrap(),
                Reply::Continue
            );

            // setreply with a matching class, and a mismatched one ignored.
            let refused = Envelope::new("<spammer@example.com>", &["<a@example.net>"]);
            let outcome = client.send_message(&refused, b"\r\n").await.unwrap();
            assert_eq!(outcome.mail, Reply::ReplyCode("550 5.7.1 not you".into()));
            let mismatch = Envelope::new("<mismatch@example.com>", &["<a@example.net>"]);
            let outcome = client.send_message(&mismatch, b"\r\n").await.unwrap();
            assert_eq!(outcome.mail, Reply::Reject);

            let envelope = Envelope::new(
                "<alice@example.com>",
                &[
                    "<bob@example.net>",
                    "<nobody@example.net>",
                    "<later@example.net>",
                ],
            );
            let outcome = client
                .send_message(
                    &envelope,
                    b"Subject: hello\r\nFrom: alice\r\n\r\nHello\r\nWorld\r\n",
                )
                .await
                .unwrap();
            let replies: Vec<&Reply> = outcome.rcpts.iter().map(|(_, r)| r).collect();
            assert_eq!(
                replies,
                [
                    &Reply::Continue,
                    &Reply::Reject,
                    &Reply::ReplyCode("450 4.2.1 mailbox busy".into())
                ]
            );
            assert_eq!(outcome.body, [Reply::Skip]);
            assert_eq!(outcome.verdict, Reply::Accept);
            assert!(
                outcome
                    .modifications
                    .contains(&Modification::AddRcptWithArgs {
                        rcpt: "<added@example.com>".into(),
                        args: Some("NOTIFY=NEVER".into()),
                    }),
                "{:?}",
                outcome.modifications
            );
            let delivered = outcome.delivered.as_ref().expect("delivered");
            assert_eq!(delivered.header("Subject"), None);
            assert_eq!(delivered.header("X-Hooks"), Some(" seen"));

            // An aborted message runs the abort hook; the close hook runs at the end.
            client.mail("<carol@example.com>", &[]).await.unwrap();
            client.abort().await.unwrap();
            client.quit().await.unwrap();
            wait_for(&log, "close after 4 messages").await;
            let log = log.lock().unwrap().clone();
            assert_eq!(
                log,
                [
                    "connect client.example.com",
                    "unknown XFOO",
                    "helo client.example.com",
                    "mail <spammer@example.com> #1",
                    "mail <mismatch@example.com> #2",
                    "mail <alice@example.com> #3",
                    "rcpt <bob@example.net> rejected=false",
                    "rcpt <nobody@example.net> rejected=false",
                    "rcpt <later@example.net> rejected=false",
                    "data",
                    "header Subject",
                    "header From",
                    "eoh",
                    "body 14",
                    &format!("eom queue id {}", profile.queue_id),
                    "mail <carol@example.com> #4",
                    "abort",
                    "close after 4 messages",
                ],
                "{:?}",
                profile.kind
            );
        }
    });
}

#[test]
fn a_helo_reject_refuses_the_connection_and_close_still_runs() {
    run(async {
        let log = Log::default();
        let mut client = in_process(logger_hooks(&log), Profile::postfix()).unwrap();
        client.negotiate().await.unwrap();
        client
            .connect("client.example.com", Family::Inet, 1, "192.0.2.1")
            .await
            .unwrap();
        assert_eq!(client.helo("bad.example").await.unwrap(), Reply::Reject);
        wait_for(&log, "close after 0 messages").await;
    });
}

#[test]
fn rejected_recipients_reach_the_rcpt_hook_marked() {
    run(async {
        let log = Log::default();
        let hooks = logger_hooks(&log).options(P::RCPT_REJECTED);
        let mut client = in_process(hooks, Profile::postfix()).unwrap();
        client.negotiate().await.unwrap();
        client.mail("<alice@example.com>", &[]).await.unwrap();
        client
            .rcpt_rejected(
                "<gone@example.net>",
                &[],
                "550 5.1.1 <gone@example.net>: no",
            )
            .await
            .unwrap();
        client.rcpt("<bob@example.net>", &[]).await.unwrap();
        client.quit().await.unwrap();
        wait_for(&log, "close after 1 messages").await;
        let log = log.lock().unwrap().clone();
        assert!(log.contains(&"rcpt <gone@example.net> rejected=true".to_owned()));
        assert!(log.contains(&"rcpt <bob@example.net> rejected=false".to_owned()));
    });
}

#[derive(Default)]
struct Faulty;

impl Faulty {
    async fn header(&mut self, ctx: &mut Context<'_>, field: HeaderField) -> Result<(), Error> {
        assert!(!field.name.eq_ignore_ascii_case("X-Panic"), "hook panicked");
        // Not negotiated: refused when queued, and the error fails the message.
        ctx.quarantine("no")?;
        Ok(())
    }
}

#[test]
fn hook_errors_and_panics_get_the_error_reply_for_that_message_only() {
    run(async {
        let hooks = Hooks::new(|| Faulty)
            .on_header(Faulty::header)
            .actions(Actions::ADD_HEADERS);
        let mut client = in_process(hooks, Profile::postfix()).unwrap();
        client.negotiate().await.unwrap();
        let envelope = Envelope::new("<a@example.com>", &["<b@example.net>"]);
        let outcome = client
            .send_message(&envelope, b"X-Panic: 1\r\n\r\nhi\r\n")
            .await
            .unwrap();
        assert_eq!(outcome.verdict, Reply::Tempfail);
        let outcome = client
            .send_message(&envelope, b"Subject: x\r\n\r\nhi\r\n")
            .await
            .unwrap();
        assert_eq!(outcome.verdict, Reply::Tempfail);
        let outcome = client.send_message(&envelope, b"\r\nhi\r\n").await.unwrap();
        assert_eq!(outcome.verdict, Reply::Continue);
        client.quit().await.unwrap();
    });
}
