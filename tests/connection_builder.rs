//! Serving one connection directly: the builder, the graceful-shutdown handle, and the
//! connection ids the test kit gives in-process filters.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_milter::connection::Builder;
use async_milter::proto::Family;
use async_milter::rt::AsyncStd;
use async_milter::testing::{MilterClient, Profile, Reply, in_process};
use async_milter::{Error, Session, Verdict, filter_fn};
use async_std::os::unix::net::UnixStream;
use futures::channel::oneshot;

const HANG: Duration = Duration::from_secs(20);

/// Waits at end of message until released; reports when it got there.
fn held(reached: oneshot::Sender<()>, release: oneshot::Receiver<()>) -> impl async_milter::Filter {
    let parts = Mutex::new(Some((reached, release)));
    filter_fn(move |session: &mut Session| {
        let parts = parts.lock().unwrap().take();
        Box::pin(async move {
            session.end_of_message().await?;
            if let Some((reached, release)) = parts {
                let _ = reached.send(());
                let _ = release.await;
            }
            Ok(Verdict::Accept)
        })
    })
}

#[async_std::test]
async fn shutdown_between_messages_closes_at_once() {
    let (mta, filter) = UnixStream::pair().unwrap();
    let connection = Builder::new(AsyncStd).serve(filter, |_: &mut Session| async {
        Ok::<_, Error>(Verdict::Continue)
    });
    let handle = connection.shutdown_handle();
    let served = async_std::task::spawn(connection);
    let mut client = MilterClient::new(mta, Profile::postfix());
    client.negotiate().await.unwrap();
    assert!(!handle.is_shutdown());
    handle.shutdown();
    assert!(handle.is_shutdown());
    let result = async_std::future::timeout(HANG, served)
        .await
        .expect("no hang");
    assert!(result.is_ok(), "{result:?}");
}

#[async_std::test]
async fn shutdown_inside_a_message_lets_it_finish_first() {
    // Sendmail's profile: Postfix would send ABORT after the message, to a closed socket.
    let (mta, filter) = UnixStream::pair().unwrap();
    let (reached_tx, reached) = oneshot::channel();
    let (release, release_rx) = oneshot::channel();
    let connection = Builder::new(AsyncStd).serve(filter, held(reached_tx, release_rx));
    let handle = connection.shutdown_handle();
    let served = async_std::task::spawn(connection);
    let mut client = MilterClient::new(mta, Profile::sendmail());
    client.negotiate().await.unwrap();
    client
        .connect("client.example.com", Family::Inet, 4000, "192.0.2.1")
        .await
        .unwrap();
    let message = async_std::task::spawn(async move {
        client.mail("<a@example.com>", &[]).await.unwrap();
        client.rcpt("<b@example.net>", &[]).await.unwrap();
        client.data().await.unwrap();
        client.header("Subject", " hi").await.unwrap();
        client.end_of_headers().await.unwrap();
        client.body(b"hello\r\n").await.unwrap();
        let eom = client.end_of_message().await.map(|eom| eom.reply);
        (client, eom)
    });
    reached.await.unwrap();
    handle.shutdown();
    release.send(()).unwrap();
    let (_client, verdict) = async_std::future::timeout(HANG, message)
        .await
        .expect("no hang");
    assert_eq!(
        verdict.unwrap(),
        Reply::Accept,
        "the message in flight finished"
    );
    let result = async_std::future::timeout(HANG, served)
        .await
        .expect("no hang");
    assert!(result.is_ok(), "then the connection closed: {result:?}");
}

#[async_std::test]
async fn in_process_connections_get_distinct_ids() {
    let ids = Arc::new(Mutex::new(Vec::new()));
    for _ in 0..3 {
        let ids = ids.clone();
        let filter = filter_fn(move |session: &mut Session| {
            ids.lock().unwrap().push(session.connection_id());
            Box::pin(async { Ok(Verdict::Accept) })
        });
        let mut client = in_process(filter, Profile::postfix()).unwrap();
        client.negotiate().await.unwrap();
        client
            .connect("client.example.com", Family::Inet, 4000, "192.0.2.1")
            .await
            .unwrap();
        client.quit().await.unwrap();
    }
    let mut seen = ids.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    seen.dedup();
    assert_eq!(seen.len(), 3, "distinct ids: {seen:?}");
}
