// The README's fifteen-line filter, shared by both programs here; tests/runtime_users.rs
// checks that the README shows exactly this function.
use async_milter::{proto::ReplyCode, server::Server, Error, Session, Verdict};

async fn tag_external(session: &mut Session) -> Result<Verdict, Error> {
    let from = session.envelope_from().await?;
    while let Some(rcpt) = session.next_recipient().await? {
        if rcpt.address() == "<trap@example.org>" {
            rcpt.reply(ReplyCode::permanent(550, "5.1.1", "no such user")?)?;
        }
    }
    while let Some(_header) = session.next_header().await? { /* inspect */ }
    while let Some(_chunk) = session.next_body_chunk().await? { /* bytes, no copy */ }
    session.add_header("X-Scanned", format!("clean, from {}", from.address))?;
    Ok(Verdict::Accept)
}
