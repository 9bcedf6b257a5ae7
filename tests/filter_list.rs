//! Several filters on one connection ([`FilterList`]), end to end through the test kit,
//! under both MTA profiles: every member sees every event once, answers merge by severity
//! (per event and per recipient), edits merge in list order over the message as the MTA
//! sent it, a failing member takes only its own edits with it, negotiation is the union of
//! the members' needs, a member may use only the actions it declared, and the members run
//! side by side (checked on a manual clock, so no test waits for real time).

use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use async_milter::connection::Builder;
use async_milter::proto::{Family, MacroStage, negotiate};
use async_milter::rt::{self, ManualClock, Timer};
use async_milter::session::Unavailable;
use async_milter::testing::{
    Envelope, MilterClient, Modification, MtaKind, Outcome, Profile, Reply, in_process,
    in_process_with,
};
use async_milter::{
    Actions, ConnectionConfig, Error, Events, Filter, FilterList, FnFilter, HeaderPosition, Needs,
    Phase, ProtocolFlags, ReplyCode, Session, Verdict, filter_fn,
};
use async_std::os::unix::net::UnixStream;
use futures::channel::oneshot;

/// Runs a test body on async-std, failing it if it takes longer than 30 s overall.
fn run<F: Future<Output = ()>>(body: F) {
    async_std::task::block_on(async {
        async_std::future::timeout(Duration::from_secs(30), body)
            .await
            .expect("test took longer than 30 s");
    });
}

fn profiles() -> [Profile; 2] {
    [Profile::postfix(), Profile::sendmail()]
}

/// A client for `list`, negotiated, with CONNECT and HELO sent.
async fn session(list: FilterList, profile: Profile) -> MilterClient<UnixStream> {
    start(in_process(list, profile).expect("in-process filter")).await
}

async fn start(mut client: MilterClient<UnixStream>) -> MilterClient<UnixStream> {
    client.negotiate().await.expect("negotiates");
    client
        .connect("client.example.com", Family::Inet, 50000, "192.0.2.1")
        .await
        .expect("CONNECT");
    client.helo("client.example.com").await.expect("HELO");
    client
}

/// Sends one message to `list` under `profile` and quits.
async fn one_message(list: FilterList, profile: Profile, message: &[u8]) -> Outcome {
    let mut client = session(list, profile).await;
    let outcome = client
        .send_message(&envelope(), message)
        .await
        .expect("message");
    client.quit().await.expect("QUIT");
    outcome
}

fn envelope() -> Envelope {
    Envelope::new(
        "<alice@example.com>",
        &["<r1@example.net>", "<r2@example.net>", "<r3@example.net>"],
    )
}

const MESSAGE: &[u8] = b"From: <alice@example.com>\r\nTo: <r1@example.net>\r\nSubject: hello\r\n\
X-Dup: a\r\nX-Dup: b\r\n\r\nfirst line\r\nsecond line\r\n";

/// A filter made of a closure, declaring `needs`.
fn declaring<F>(needs: Needs, function: F) -> FnFilter<F>
where
    F: for<'a> async_milter::session::FilterFn<'a>,
{
    FnFilter::new(function).with_needs(needs)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn code(code: u16, enhanced: &str, text: &str) -> ReplyCode {
    ReplyCode::new(code, enhanced, text).expect("valid reply code")
}

fn add(name: &str, value: &str) -> Modification {
    Modification::AddHeader {
        name: name.into(),
        value: value.into(),
    }
}

fn change(index: u32, name: &str, value: &str) -> Modification {
    Modification::ChangeHeader {
        index,
        name: name.into(),
        value: value.into(),
    }
}

fn inserted(index: u32, name: &str, value: &str) -> Modification {
    Modification::InsertHeader {
        index,
        name: name.into(),
        value: value.into(),
    }
}

/// INSHEADER index that appends on both MTAs (what ADDHEADER becomes on Sendmail).
const END_INDEX: u32 = 0x7fff_fffe;

/// Just above the filter's first header on Sendmail, whose list starts with the nine
/// header templates of a stock `sendmail.cf` (the kit's Sendmail model lacks them, so the
/// Sendmail indexes are checked as sent; tests/examples.rs explains).
const SENDMAIL_ABOVE_FIRST: u32 = 8;

/// A header added at the end, as sent to this MTA: ADDHEADER on Postfix, INSHEADER past the
/// end on Sendmail.
fn added(kind: MtaKind, name: &str, value: &str) -> Modification {
    match kind {
        MtaKind::Postfix => add(name, value),
        _ => inserted(END_INDEX, name, value),
    }
}

/// The delivered values of header `name`, as delivered (leading space included).
fn delivered_values(outcome: &Outcome, name: &str) -> Vec<String> {
    outcome
        .delivered
        .as_ref()
        .expect("delivered")
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.clone())
        .collect()
}

fn delivered_names(outcome: &Outcome) -> Vec<String> {
    outcome
        .delivered
        .as_ref()
        .expect("delivered")
        .headers
        .iter()
        .map(|h| h.name.clone())
        .collect()
}

// ===== every member sees every event exactly once =====

/// Records every event it awaits, one line each, then continues.
fn recorder(seen: Arc<Mutex<Vec<String>>>) -> impl Filter {
    filter_fn(move |session: &mut Session| {
        let seen = seen.clone();
        Box::pin(async move {
            let push = |line: String| lock(&seen).push(line);
            let helo = session.helo().await?;
            push(format!(
                "helo {}",
                helo.map(|h| h.to_string()).unwrap_or_default()
            ));
            let from = session.envelope_from().await?;
            push(format!("mail {}", from.address));
            while let Some(rcpt) = session.next_recipient().await? {
                push(format!("rcpt {}", rcpt.address()));
            }
            while let Some(header) = session.next_header().await? {
                push(format!("header {}: {}", header.name, header.value));
            }
            while let Some(chunk) = session.next_body_chunk().await? {
                push(format!("chunk {}", String::from_utf8_lossy(&chunk)));
            }
            session.end_of_message().await?;
            push("eom".to_owned());
            Ok(Verdict::Continue)
        })
    })
}

