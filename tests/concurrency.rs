//! The waker contract: a filter may await the session inside its own combinators (`join!`,
//! `select!`, `FuturesUnordered`) next to I/O of its own, and is woken when either side can
//! go on.
//!
//! The filter starts a lookup at MAIL (a DNS or database query, played by the test: the
//! filter sends it a request and awaits the answer on a oneshot channel) and collects
//! recipients while it runs. The test decides which comes first, so nothing depends on
//! timing: either the lookup is answered, and seen by the filter, before any RCPT is sent
//! (the filter then rejects the recipient the answer names), or every RCPT and DATA arrive
//! first and the answer comes after (every recipient passes). Either way the answer ends up
//! in a header and the filter must have seen every recipient. `FuturesUnordered` polls only
//! the futures that were woken, so it fails (times out) unless a session await parked inside
//! it is woken when its event arrives. Each case runs on every runtime and both presets.

mod support;

use std::sync::{Mutex, PoisonError};

use async_milter::testing::{Profile, Reply};
use async_milter::{Error, Session, Verdict};
use async_std::channel::Sender;
use futures::channel::oneshot;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt, join, select};
use support::{
    Probe, WAIT, appended, filter, name, on_every_runtime, profiles, report, run, serve,
};

const SENDER: &str = "<alice@example.com>";
const RECIPIENTS: [&str; 3] = [
    "<bob@example.net>",
    "<carol@example.net>",
    "<dave@example.net>",
];
/// The lookup's answer: the recipient to refuse, if it has not been answered yet.
const BLOCKED: &str = "<carol@example.net>";

/// How the filter combines its lookup with the session's recipient stream.
#[derive(Clone, Copy, Debug)]
enum Combinator {
    /// `join!(lookup, recipient loop)`.
    Join,
    /// A loop of `select!` between the lookup and a fresh `next_recipient()` each turn (the
    /// pending session await is dropped whenever the lookup wins).
    Select,
    /// Both in a `FuturesUnordered`, which polls only futures that were woken.
    Unordered,
}

/// Which the test lets happen first.
#[derive(Clone, Copy, Debug)]
enum Order {
    /// The lookup is answered, and the filter has seen the answer, before the first RCPT.
    LookupFirst,
    /// Every RCPT and DATA reach the filter before the lookup is answered.
    RecipientsFirst,
}

/// A lookup request from the filter to the test: the sender, and where to answer.
type Request = (String, oneshot::Sender<String>);

/// What the filter reports as it goes.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// The lookup's answer reached the filter.
    LookupDone(String),
    /// The recipients are over (DATA arrived); every one seen, in order.
    Recipients(Vec<String>),
}

fn text(t: &async_milter::session::Text) -> String {
    t.to_str().expect("utf-8").to_owned()
}

/// The lookup: waits for the test's answer, reports it and records whom to refuse.
async fn lookup(
    answer: oneshot::Receiver<String>,
    blocked: &Mutex<Option<String>>,
    seen: &Sender<Seen>,
) -> String {
    let answer = answer.await.unwrap_or_default();
    *blocked.lock().unwrap_or_else(PoisonError::into_inner) = Some(answer.clone());
    report(seen, Seen::LookupDone(answer.clone()));
    answer
}

/// Whether the lookup has already named `address`.
fn is_blocked(blocked: &Mutex<Option<String>>, address: &str) -> bool {
    blocked
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_deref()
        == Some(address)
}

/// Every recipient, refusing the one the lookup named if its answer is already in.
async fn recipients(
    s: &mut Session,
    blocked: &Mutex<Option<String>>,
    seen: &Sender<Seen>,
) -> Result<Vec<String>, Error> {
    let mut all = Vec::new();
    while let Some(rcpt) = s.next_recipient().await? {
        let address = text(rcpt.address());
        if is_blocked(blocked, &address) {
            rcpt.reject()?;
        }
        all.push(address);
    }
    report(seen, Seen::Recipients(all.clone()));
    Ok(all)
}

/// One of the combinators' outcomes, for `FuturesUnordered`.
enum Done {
    Lookup(String),
    Recipients(Result<Vec<String>, Error>),
}

/// At MAIL the filter asks the test for a lookup and, while it runs, collects recipients,
/// combining the two with `how`; the answer becomes an `X-Lookup` header.
async fn lookup_while_recipients_arrive(
    s: &mut Session,
    how: Combinator,
    requests: Sender<Request>,
    seen: Sender<Seen>,
) -> Result<Verdict, Error> {
    let sender = text(&s.envelope_from().await?.address);
    let (answer_tx, answer_rx) = oneshot::channel();
    report(&requests, (sender, answer_tx));
    let blocked = Mutex::new(None);
    let lookup = lookup(answer_rx, &blocked, &seen);
    let answer = match how {
        Combinator::Join => {
            let (answer, all) = join!(lookup, recipients(s, &blocked, &seen));
            all?;
            answer
        }
        Combinator::Select => {
            let mut lookup = std::pin::pin!(lookup.fuse());
            let mut answer = None;
            let mut all = Vec::new();
            loop {
                select! {
                    done = lookup => answer = Some(done),
                    rcpt = s.next_recipient().fuse() => {
                        let Some(rcpt) = rcpt? else { break };
                        let address = text(rcpt.address());
                        if is_blocked(&blocked, &address) {
                            rcpt.reject()?;
                        }
                        all.push(address);
                    }
                }
            }
            report(&seen, Seen::Recipients(all));
            match answer {
                Some(answer) => answer,
                None => lookup.await,
            }
        }
        Combinator::Unordered => {
            let mut pending: FuturesUnordered<BoxFuture<'_, Done>> = FuturesUnordered::new();
            pending.push(Box::pin(lookup.map(Done::Lookup)));
            pending.push(Box::pin(
                recipients(s, &blocked, &seen).map(Done::Recipients),
            ));
            let mut answer = None;
            while let Some(done) = pending.next().await {
                match done {
                    Done::Lookup(done) => answer = Some(done),
                    Done::Recipients(all) => drop(all?),
                }
            }
            answer.expect("the lookup finished")
        }
    };
    s.end_of_message().await?;
    s.add_header("X-Lookup", answer)?;
    Ok(Verdict::Accept)
}

