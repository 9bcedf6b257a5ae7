//! Filters for the end-to-end suite (`scripts/e2e`), one per scenario.
//!
//! Usage: `e2e_scenarios SCENARIO SOCKET` (SOCKET as for `conformance`, e.g.
//! `inet:7357@127.0.0.1` or `unix:/path`). Every scenario accepts what it does not act on.
//!
//! - `insert-headers`: at end of message inserts `X-Top: 1` at the top, `X-Before-Subject: 1`
//!   just above `Subject`, `X-After-Subject: 1` just below it and `X-End: 1` at the end.
//! - `second-header`: changes the second `X-Dup` to `changed`, deletes the second `X-Del`,
//!   deletes the first and changes the third `X-Multi` to `changed` (a delete and a change of
//!   one name in one message), and for `X-Mark` inserts `X-Mark: inserted` just above the
//!   first one and changes that first one to `changed` (an insert and a change of one name).
//! - `folded-nonascii`: echoes what arrived for `X-Folded` and `X-Utf8` (`X-Seen-Folded`,
//!   `X-Seen-Utf8` with the value as is, `X-Seen-*-Escaped` with the bytes escaped, and
//!   `X-Seen-Utf8-Valid: yes|no`), and adds a folded header `X-Own-Folded` and a UTF-8 header
//!   `X-Own-Utf8` of its own.
//! - `multiline-reply`: rejects `MAIL FROM:<multiline-mail@example.com>` at MAIL and every
//!   other message at end of message with the two-line reply `550-5.7.1 first line 100%` /
//!   `550 5.7.1 second line` (the `%` is doubled on the wire by `ReplyCode`).
//! - `connect-reject`: rejects every connection at CONNECT, before HELO, with
//!   `554 5.7.1 rejected at connect by e2e filter`.
//! - `panic`: panics at end of message when the subject is `panic`, accepts otherwise (the
//!   library answers a panic with its error verdict, tempfail, and goes on with the next
//!   message of the connection).
//! - `slow`: at end of message of a message with subject `slow`, logs `slow: sleeping` and
//!   sleeps 30 s before accepting (the suite kills the milter meanwhile); accepts others.
//! - `two-filters`: two filters on one connection (a `FilterList`) edit the same headers.
//!   `first` changes `X-Same` to `first`, deletes `X-Gone`, changes `X-Kept` to `first`,
//!   inserts `X-Top-First: 1` at the top and adds `X-From-First: 1`; `second` changes
//!   `X-Same` to `second`, changes `X-Gone` to `second`, deletes `X-Kept` and adds
//!   `X-From-Second: 1`. The later filter in the list decides a header both touch, so the
//!   message arrives with `X-Same: second`, `X-Gone: second`, no `X-Kept`, and both added
//!   headers, `first`'s above `second`'s.

use std::time::Duration;

use async_milter::proto::{Actions, Events, ReplyCode};
use async_milter::server::{Server, ServerConfig, termination_signal};
use async_milter::session::{FnFilter, HeaderField, HeaderPosition};
use async_milter::{Error, FilterList, Needs, Session, Verdict};

/// Reads every header of the message (after the envelope) and returns them.
async fn all_headers(session: &mut Session) -> Result<Vec<HeaderField>, Error> {
    let mut headers = Vec::new();
    while let Some(header) = session.next_header().await? {
        headers.push(header);
    }
    Ok(headers)
}

fn find<'h>(headers: &'h [HeaderField], name: &str) -> Vec<&'h HeaderField> {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .collect()
}

fn subject_is(headers: &[HeaderField], subject: &str) -> bool {
    find(headers, "Subject")
        .first()
        .is_some_and(|h| h.value.as_bytes().eq_ignore_ascii_case(subject.as_bytes()))
}