#[test]
fn each_member_sees_every_event_exactly_once() {
    run(async {
        for profile in profiles() {
            let kind = profile.kind;
            let logs: Vec<Arc<Mutex<Vec<String>>>> =
                (0..3).map(|_| Arc::new(Mutex::new(Vec::new()))).collect();
            let list = FilterList::new()
                .with("a", recorder(logs[0].clone()))
                .with("b", recorder(logs[1].clone()))
                .with("c", recorder(logs[2].clone()));
            assert_eq!(list.len(), 3);
            // Small chunks, so the body comes in several.
            let mut client = session(list, profile.with_body_chunk_size(8)).await;
            let body = "first line\r\nsecond line\r\n";
            let mut expected = Vec::new();
            for (n, subject) in ["one", "two"].into_iter().enumerate() {
                let message = format!(
                    "From: <alice@example.com>\r\nSubject: {subject}\r\nX-N: {n}\r\n\r\n{body}"
                );
                let outcome = client
                    .send_message(&envelope(), message.as_bytes())
                    .await
                    .expect("message");
                assert_eq!(outcome.verdict, Reply::Continue, "{kind:?}");
                assert_eq!(outcome.body.len(), 4, "{kind:?}: 25 bytes in chunks of 8");
                expected.extend(
                    [
                        "helo client.example.com",
                        "mail <alice@example.com>",
                        "rcpt <r1@example.net>",
                        "rcpt <r2@example.net>",
                        "rcpt <r3@example.net>",
                        "header From: <alice@example.com>",
                    ]
                    .map(str::to_owned),
                );
                expected.push(format!("header Subject: {subject}"));
                expected.push(format!("header X-N: {n}"));
                for chunk in body.as_bytes().chunks(8) {
                    expected.push(format!("chunk {}", String::from_utf8_lossy(chunk)));
                }
                expected.push("eom".to_owned());
            }
            client.quit().await.expect("QUIT");
            for (name, log) in ["a", "b", "c"].iter().zip(&logs) {
                assert_eq!(*lock(log), expected, "{kind:?}: filter {name}");
            }
        }
    });
}

// ===== answers merge by severity =====

/// Awaits up to `phase`, then returns `verdict`.
fn verdict_at(phase: Phase, verdict: Verdict) -> impl Filter {
    filter_fn(move |session: &mut Session| {
        let verdict = verdict.clone();
        Box::pin(async move {
            match phase {
                Phase::Mail => {
                    session.envelope_from().await?;
                }
                // Every recipient: the next await ends at DATA.
                Phase::Data => while session.next_recipient().await?.is_some() {},
                Phase::Header => {
                    session.next_header().await?;
                }
                Phase::EndOfHeaders => while session.next_header().await?.is_some() {},
                Phase::Body => {
                    session.next_body_chunk().await?;
                }
                _ => session.end_of_message().await?,
            }
            Ok(verdict)
        })
    })
}

/// The answer to the first event of `phase` in `outcome`.
fn reply_at(outcome: &Outcome, phase: Phase) -> Option<Reply> {
    match phase {
        Phase::Mail => Some(outcome.mail.clone()),
        Phase::Data => outcome.data.clone(),
        Phase::Header => outcome.headers.first().cloned(),
        Phase::EndOfHeaders => outcome.end_of_headers.clone(),
        Phase::Body => outcome.body.first().cloned(),
        _ => outcome.end_of_message.as_ref().map(|eom| eom.reply.clone()),
    }
}

/// Filter a's and b's phase and verdict; where to look and what is answered there; the
/// message's verdict.
type MergeRow = ((Phase, Verdict), (Phase, Verdict), Phase, Reply, Reply);