/// Runs one message through the filter combining with `how`, in `order`, on both presets.
fn check(how: Combinator, order: Order) {
    run(async {
        for profile in profiles() {
            let requests = Probe::<Request>::new();
            let seen = Probe::<Seen>::new();
            let (requests_tx, seen_tx) = (requests.sender(), seen.sender());
            let harness = serve(filter(move |s| {
                let (requests, seen) = (requests_tx.clone(), seen_tx.clone());
                Box::pin(lookup_while_recipients_arrive(s, how, requests, seen))
            }))
            .await;
            let who = format!("{} {how:?} {order:?}", name(&profile));
            // A hang fails within WAIT, not the kit's default 10 s.
            let mut client = harness.client(profile.clone().with_timeout(WAIT)).await;
            let reply = client.mail(SENDER, &[]).await.expect("mail");
            assert_eq!(reply, Reply::Continue, "{who}");
            let (asked, answer) = requests.next().await;
            assert_eq!(asked, SENDER, "{who}");
            let all: Vec<String> = RECIPIENTS.iter().map(|r| (*r).to_owned()).collect();
            let mut replies = Vec::new();
            match order {
                Order::LookupFirst => {
                    answer.send(BLOCKED.to_owned()).expect("the filter waits");
                    // The filter, parked at a session await inside its combinator, was
                    // woken by its own I/O.
                    assert_eq!(seen.next().await, Seen::LookupDone(BLOCKED.into()), "{who}");
                    for rcpt in RECIPIENTS {
                        replies.push(client.rcpt(rcpt, &[]).await.expect("rcpt"));
                    }
                    let data = client.data().await.expect("data");
                    assert_eq!(data, Reply::Continue, "{who}");
                    assert_eq!(seen.next().await, Seen::Recipients(all), "{who}");
                }
                Order::RecipientsFirst => {
                    for rcpt in RECIPIENTS {
                        replies.push(client.rcpt(rcpt, &[]).await.expect("rcpt"));
                    }
                    // DATA is answered once the filter parks again, so only after the
                    // lookup it now waits for.
                    let (data, ()) = join!(client.data(), async {
                        assert_eq!(seen.next().await, Seen::Recipients(all), "{who}");
                        answer.send(BLOCKED.to_owned()).expect("the filter waits");
                    });
                    assert_eq!(data.expect("data"), Reply::Continue, "{who}");
                    assert_eq!(seen.next().await, Seen::LookupDone(BLOCKED.into()), "{who}");
                }
            }
            let expected = match order {
                Order::LookupFirst => [Reply::Continue, Reply::Reject, Reply::Continue],
                Order::RecipientsFirst => [Reply::Continue, Reply::Continue, Reply::Continue],
            };
            assert_eq!(replies, expected, "{who}");
            finish(&mut client, &profile, &who).await;
            client.quit().await.expect("quit");
            harness.stop().await.expect("server stops");
        }
    });
}

/// A header and end of message (no body: the filter skips it); the verdict carries the lookup's answer.
async fn finish<S>(
    client: &mut async_milter::testing::MilterClient<S>,
    profile: &Profile,
    who: &str,
) where
    S: futures::AsyncRead + futures::AsyncWrite + Unpin,
{
    let reply = client.header("Subject", " lookup").await.expect("header");
    assert_eq!(reply, Reply::Continue, "{who}");
    let reply = client.end_of_headers().await.expect("end of headers");
    assert_eq!(reply, Reply::Continue, "{who}");
    let eom = client.end_of_message().await.expect("end of message");
    assert_eq!(eom.reply, Reply::Accept, "{who}");
    assert_eq!(
        eom.modifications,
        [appended(profile, "X-Lookup", BLOCKED)],
        "{who}"
    );
}

on_every_runtime!(join_lookup_finishes_first);
fn join_lookup_finishes_first() {
    check(Combinator::Join, Order::LookupFirst);
}

on_every_runtime!(join_recipients_arrive_first);
fn join_recipients_arrive_first() {
    check(Combinator::Join, Order::RecipientsFirst);
}

on_every_runtime!(select_lookup_finishes_first);
fn select_lookup_finishes_first() {
    check(Combinator::Select, Order::LookupFirst);
}

on_every_runtime!(select_recipients_arrive_first);
fn select_recipients_arrive_first() {
    check(Combinator::Select, Order::RecipientsFirst);
}

on_every_runtime!(futures_unordered_lookup_finishes_first);
fn futures_unordered_lookup_finishes_first() {
    check(Combinator::Unordered, Order::LookupFirst);
}

on_every_runtime!(futures_unordered_recipients_arrive_first);
fn futures_unordered_recipients_arrive_first() {
    check(Combinator::Unordered, Order::RecipientsFirst);
}
