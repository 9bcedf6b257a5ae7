//! A tokio user with an accept loop of their own serves each connection through
//! `connection::Builder` and `rt::TokioIo`, with no other compatibility layer.

use std::time::Duration;

use async_milter::connection::Builder;
use async_milter::rt::{Tokio, TokioIo};
use async_milter::testing::{Envelope, MilterClient, Profile, Reply};
use async_milter::{Error, Session, Verdict};

async fn tag(session: &mut Session) -> Result<Verdict, Error> {
    session.end_of_message().await?;
    session.add_header("X-Tokio", "own accept loop")?;
    Ok(Verdict::Accept)
}

#[test]
fn a_tokio_stream_is_served_through_tokio_io() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let addr = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            // The client's checks below show the connection was served.
            let _ = Builder::new(Tokio)
                .id(7)
                .serve(TokioIo::new(stream), tag)
                .await;
        });
        addr
    });
    async_std::task::block_on(async {
        let stream = async_std::net::TcpStream::connect(addr).await.unwrap();
        let mut client = MilterClient::new(stream, Profile::postfix());
        client.negotiate().await.unwrap();
        let envelope = Envelope::new("<a@example.com>", &["<b@example.net>"]);
        let outcome = async_std::future::timeout(
            Duration::from_secs(20),
            client.send_message(&envelope, b"Subject: hi\r\n\r\nhello\r\n"),
        )
        .await
        .expect("no hang")
        .unwrap();
        assert_eq!(outcome.verdict, Reply::Accept);
        let delivered = outcome.delivered.unwrap();
        assert_eq!(
            delivered.header("X-Tokio").map(str::trim),
            Some("own accept loop")
        );
        client.quit().await.unwrap();
    });
}