#[test]
fn answers_merge_by_severity_as_a_table() {
    use Phase::{Body, Data, EndOfHeaders, EndOfMessage as Eom, Header, Mail};
    use Verdict::{Accept, Continue, Discard, Reject, Tempfail};
    let policy = || Verdict::Reply(code(550, "5.7.1", "policy"));
    let later = || Verdict::Reply(code(451, "4.7.1", "later"));
    let policy_reply = Reply::ReplyCode("550 5.7.1 policy".into());
    let later_reply = Reply::ReplyCode("451 4.7.1 later".into());
    #[rustfmt::skip]
    let table: Vec<MergeRow> = vec![
        // Reject beats continue, in either order.
        ((Mail, Reject), (Eom, Continue), Mail, Reply::Reject, Reply::Reject),
        ((Eom, Continue), (Mail, Reject), Mail, Reply::Reject, Reply::Reject),
        ((Data, Continue), (Data, Reject), Data, Reply::Reject, Reply::Reject),
        // Reject beats tempfail, in either order.
        ((Mail, Tempfail), (Mail, Reject), Mail, Reply::Reject, Reply::Reject),
        ((Data, Reject), (Data, Tempfail), Data, Reply::Reject, Reply::Reject),
        ((Eom, Tempfail), (Eom, Reject), Eom, Reply::Reject, Reply::Reject),
        // Tempfail beats continue and discard.
        ((Header, Tempfail), (Eom, Continue), Header, Reply::Tempfail, Reply::Tempfail),
        ((Header, Discard), (Header, Tempfail), Header, Reply::Tempfail, Reply::Tempfail),
        // Discard beats continue and accept.
        ((EndOfHeaders, Discard), (Eom, Continue), EndOfHeaders, Reply::Discard, Reply::Discard),
        ((Eom, Discard), (Eom, Accept), Eom, Reply::Discard, Reply::Discard),
        ((Eom, Accept), (Eom, Discard), Eom, Reply::Discard, Reply::Discard),
        // A reply code: its class decides its rank; on a tie the first filter's answer wins.
        ((Data, policy()), (Eom, Continue), Data, policy_reply.clone(), policy_reply.clone()),
        ((Data, Reject), (Data, policy()), Data, Reply::Reject, Reply::Reject),
        ((Data, policy()), (Data, Reject), Data, policy_reply.clone(), policy_reply.clone()),
        ((Eom, later()), (Eom, Reject), Eom, Reply::Reject, Reply::Reject),
        ((Eom, later()), (Eom, Tempfail), Eom, later_reply.clone(), later_reply.clone()),
        ((Eom, Tempfail), (Eom, later()), Eom, Reply::Tempfail, Reply::Tempfail),
        ((Eom, later()), (Eom, Discard), Eom, later_reply.clone(), later_reply.clone()),
        // Accept ends one filter's part; the message is accepted when all have accepted.
        ((Mail, Accept), (Eom, Continue), Mail, Reply::Continue, Reply::Continue),
        ((Mail, Accept), (Data, Accept), Data, Reply::Accept, Reply::Accept),
        ((Mail, Accept), (Eom, Accept), Eom, Reply::Accept, Reply::Accept),
        ((Mail, Continue), (Eom, Accept), Eom, Reply::Continue, Reply::Continue),
        // Accepted at the first body chunk while the other waits for end of message: skip.
        ((Body, Accept), (Eom, Accept), Body, Reply::Skip, Reply::Accept),
        ((Body, Accept), (Body, Accept), Body, Reply::Accept, Reply::Accept),
    ];
    run(async {
        for profile in profiles() {
            let kind = profile.kind;
            for (row, (a, b, phase, at_phase, verdict)) in table.iter().enumerate() {
                let list = FilterList::new()
                    .with("a", verdict_at(a.0, a.1.clone()))
                    .with("b", verdict_at(b.0, b.1.clone()));
                let outcome = one_message(list, profile.clone(), MESSAGE).await;
                let what = format!("{kind:?} row {row}: a {a:?}, b {b:?}");
                assert_eq!(
                    reply_at(&outcome, *phase).as_ref(),
                    Some(at_phase),
                    "{what}"
                );
                assert_eq!(&outcome.verdict, verdict, "{what}");
                if verdict.is_refusal() || *verdict == Reply::Discard {
                    assert_eq!(outcome.delivered, None, "{what}");
                } else {
                    assert!(outcome.delivered.is_some(), "{what}");
                }
            }
        }
    });
}

