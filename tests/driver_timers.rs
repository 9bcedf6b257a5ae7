//! The connection driver's timers: the read timeout counts silence, not time since the
//! first read, and PROGRESS is sent while a filter works at end of message.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_milter::connection::{ConnectionConfig, ConnectionError, Sleep, serve_connection};
use async_milter::proto::Family;
use async_milter::session::FnFilter;
use async_milter::testing::{MilterClient, Profile, Reply};
use async_milter::{Error, Session, Verdict};
use async_std::os::unix::net::UnixStream;

fn sleep() -> Sleep {
    Arc::new(|duration| Box::pin(async_std::task::sleep(duration)))
}

fn config(read_timeout: Duration, progress: Option<Duration>) -> ConnectionConfig {
    ConnectionConfig {
        read_timeout: Some(read_timeout),
        progress_interval: progress,
        sleep: Some(sleep()),
        ..ConnectionConfig::default()
    }
}

async fn accept(_session: &mut Session) -> Result<Verdict, Error> {
    Ok(Verdict::Accept)
}

/// Waits for end of message, then takes 350 ms before it decides.
async fn slow_at_end(session: &mut Session) -> Result<Verdict, Error> {
    session.end_of_message().await?;
    async_std::task::sleep(Duration::from_millis(350)).await;
    session.add_header("X-Slow", "yes")?;
    Ok(Verdict::Accept)
}

#[async_std::test]
async fn silence_beyond_the_read_timeout_closes_the_connection() {
    let (mta, filter) = UnixStream::pair().unwrap();
    let timeout = Duration::from_millis(150);
    let server = async_std::task::spawn(serve_connection(
        filter,
        Arc::new(FnFilter::new(accept)),
        config(timeout, None),
        1,
    ));
    // The driver's wait starts after it answers OPTNEG, so after this instant.
    let start = Instant::now();
    let mut client = MilterClient::new(mta, Profile::postfix());
    client.negotiate().await.unwrap();
    let result = async_std::future::timeout(Duration::from_secs(5), server)
        .await
        .expect("the driver gives up on a silent MTA");
    assert!(
        matches!(result, Err(ConnectionError::Timeout)),
        "{result:?}"
    );
    let waited = start.elapsed();
    assert!(waited >= timeout, "timed out after {waited:?}");
}

#[async_std::test]
async fn reads_spread_over_several_timeouts_do_not_trip_it() {
    let (mta, filter) = UnixStream::pair().unwrap();
    let timeout = Duration::from_millis(200);
    let server = async_std::task::spawn(serve_connection(
        filter,
        Arc::new(FnFilter::new(slow_free)),
        config(timeout, None),
        1,
    ));
    let mut client = MilterClient::new(mta, Profile::postfix());
    client.negotiate().await.unwrap();
    client
        .connect("client.example.com", Family::Inet, 4000, "192.0.2.1")
        .await
        .unwrap();
    let start = Instant::now();
    let mut sent = 0;
    while start.elapsed() < Duration::from_millis(800) {
        async_std::task::sleep(Duration::from_millis(70)).await;
        assert_eq!(
            client.helo("client.example.com").await.unwrap(),
            Reply::Continue
        );
        sent += 1;
    }
    assert!(sent >= 5);
    client.quit().await.unwrap();
    let result = async_std::future::timeout(Duration::from_secs(5), server)
        .await
        .expect("the driver ends at QUIT");
    assert!(result.is_ok(), "{result:?}");
}

/// Waits for end of message without answering anything before.
async fn slow_free(session: &mut Session) -> Result<Verdict, Error> {
    session.end_of_message().await?;
    Ok(Verdict::Continue)
}

#[async_std::test]
async fn progress_is_sent_while_the_filter_works_at_end_of_message() {
    let (mta, filter) = UnixStream::pair().unwrap();
    let server = async_std::task::spawn(serve_connection(
        filter,
        Arc::new(FnFilter::new(slow_at_end)),
        config(Duration::from_secs(10), Some(Duration::from_millis(100))),
        1,
    ));
    let mut client = MilterClient::new(mta, Profile::postfix());
    client.negotiate().await.unwrap();
    client
        .connect("client.example.com", Family::Inet, 4000, "192.0.2.1")
        .await
        .unwrap();
    client.helo("client.example.com").await.unwrap();
    client.mail("<a@example.com>", &[]).await.unwrap();
    client.rcpt("<b@example.net>", &[]).await.unwrap();
    client.data().await.unwrap();
    client.header("Subject", " hi").await.unwrap();
    client.end_of_headers().await.unwrap();
    client.body(b"hello\r\n").await.unwrap();
    let eom = client.end_of_message().await.unwrap();
    assert_eq!(eom.reply, Reply::Accept);
    assert!(eom.progress >= 2, "{} PROGRESS packets", eom.progress);
    // The next message, answered at once, gets none.
    client.mail("<a@example.com>", &[]).await.unwrap();
    client.rcpt("<b@example.net>", &[]).await.unwrap();
    client.quit().await.unwrap();
    let result = async_std::future::timeout(Duration::from_secs(5), server)
        .await
        .expect("the driver ends at QUIT");
    assert!(result.is_ok(), "{result:?}");
}