/// Non-printable bytes and non-ASCII escaped (`\n`, `\t`, `\xc3`), so a check can compare
/// exactly what arrived.
fn escaped(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

async fn insert_headers(session: &mut Session) -> Result<Verdict, Error> {
    let headers = all_headers(session).await?;
    session.end_of_message().await?;
    session.insert_header(HeaderPosition::Top, "X-Top", "1")?;
    if let Some(subject) = find(&headers, "Subject").first() {
        session.insert_header(
            HeaderPosition::Before(subject.handle),
            "X-Before-Subject",
            "1",
        )?;
        session.insert_header(
            HeaderPosition::After(subject.handle),
            "X-After-Subject",
            "1",
        )?;
    }
    session.insert_header(HeaderPosition::End, "X-End", "1")?;
    Ok(Verdict::Accept)
}

async fn second_header(session: &mut Session) -> Result<Verdict, Error> {
    let headers = all_headers(session).await?;
    session.end_of_message().await?;
    if let Some(second) = find(&headers, "X-Dup").get(1) {
        session.change_header(second.handle, "changed")?;
    }
    if let Some(second) = find(&headers, "X-Del").get(1) {
        session.delete_header(second.handle)?;
    }
    let multi = find(&headers, "X-Multi");
    if let (Some(first), Some(third)) = (multi.first(), multi.get(2)) {
        session.delete_header(first.handle)?;
        session.change_header(third.handle, "changed")?;
    }
    if let Some(mark) = find(&headers, "X-Mark").first() {
        session.insert_header(HeaderPosition::Before(mark.handle), "X-Mark", "inserted")?;
        session.change_header(mark.handle, "changed")?;
    }
    Ok(Verdict::Accept)
}

async fn folded_nonascii(session: &mut Session) -> Result<Verdict, Error> {
    let headers = all_headers(session).await?;
    session.end_of_message().await?;
    if let Some(folded) = find(&headers, "X-Folded").first() {
        session.add_header("X-Seen-Folded", folded.value.as_bytes())?;
        session.add_header("X-Seen-Folded-Escaped", escaped(folded.value.as_bytes()))?;
    }
    if let Some(utf8) = find(&headers, "X-Utf8").first() {
        session.add_header("X-Seen-Utf8", utf8.value.as_bytes())?;
        session.add_header("X-Seen-Utf8-Escaped", escaped(utf8.value.as_bytes()))?;
        let valid = if utf8.value.to_str().is_ok() {
            "yes"
        } else {
            "no"
        };
        session.add_header("X-Seen-Utf8-Valid", valid)?;
    }
    session.add_header("X-Own-Folded", "own first line\r\n\town second line")?;
    session.add_header("X-Own-Utf8", "Grüße aus Köln ☃")?;
    Ok(Verdict::Accept)
}

fn two_line_reply() -> Result<ReplyCode, Error> {
    ReplyCode::permanent(550, "5.7.1", "first line 100%")
        .and_then(|reply| reply.with_line("second line"))
        .map_err(Error::filter)
}

async fn multiline_reply(session: &mut Session) -> Result<Verdict, Error> {
    let from = session.envelope_from().await?;
    if from
        .address
        .eq_ignore_ascii_case("<multiline-mail@example.com>")
    {
        return Ok(Verdict::Reply(two_line_reply()?));
    }
    session.end_of_message().await?;
    Ok(Verdict::Reply(two_line_reply()?))
}

async fn connect_reject(_session: &mut Session) -> Result<Verdict, Error> {
    let reply = ReplyCode::permanent(554, "5.7.1", "rejected at connect by e2e filter")
        .map_err(Error::filter)?;
    Ok(Verdict::Reply(reply))
}

async fn panic_on_subject(session: &mut Session) -> Result<Verdict, Error> {
    let headers = all_headers(session).await?;
    session.end_of_message().await?;
    assert!(!subject_is(&headers, "panic"), "e2e: subject is 'panic'");
    Ok(Verdict::Accept)
}

async fn slow(session: &mut Session) -> Result<Verdict, Error> {
    let headers = all_headers(session).await?;
    session.end_of_message().await?;
    if subject_is(&headers, "slow") {
        log::info!("slow: sleeping at end of message");
        async_std::task::sleep(Duration::from_secs(30)).await;
        log::info!("slow: done sleeping");
    }
    Ok(Verdict::Accept)
}

async fn first_of_two(session: &mut Session) -> Result<Verdict, Error> {
    let headers = all_headers(session).await?;
    session.end_of_message().await?;
    if let Some(same) = find(&headers, "X-Same").first() {
        session.change_header(same.handle, "first")?;
    }
    if let Some(gone) = find(&headers, "X-Gone").first() {
        session.delete_header(gone.handle)?;
    }
    if let Some(kept) = find(&headers, "X-Kept").first() {
        session.change_header(kept.handle, "first")?;
    }
    session.insert_header(HeaderPosition::Top, "X-Top-First", "1")?;
    session.add_header("X-From-First", "1")?;
    Ok(Verdict::Accept)
}

async fn second_of_two(session: &mut Session) -> Result<Verdict, Error> {
    let headers = all_headers(session).await?;
    session.end_of_message().await?;
    if let Some(same) = find(&headers, "X-Same").first() {
        session.change_header(same.handle, "second")?;
    }
    if let Some(gone) = find(&headers, "X-Gone").first() {
        session.change_header(gone.handle, "second")?;
    }
    if let Some(kept) = find(&headers, "X-Kept").first() {
        session.delete_header(kept.handle)?;
    }
    session.add_header("X-From-Second", "1")?;
    Ok(Verdict::Accept)
}

const SCENARIOS: &[&str] = &[
    "insert-headers",
    "second-header",
    "folded-nonascii",
    "multiline-reply",
    "connect-reject",
    "panic",
    "slow",
    "two-filters",
];

/// What a scenario that reads the headers and edits at end of message uses: headers, no
/// answer before end of message, `actions`.
fn headers_then(actions: Actions) -> Needs {
    Needs::new()
        .events(Events::HEADER | Events::EOH)
        .actions(actions)
}

async fn serve<F>(spec: &str, filter: F, needs: Needs) -> std::io::Result<()>
where
    F: for<'a> async_milter::session::FilterFn<'a>,
{
    let server = Server::bind_with(spec, ServerConfig::default()).await?;
    server
        .serve_until(
            FnFilter::new(filter).with_needs(needs),
            termination_signal(),
        )
        .await
}

fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args: Vec<String> = std::env::args().collect();
    let (Some(scenario), Some(spec)) = (args.get(1), args.get(2)) else {
        eprintln!(
            "usage: e2e_scenarios SCENARIO SOCKET\nscenarios: {}",
            SCENARIOS.join(" ")
        );
        std::process::exit(2);
    };
    async_std::task::block_on(async {
        match scenario.as_str() {
            "insert-headers" => {
                let needs = headers_then(Actions::ADD_HEADERS);
                serve(spec, insert_headers, needs).await
            }
            "second-header" => {
                let needs = headers_then(Actions::ADD_HEADERS | Actions::CHANGE_HEADERS);
                serve(spec, second_header, needs).await
            }
            "folded-nonascii" => {
                let needs = headers_then(Actions::ADD_HEADERS);
                serve(spec, folded_nonascii, needs).await
            }
            "multiline-reply" => {
                // Refuses at MAIL (else at end of message, which is always answered).
                let needs = Needs::new().events(Events::MAIL).answers(Events::MAIL);
                serve(spec, multiline_reply, needs).await
            }
            "connect-reject" => {
                // Its verdict goes out as the answer to CONNECT, so CONNECT is seen and answered.
                let needs = Needs::new()
                    .events(Events::CONNECT)
                    .answers(Events::CONNECT);
                serve(spec, connect_reject, needs).await
            }
            "panic" => serve(spec, panic_on_subject, headers_then(Actions::EMPTY)).await,
            "slow" => serve(spec, slow, headers_then(Actions::EMPTY)).await,
            "two-filters" => {
                let needs = headers_then(Actions::ADD_HEADERS | Actions::CHANGE_HEADERS);
                let list = FilterList::new()
                    .with(
                        "first",
                        FnFilter::new(first_of_two).with_needs(needs.clone()),
                    )
                    .with("second", FnFilter::new(second_of_two).with_needs(needs));
                Server::bind_with(spec, ServerConfig::default())
                    .await?
                    .serve_until(list, termination_signal())
                    .await
            }
            other => {
                eprintln!(
                    "unknown scenario {other:?}; one of: {}",
                    SCENARIOS.join(" ")
                );
                std::process::exit(2);
            }
        }
    })
}