/// Refuses the recipients named in `refused` with their answer; continues.
fn refusing(refused: Vec<(&'static str, Option<ReplyCode>, bool)>) -> impl Filter {
    filter_fn(move |session: &mut Session| {
        let refused = refused.clone();
        Box::pin(async move {
            while let Some(rcpt) = session.next_recipient().await? {
                for (address, code, temporary) in &refused {
                    if rcpt.address() == *address {
                        match (code, temporary) {
                            (Some(code), _) => rcpt.reply(code.clone())?,
                            (None, true) => rcpt.tempfail()?,
                            (None, false) => rcpt.reject()?,
                        }
                    }
                }
            }
            session.end_of_message().await?;
            Ok(Verdict::Continue)
        })
    })
}

#[test]
fn recipients_refused_by_any_filter_are_refused() {
    let no_user = code(550, "5.1.1", "no such user");
    run(async {
        for profile in profiles() {
            let kind = profile.kind;
            // a refuses r1, b refuses r2; both refuse r3, a for now and b for good.
            let list = FilterList::new()
                .with(
                    "a",
                    refusing(vec![
                        ("<r1@example.net>", None, false),
                        ("<r3@example.net>", None, true),
                    ]),
                )
                .with(
                    "b",
                    refusing(vec![
                        ("<r2@example.net>", Some(no_user.clone()), false),
                        ("<r3@example.net>", None, false),
                    ]),
                );
            let mut client = session(list, profile).await;
            let envelope = Envelope::new(
                "<alice@example.com>",
                &[
                    "<r1@example.net>",
                    "<r2@example.net>",
                    "<r3@example.net>",
                    "<r4@example.net>",
                ],
            );
            let outcome = client.send_message(&envelope, MESSAGE).await.unwrap();
            let replies: Vec<Reply> = outcome.rcpts.iter().map(|(_, r)| r.clone()).collect();
            assert_eq!(
                replies,
                [
                    Reply::Reject,
                    Reply::ReplyCode("550 5.1.1 no such user".into()),
                    Reply::Reject,
                    Reply::Continue
                ],
                "{kind:?}"
            );
            assert_eq!(outcome.verdict, Reply::Continue, "{kind:?}");
            let delivered = outcome.delivered.expect("delivered");
            let recipients: Vec<&str> = delivered
                .recipients
                .iter()
                .map(|r| r.address.as_str())
                .collect();
            assert_eq!(recipients, ["<r4@example.net>"], "{kind:?}");
            client.quit().await.unwrap();
        }
    });
}

/// Adds header `name` at end of message and returns `verdict`.
fn adding(name: &'static str, value: &'static str, verdict: Verdict) -> impl Filter {
    filter_fn(move |session: &mut Session| {
        let verdict = verdict.clone();
        Box::pin(async move {
            session.end_of_message().await?;
            session.add_header(name, value)?;
            Ok(verdict)
        })
    })
}

#[test]
fn accept_from_one_filter_ends_only_its_part() {
    run(async {
        for profile in profiles() {
            let kind = profile.kind;
            // a accepts at MAIL; b goes on and edits at end of message.
            let list = FilterList::new()
                .with("a", verdict_at(Phase::Mail, Verdict::Accept))
                .with("b", adding("X-B", "b", Verdict::Continue));
            let outcome = one_message(list, profile.clone(), MESSAGE).await;
            assert_eq!(outcome.mail, Reply::Continue, "{kind:?}");
            assert_eq!(outcome.headers.len(), 5, "{kind:?}: headers still sent");
            assert_eq!(outcome.modifications, [added(kind, "X-B", "b")], "{kind:?}");
            assert_eq!(outcome.verdict, Reply::Continue, "{kind:?}");
            assert_eq!(delivered_values(&outcome, "X-B"), [" b"], "{kind:?}");

            // An early accept with edits keeps them until end of message, with the others'.
            let early = filter_fn(|session: &mut Session| {
                Box::pin(async move {
                    session.envelope_from().await?;
                    session.add_header("X-A", "a")?;
                    Ok(Verdict::Accept)
                })
            });
            let list = FilterList::new()
                .with("a", early)
                .with("b", adding("X-B", "b", Verdict::Accept));
            let outcome = one_message(list, profile.clone(), MESSAGE).await;
            assert_eq!(outcome.mail, Reply::Continue, "{kind:?}");
            assert_eq!(
                outcome.modifications,
                [added(kind, "X-A", "a"), added(kind, "X-B", "b")],
                "{kind:?}"
            );
            assert_eq!(outcome.verdict, Reply::Accept, "{kind:?}: both accepted");
        }
    });
}

// ===== edits merge in list order =====

/// At end of message, runs `edit` on the session, then continues.
fn editing<F>(edit: F) -> impl Filter
where
    F: Fn(&mut Session) -> Result<(), Error> + Send + Sync + 'static,
{
    let edit = Arc::new(edit);
    filter_fn(move |session: &mut Session| {
        let edit = edit.clone();
        Box::pin(async move {
            session.end_of_message().await?;
            edit(session)?;
            Ok(Verdict::Continue)
        })
    })
}

/// The handle of the `nth` (from 0) header called `name`.
fn nth(session: &Session, name: &str, index: usize) -> async_milter::HeaderHandle {
    session
        .headers()
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .nth(index)
        .unwrap_or_else(|| panic!("header {name} #{index}"))
        .handle
}

#[test]
fn headers_added_by_both_are_all_added_in_list_order() {
    run(async {
        for profile in profiles() {
            let kind = profile.kind;
            let list = FilterList::new()
                .with(
                    "a",
                    editing(|s| {
                        s.add_header("X-A", "1")?;
                        s.add_header("X-Same", "from a")
                    }),
                )
                .with(
                    "b",
                    editing(|s| {
                        s.add_header("X-B", "2")?;
                        s.add_header("X-Same", "from b")
                    }),
                );
            let outcome = one_message(list, profile, MESSAGE).await;
            assert_eq!(
                outcome.modifications,
                [
                    added(kind, "X-A", "1"),
                    added(kind, "X-Same", "from a"),
                    added(kind, "X-B", "2"),
                    added(kind, "X-Same", "from b"),
                ],
                "{kind:?}"
            );
            let names = delivered_names(&outcome);
            assert_eq!(
                names[names.len() - 4..],
                ["X-A", "X-Same", "X-B", "X-Same"],
                "{kind:?}"
            );
            assert_eq!(
                delivered_values(&outcome, "X-Same"),
                [" from a", " from b"],
                "{kind:?}"
            );
        }
    });
}

/// An edit made at end of message.
type Edit = fn(&mut Session) -> Result<(), Error>;

/// a's edit, b's edit; the modifications sent; the X-Dup values and the Subject delivered.
type EditRow = (
    Edit,
    Edit,
    Vec<Modification>,
    Vec<&'static str>,
    &'static str,
);

#[test]
fn two_filters_changing_or_deleting_one_header_the_later_decides() {
    let change_a: Edit = |s| s.change_header(nth(s, "X-Dup", 1), "by a");
    let change_b: Edit = |s| s.change_header(nth(s, "X-Dup", 1), "by b");
    let delete: Edit = |s| s.delete_header(nth(s, "X-Dup", 1));
    let delete_first: Edit = |s| s.delete_header(nth(s, "X-Dup", 0));
    let subject_a: Edit = |s| s.change_header(nth(s, "Subject", 0), "from a");
    let subject_b: Edit = |s| s.change_header(nth(s, "Subject", 0), "from b");
    #[rustfmt::skip]
    let table: Vec<EditRow> = vec![
        // Both change Subject: b's value.
        (subject_a, subject_b, vec![change(1, "Subject", "from b")], vec![" a", " b"], " from b"),
        // a deletes the second X-Dup, b changes it: b's change stands.
        (delete, change_b, vec![change(2, "X-Dup", "by b")], vec![" a", " by b"], " hello"),
        // a changes it, b deletes it: deleted.
        (change_a, delete, vec![change(2, "X-Dup", "")], vec![" a"], " hello"),
        // Different instances: both apply (the higher index first, so neither shifts the other).
        (delete_first, change_b, vec![change(2, "X-Dup", "by b"), change(1, "X-Dup", "")], vec![" by b"], " hello"),
        (change_b, delete_first, vec![change(2, "X-Dup", "by b"), change(1, "X-Dup", "")], vec![" by b"], " hello"),
    ];
    run(async {
        for profile in profiles() {
            let kind = profile.kind;
            for (row, (a, b, modifications, dups, subject)) in table.iter().enumerate() {
                let list = FilterList::new()
                    .with("a", editing(*a))
                    .with("b", editing(*b));
                let outcome = one_message(list, profile.clone(), MESSAGE).await;
                assert_eq!(&outcome.modifications, modifications, "{kind:?} row {row}");
                assert_eq!(
                    &delivered_values(&outcome, "X-Dup"),
                    dups,
                    "{kind:?} row {row}"
                );
                assert_eq!(
                    delivered_values(&outcome, "Subject"),
                    [*subject],
                    "{kind:?} row {row}"
                );
            }
        }
    });
}

#[test]
fn inserts_from_both_land_where_each_asked() {
    let a = || {
        editing(|s| {
            let subject = nth(s, "Subject", 0);
            s.insert_header(HeaderPosition::Top, "X-A-Top", "1")?;
            s.insert_header(HeaderPosition::Before(subject), "X-A-Before", "1")?;
            s.insert_header(HeaderPosition::After(subject), "X-A-After", "1")
        })
    };
    let b = || {
        editing(|s| {
            let subject = nth(s, "Subject", 0);
            let from = nth(s, "From", 0);
            s.insert_header(HeaderPosition::Top, "X-B-Top", "1")?;
            s.insert_header(HeaderPosition::Before(subject), "X-B-Before", "1")?;
            s.insert_header(HeaderPosition::After(from), "X-B-After-From", "1")
        })
    };
    run(async {
        // Where they land: Postfix (its own Received: counted, as the real MTA does).
        let list = FilterList::new().with("a", a()).with("b", b());
        let outcome = one_message(list, Profile::postfix(), MESSAGE).await;
        assert_eq!(
            delivered_names(&outcome),
            [
                "X-A-Top",
                "X-B-Top",
                "Received",
                "From",
                "X-B-After-From",
                "To",
                "X-A-Before",
                "X-B-Before",
                "Subject",
                "X-A-After",
                "X-Dup",
                "X-Dup",
            ],
            "{:?}",
            outcome.modifications
        );

        // What is sent to Sendmail: positions counted past its header templates, highest
        // first; at one position the later filter's first, so the earlier one ends on top.
        let list = FilterList::new().with("a", a()).with("b", b());
        let outcome = one_message(list, Profile::sendmail(), MESSAGE).await;
        let subject = 2 + SENDMAIL_ABOVE_FIRST;
        assert_eq!(
            outcome.modifications,
            [
                inserted(subject + 1, "X-A-After", "1"),
                inserted(subject, "X-B-Before", "1"),
                inserted(subject, "X-A-Before", "1"),
                inserted(1 + SENDMAIL_ABOVE_FIRST, "X-B-After-From", "1"),
                inserted(0, "X-B-Top", "1"),
                inserted(0, "X-A-Top", "1"),
            ]
        );
    });
}

/// One filter inserts a header of the name another changes: the change still reaches the
/// header it meant (both MTAs count inserted headers in CHGHEADER indexes).
#[test]
fn a_change_survives_another_filters_insert_of_the_same_name() {
    run(async {
        for profile in profiles() {
            let kind = profile.kind;
            let list = FilterList::new()
                .with(
                    "a",
                    editing(|s| s.change_header(nth(s, "X-Dup", 0), "changed by a")),
                )
                .with(
                    "b",
                    editing(|s| s.insert_header(HeaderPosition::Top, "X-Dup", "top")),
                );
            let outcome = one_message(list, profile, MESSAGE).await;
            assert_eq!(
                outcome.modifications,
                [
                    inserted(0, "X-Dup", "top"),
                    change(2, "X-Dup", "changed by a")
                ],
                "{kind:?}"
            );
            assert_eq!(
                delivered_values(&outcome, "X-Dup"),
                [" top", " changed by a", " b"],
                "{kind:?}"
            );
        }
    });
}

#[test]
fn body_sender_and_quarantine_from_the_last_filter_recipients_from_all() {
    run(async {
        for profile in profiles() {
            let kind = profile.kind;
            let list = FilterList::new()
                .with(
                    "a",
                    editing(|s| {
                        s.replace_body("from a\r\n")?;
                        s.change_sender("<a@example.com>", None)?;
                        s.add_recipient("<x@example.org>", None)?;
                        s.add_recipient("<y@example.org>", None)?;
                        s.remove_recipient("<r1@example.net>")?;
                        s.quarantine("held by a")
                    }),
                )
                .with(
                    "b",
                    editing(|s| {
                        s.add_recipient("<y@example.org>", None)?;
                        s.add_recipient("<z@example.org>", None)?;
                        s.remove_recipient("<r1@example.net>")?;
                        s.remove_recipient("<r2@example.net>")?;
                        s.change_sender("<b@example.com>", Some("RET=HDRS"))?;
                        s.replace_body("from b\r\n")?;
                        s.quarantine("held by b")
                    }),
                );
            let outcome = one_message(list, profile, MESSAGE).await;
            assert_eq!(
                outcome.modifications,
                [
                    Modification::ChangeFrom {
                        sender: "<b@example.com>".into(),
                        args: Some("RET=HDRS".into())
                    },
                    Modification::DeleteRcpt("<r1@example.net>".into()),
                    Modification::DeleteRcpt("<r2@example.net>".into()),
                    Modification::AddRcpt("<x@example.org>".into()),
                    Modification::AddRcpt("<y@example.org>".into()),
                    Modification::AddRcpt("<z@example.org>".into()),
                    Modification::ReplaceBody(b"from b\r\n".to_vec()),
                    Modification::Quarantine("held by b".into()),
                ],
                "{kind:?}"
            );
            assert_eq!(outcome.quarantined.as_deref(), Some("held by b"));
            let delivered = outcome.delivered.expect("delivered");
            assert_eq!(delivered.sender, "<b@example.com>", "{kind:?}");
            assert_eq!(delivered.body, b"from b\r\n", "{kind:?}");
            let recipients: Vec<&str> = delivered
                .recipients
                .iter()
                .map(|r| r.address.as_str())
                .collect();
            assert_eq!(
                recipients,
                [
                    "<r3@example.net>",
                    "<x@example.org>",
                    "<y@example.org>",
                    "<z@example.org>"
                ],
                "{kind:?}"
            );
        }
    });
}

// ===== faults =====

/// How a faulty filter goes wrong.
#[derive(Clone, Copy, Debug)]
enum Fault {
    Panic,
    Fail,
}

/// Queues a header, then panics or fails at `phase`.
fn faulty(fault: Fault, phase: Phase) -> impl Filter {
    filter_fn(move |session: &mut Session| {
        Box::pin(async move {
            if phase == Phase::Mail {
                session.envelope_from().await?;
            } else {
                session.end_of_message().await?;
            }
            session.add_header("X-Faulty", "lost")?;
            match fault {
                Fault::Panic => panic!("the faulty filter panics"),
                Fault::Fail => Err(Error::filter("lookup failed")),
            }
        })
    })
}

#[test]
fn a_failing_member_gets_the_error_verdict_and_keeps_the_others_edits() {
    run(async {
        for profile in profiles() {
            let kind = profile.kind;
            for fault in [Fault::Panic, Fault::Fail] {
                for phase in [Phase::Mail, Phase::EndOfMessage] {
                    let what = format!("{kind:?} {fault:?} at {phase}");
                    let list = || {
                        FilterList::new()
                            .with("faulty", faulty(fault, phase))
                            .with("b", adding("X-B", "b", Verdict::Continue))
                    };
                    // By default the error verdict is tempfail, which wins the merge.
                    let outcome = one_message(list(), profile.clone(), MESSAGE).await;
                    assert_eq!(outcome.verdict, Reply::Tempfail, "{what}");
                    assert_eq!(reply_at(&outcome, phase), Some(Reply::Tempfail), "{what}");
                    assert!(outcome.modifications.is_empty(), "{what}");

                    // With continue as the error verdict the others' edits go through; the
                    // faulty filter's own are dropped.
                    let config = ConnectionConfig {
                        error_verdict: Verdict::Continue,
                        ..ConnectionConfig::default()
                    };
                    let builder = Builder::new(rt::AsyncStd).config(config);
                    let client =
                        in_process_with(&builder, list(), profile.clone()).expect("in process");
                    let mut client = start(client).await;
                    let outcome = client.send_message(&envelope(), MESSAGE).await.unwrap();
                    assert_eq!(outcome.mail, Reply::Continue, "{what}");
                    assert_eq!(outcome.verdict, Reply::Continue, "{what}");
                    assert_eq!(outcome.modifications, [added(kind, "X-B", "b")], "{what}");
                    assert!(delivered_values(&outcome, "X-Faulty").is_empty(), "{what}");
                    // The next message on the connection gets the same treatment.
                    let outcome = client.send_message(&envelope(), MESSAGE).await.unwrap();
                    assert_eq!(outcome.modifications, [added(kind, "X-B", "b")], "{what}");
                    client.quit().await.unwrap();
                }
            }
        }
    });
}

// ===== negotiation =====

#[test]
fn negotiation_is_the_union_of_the_members_needs() {
    let mail_only = Needs::new()
        .events(Events::MAIL)
        .answers(Events::MAIL)
        .macros(MacroStage::Rcpt, "{rcpt_addr}");
    let headers_unanswered = Needs::new()
        .events(Events::HEADER)
        .macros(MacroStage::Rcpt, "{rcpt_host} {rcpt_addr}");
    let quiet = |needs: &Needs| {
        declaring(
            needs.clone(),
            filter_fn(|session: &mut Session| {
                Box::pin(async move {
                    session.end_of_message().await?;
                    Ok(Verdict::Continue)
                })
            }),
        )
    };
    run(async {
        for profile in profiles() {
            let kind = profile.kind;
            let offer = profile.offer;
            let list = FilterList::new()
                .with("mail", quiet(&mail_only))
                .with("headers", quiet(&headers_unanswered));
            let mut client = in_process(list, profile).unwrap();
            let negotiated = client.negotiate().await.unwrap();
            let protocol = negotiated.protocol;
            for flag in [
                ProtocolFlags::NO_CONNECT,
                ProtocolFlags::NO_HELO,
                ProtocolFlags::NO_RCPT,
                ProtocolFlags::NO_DATA,
                ProtocolFlags::NO_EOH,
                ProtocolFlags::NO_BODY,
                ProtocolFlags::NO_UNKNOWN,
                ProtocolFlags::NR_HEADER,
            ] {
                assert!(
                    protocol.contains(flag),
                    "{kind:?}: {flag:?} in {protocol:?}"
                );
            }
            for flag in [
                ProtocolFlags::NO_MAIL,
                ProtocolFlags::NR_MAIL,
                ProtocolFlags::NO_HEADER,
                ProtocolFlags::SKIP,
            ] {
                assert!(
                    !protocol.contains(flag),
                    "{kind:?}: {flag:?} in {protocol:?}"
                );
            }
            let union = negotiate(offer, &mail_only.union(&headers_unanswered)).unwrap();
            assert_eq!(protocol, union.options.protocol, "{kind:?}");
            let mut rcpt_macros: Vec<&str> = negotiated
                .requested_macros(MacroStage::Rcpt)
                .expect("a RCPT macro list")
                .split_whitespace()
                .collect();
            rcpt_macros.sort_unstable();
            assert_eq!(rcpt_macros, ["i", "{rcpt_addr}", "{rcpt_host}"], "{kind:?}");

            // The MTA sends and waits accordingly.
            client
                .connect("client.example.com", Family::Inet, 50000, "192.0.2.1")
                .await
                .unwrap();
            let outcome = client.send_message(&envelope(), MESSAGE).await.unwrap();
            assert_eq!(outcome.mail, Reply::Continue, "{kind:?}");
            assert!(outcome.rcpts.iter().all(|(_, r)| *r == Reply::NotSent));
            assert_eq!(outcome.data, Some(Reply::NotSent), "{kind:?}");
            assert!(outcome.headers.iter().all(|r| *r == Reply::NoReply));
            assert_eq!(outcome.end_of_headers, Some(Reply::NotSent), "{kind:?}");
            assert_eq!(outcome.verdict, Reply::Continue, "{kind:?}");
            client.quit().await.unwrap();
        }
    });
}

fn outcome_of(result: Result<(), Error>) -> String {
    match result {
        Ok(()) => "ok".to_owned(),
        Err(Error::Unavailable(Unavailable::NotNegotiated(actions))) => {
            format!("not negotiated: {actions:?}")
        }
        Err(other) => format!("other error: {other}"),
    }
}

#[test]
fn a_member_may_use_only_the_actions_it_declared() {
    type Results = Arc<Mutex<Vec<(&'static str, String)>>>;
    let results: Results = Arc::new(Mutex::new(Vec::new()));
    let adder = {
        let results = results.clone();
        declaring(
            Needs::new().actions(Actions::ADD_HEADERS),
            filter_fn(move |session: &mut Session| {
                let results = results.clone();
                Box::pin(async move {
                    session.end_of_message().await?;
                    // The other member declared CHANGE_HEADERS, this one did not.
                    let subject = nth(session, "Subject", 0);
                    let changed = session.change_header(subject, "changed");
                    lock(&results).push(("adder changes", outcome_of(changed)));
                    let body = session.replace_body("new body");
                    lock(&results).push(("adder replaces body", outcome_of(body)));
                    let added = session.add_header("X-Adder", "1");
                    lock(&results).push(("adder adds", outcome_of(added)));
                    Ok(Verdict::Continue)
                })
            }),
        )
    };
    let changer = {
        let results = results.clone();
        declaring(
            Needs::new()
                .events(Events::HEADER)
                .actions(Actions::CHANGE_HEADERS),
            filter_fn(move |session: &mut Session| {
                let results = results.clone();
                Box::pin(async move {
                    session.end_of_message().await?;
                    let adding = session.add_header("X-Changer", "1");
                    lock(&results).push(("changer adds", outcome_of(adding)));
                    let subject = nth(session, "Subject", 0);
                    let changed = session.change_header(subject, "changed");
                    lock(&results).push(("changer changes", outcome_of(changed)));
                    Ok(Verdict::Continue)
                })
            }),
        )
    };
    run(async {
        let list = FilterList::new()
            .with("adder", adder)
            .with("changer", changer);
        let mut client = in_process(list, Profile::postfix()).unwrap();
        let negotiated = client.negotiate().await.unwrap();
        assert_eq!(
            negotiated.actions,
            Actions::ADD_HEADERS | Actions::CHANGE_HEADERS
        );
        let outcome = client.send_message(&envelope(), MESSAGE).await.unwrap();
        client.quit().await.unwrap();
        let mut results = lock(&results).clone();
        results.sort();
        assert_eq!(
            results,
            [
                ("adder adds", "ok".to_owned()),
                (
                    "adder changes",
                    format!("not negotiated: {:?}", Actions::CHANGE_HEADERS)
                ),
                (
                    "adder replaces body",
                    format!("not negotiated: {:?}", Actions::CHANGE_BODY)
                ),
                (
                    "changer adds",
                    format!("not negotiated: {:?}", Actions::ADD_HEADERS)
                ),
                ("changer changes", "ok".to_owned()),
            ]
        );
        assert_eq!(
            outcome.modifications,
            [change(1, "Subject", "changed"), add("X-Adder", "1")]
        );
    });
}

// ===== concurrency =====

/// Sleeps `duration` on `clock` once MAIL has arrived, then waits for end of message.
fn sleeping_at_mail(clock: ManualClock, duration: Duration) -> impl Filter {
    filter_fn(move |session: &mut Session| {
        let clock = clock.clone();
        Box::pin(async move {
            session.envelope_from().await?;
            clock.sleep(duration).await;
            session.end_of_message().await?;
            Ok(Verdict::Continue)
        })
    })
}

/// Serves `list` on one end of a socket pair with `builder` and returns a client on the
/// other, negotiated, with CONNECT and HELO sent.
async fn served(builder: &Builder, list: FilterList) -> MilterClient<UnixStream> {
    let (mta_side, filter_side) = UnixStream::pair().expect("socket pair");
    let connection = builder.serve(filter_side, list);
    async_std::task::spawn(async move {
        let _ = connection.await;
    });
    start(MilterClient::new(mta_side, Profile::postfix())).await
}

/// Waits (yielding, for at most 5 s of real time) until `ready` holds.
async fn until(what: &str, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        async_std::task::yield_now().await;
    }
}

#[test]
fn two_filters_sleeping_in_one_event_cost_the_longest_sleep_not_the_sum() {
    run(async {
        let clock = ManualClock::new();
        let ten = Duration::from_secs(10);
        let list = FilterList::new()
            .with("a", sleeping_at_mail(clock.clone(), ten))
            .with("b", sleeping_at_mail(clock.clone(), ten));
        // No read timeout or progress timer on the clock; the filters' sleeps are told from
        // the driver's idle-release timer by their deadline.
        let builder = Builder::new(clock.clone())
            .read_timeout(None)
            .progress_interval(None);
        let mut client = served(&builder, list).await;
        let start = clock.now();
        let sleeping = || {
            clock
                .deadlines()
                .iter()
                .filter(|deadline| **deadline == start + ten)
                .count()
        };
        let answered = Arc::new(Mutex::new(false));
        let mail = {
            let answered = answered.clone();
            let client = &mut client;
            async move {
                let reply = client.mail("<alice@example.com>", &[]).await;
                *lock(&answered) = true;
                reply
            }
        };
        let advance = async {
            // Both sleeps are armed at once: the filters run side by side.
            until("both filters to sleep", || sleeping() >= 2).await;
            assert_eq!(sleeping(), 2);
            assert!(!*lock(&answered), "MAIL answered before the clock moved");
            clock.advance(ten);
        };
        let (reply, ()) = futures::join!(mail, advance);
        assert_eq!(reply.expect("MAIL answered"), Reply::Continue);
        assert_eq!(clock.now() - start, ten, "one advance of 10 s was enough");
        assert_eq!(sleeping(), 0);
        client.quit().await.unwrap();
    });
}

#[test]
fn a_busy_filter_does_not_keep_the_others_from_their_events() {
    run(async {
        let (release, released) = oneshot::channel::<()>();
        let released = Arc::new(Mutex::new(Some(released)));
        let waiting = filter_fn(move |session: &mut Session| {
            let released = released.clone();
            Box::pin(async move {
                session.envelope_from().await?;
                let wait = lock(&released).take();
                if let Some(wait) = wait {
                    let _ = wait.await;
                }
                session.end_of_message().await?;
                Ok(Verdict::Continue)
            })
        });
        let (saw_mail, mail_seen) = async_std::channel::unbounded::<String>();
        let reporting = filter_fn(move |session: &mut Session| {
            let saw_mail = saw_mail.clone();
            Box::pin(async move {
                let sender = session.envelope_from().await?;
                let _ = saw_mail.send(sender.address.to_string()).await;
                session.end_of_message().await?;
                Ok(Verdict::Continue)
            })
        });
        let list = FilterList::new()
            .with("waiting", waiting)
            .with("reporting", reporting);
        let mut client = session(list, Profile::postfix()).await;
        let answered = Arc::new(Mutex::new(false));
        let mail = {
            let answered = answered.clone();
            let client = &mut client;
            async move {
                let reply = client.mail("<alice@example.com>", &[]).await;
                *lock(&answered) = true;
                reply
            }
        };
        let observe = async {
            let seen = async_std::future::timeout(Duration::from_secs(5), mail_seen.recv())
                .await
                .expect("the other filter got MAIL while the first waited")
                .expect("channel open");
            assert_eq!(seen, "<alice@example.com>");
            assert!(
                !*lock(&answered),
                "MAIL answered while a filter still works on it"
            );
            release.send(()).expect("waiting filter still there");
        };
        let (reply, ()) = futures::join!(mail, observe);
        assert_eq!(reply.expect("MAIL answered"), Reply::Continue);
        client.quit().await.unwrap();
    });
}

// ===== log lines name the filter =====

/// Keeps every log line of this test binary.
struct Capture(Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Info
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            lock(&self.0).push(record.args().to_string());
        }
    }

    fn flush(&self) {}
}

