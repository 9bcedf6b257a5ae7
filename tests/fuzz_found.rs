//! Defects the `connection` fuzz target found, each replayed with the test kit so the
//! failure reads without the fuzzing harness.

use async_milter::connection::{Builder, ConnectionConfig};
use async_milter::proto::Family;
use async_milter::rt::AsyncStd;
use async_milter::testing::{Profile, Reply, in_process_with};
use async_milter::{Error, Session, Verdict};

/// Reads headers until the session refuses more (the limit is two), awaits once more
/// (that await fails at once too), then works on something of its own before rejecting.
async fn rejects_after_its_own_work(session: &mut Session) -> Result<Verdict, Error> {
    while let Ok(Some(_)) = session.next_header().await {}
    let failed = session.next_body_chunk().await;
    assert!(failed.is_err(), "over the header limit every await fails");
    // Work of the filter's own: one yield, as a lookup in flight would be.
    async_std::task::yield_now().await;
    Ok(Verdict::Reject)
}

/// Fuzz input `fuzz/corpus/connection/regression-busy-after-failed-await`.
///
/// The third header is over the limit: the filter's await fails, the filter goes on working
/// and rejects while that header is being handled. The connection must wait for it (a busy
/// filter delays the answer) and answer the header with its reject. Instead, the await that
/// failed at once had marked the session as waiting for the body (the session parks before
/// it checks the header limit), the driver took the busy filter for a parked one and
/// answered CONTINUE; the reject went out one event later.
#[async_std::test]
async fn a_filter_busy_after_a_failed_await_is_waited_for() {
    let config = ConnectionConfig {
        max_headers: 2,
        ..ConnectionConfig::default()
    };
    let builder = Builder::new(AsyncStd).config(config);
    let mut client =
        in_process_with(&builder, rejects_after_its_own_work, Profile::postfix()).unwrap();
    client.negotiate().await.unwrap();
    client
        .connect("client.example.com", Family::Inet, 4000, "192.0.2.1")
        .await
        .unwrap();
    client.helo("client.example.com").await.unwrap();
    client.mail("<a@example.com>", &[]).await.unwrap();
    client.rcpt("<b@example.net>", &[]).await.unwrap();
    client.data().await.unwrap();
    assert_eq!(client.header("A", "1").await.unwrap(), Reply::Continue);
    assert_eq!(client.header("B", "2").await.unwrap(), Reply::Continue);
    assert_eq!(
        client.header("C", "3").await.unwrap(),
        Reply::Reject,
        "the filter rejected while the third header was handled"
    );
}