fn captured() -> &'static Capture {
    static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture: &'static Capture = Box::leak(Box::new(Capture(Mutex::new(Vec::new()))));
        log::set_logger(capture).expect("no other logger in this test binary");
        log::set_max_level(log::LevelFilter::Info);
        capture
    })
}

#[test]
fn verdict_log_lines_name_the_filter() {
    let capture = captured();
    run(async {
        let list = FilterList::new()
            .with("tagger", adding("X-Tag", "1", Verdict::Continue))
            .with("policy", verdict_at(Phase::Data, Verdict::Reject));
        let outcome = one_message(list, Profile::postfix(), MESSAGE).await;
        assert_eq!(outcome.data, Some(Reply::Reject));
    });
    let lines = lock(&capture.0).clone();
    let verdict = lines
        .iter()
        .find(|line| line.contains("filter policy: verdict reject"))
        .unwrap_or_else(|| panic!("no verdict line naming the filter in {lines:#?}"));
    assert!(verdict.starts_with("connection "), "{verdict}");
    assert!(verdict.contains(": message 1 (queue id "), "{verdict}");
    let sent = lines
        .iter()
        .find(|line| line.contains("filter policy: sent reject at data"))
        .unwrap_or_else(|| {
            panic!("no line naming the filter whose verdict went out in {lines:#?}")
        });
    assert!(sent.contains(": message 1 (queue id "), "{sent}");
}

#[test]
fn accept_at_connect_takes_a_member_out_until_a_new_smtp_session() {
    run(async {
        for profile in profiles() {
            let kind = profile.kind;
            let calls = Arc::new(Mutex::new(0));
            let counted = calls.clone();
            let trusting = filter_fn(move |_session: &mut Session| {
                *counted.lock().unwrap() += 1;
                Box::pin(async { Ok(Verdict::Accept) })
            });
            let tagger = filter_fn(|session: &mut Session| {
                Box::pin(async move {
                    session.end_of_message().await?;
                    session.add_header("X-Tagged", "yes")?;
                    Ok(Verdict::Continue)
                })
            });
            let list = FilterList::new()
                .with("trusting", trusting)
                .with("tagger", tagger);
            let mut client = session(list, profile).await;
            for _ in 0..2 {
                let outcome = client
                    .send_message(&envelope(), MESSAGE)
                    .await
                    .expect("message");
                assert_eq!(outcome.verdict, Reply::Continue, "{kind:?}");
                let delivered = outcome.delivered.expect("delivered");
                assert_eq!(delivered.header("X-Tagged").map(str::trim), Some("yes"));
            }
            assert_eq!(
                *calls.lock().unwrap(),
                1,
                "{kind:?}: accepted the connection once"
            );
            // A new SMTP session on the same milter connection: it takes part again.
            client.quit_new_connection().await.expect("QUIT_NC");
            client
                .connect("other.example.com", Family::Inet, 50001, "192.0.2.2")
                .await
                .expect("CONNECT");
            assert_eq!(
                *calls.lock().unwrap(),
                2,
                "{kind:?}: called for the new session"
            );
            client.quit().await.expect("QUIT");
        }
    });
}
