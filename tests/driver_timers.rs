//! The connection's timers on a manual clock: the read timeout counts silence, PROGRESS is
//! sent while a filter works at end of message, and the server's shutdown grace period ends
//! busy connections. No real sleeps: time moves only when the test moves it.

use std::io;
use std::time::Duration;

use async_milter::connection::{Builder, ConnectionConfig, ConnectionError};
use async_milter::proto::Family;
use async_milter::rt::{AsyncStd, ManualClock, Runtime, Sleep, StdListener, Timer};
use async_milter::server::{Server, ServerConfig};
use async_milter::testing::{MilterClient, Profile, Reply};
use async_milter::{Error, Session, Verdict};
use async_std::os::unix::net::UnixStream;
use futures::StreamExt;
use futures::channel::oneshot;
use futures::future::{BoxFuture, FutureExt};

/// Safety net against a hang only; every test finishes long before it.
const HANG: Duration = Duration::from_secs(20);

/// Yields until `clock` has at least `n` sleeps waiting, so the driver has armed its
/// timer before the test moves time (bounded in count, not in time).
async fn armed(clock: &ManualClock, n: usize) {
    for _ in 0..100_000 {
        if clock.sleepers() >= n {
            return;
        }
        async_std::task::yield_now().await;
    }
    panic!("no timer armed: {} sleeping", clock.sleepers());
}

/// Waits until a timer is armed to fire `after` from the clock's present moment (other
/// timers, such as the idle-release one, may be armed besides).
async fn armed_for(clock: &ManualClock, after: Duration) {
    for _ in 0..100_000 {
        let at = clock.now() + after;
        if clock.deadlines().contains(&at) {
            return;
        }
        async_std::task::yield_now().await;
    }
    panic!("no timer armed for {after:?}: {:?}", clock.deadlines());
}

async fn accept(_session: &mut Session) -> Result<Verdict, Error> {
    Ok(Verdict::Accept)
}

/// Waits for end of message without answering anything before.
async fn wait_for_end(session: &mut Session) -> Result<Verdict, Error> {
    session.end_of_message().await?;
    Ok(Verdict::Continue)
}

#[async_std::test]
async fn silence_beyond_the_read_timeout_closes_the_connection() {
    let clock = ManualClock::new();
    let (mta, filter) = UnixStream::pair().unwrap();
    let connection = Builder::new(clock.clone())
        .read_timeout(Some(Duration::from_secs(60)))
        .serve(filter, wait_for_end);
    // The connection runs in this task, beside the script: when the script sees a reply,
    // the connection has already begun its next wait, so time moves only after it.
    let script = async {
        let mut client = MilterClient::new(mta, Profile::postfix());
        client.negotiate().await.unwrap();
        // 59 s of silence: still open, and speaking restarts the count.
        armed(&clock, 1).await;
        clock.advance(Duration::from_secs(59));
        let reply = client
            .connect("client.example.com", Family::Inet, 4000, "192.0.2.1")
            .await
            .unwrap();
        assert_eq!(reply, Reply::Continue);
        clock.advance(Duration::from_secs(59));
        assert_eq!(
            client.helo("client.example.com").await.unwrap(),
            Reply::Continue
        );
        // A full minute of silence ends it.
        clock.advance(Duration::from_secs(60));
        client
    };
    let (result, _client) =
        async_std::future::timeout(HANG, futures::future::join(connection, script))
            .await
            .expect("no hang");
    assert!(
        matches!(result, Err(ConnectionError::Timeout)),
        "{result:?}"
    );
}

#[async_std::test]
async fn without_a_read_timeout_silence_is_allowed() {
    let clock = ManualClock::new();
    let (mta, filter) = UnixStream::pair().unwrap();
    let connection = Builder::new(clock.clone())
        .read_timeout(None)
        .serve(filter, accept);
    let server = async_std::task::spawn(connection);
    let mut client = MilterClient::new(mta, Profile::postfix());
    client.negotiate().await.unwrap();
    clock.advance(Duration::from_secs(365 * 24 * 3600));
    assert_eq!(clock.sleepers(), 0, "no timer is armed");
    client.quit().await.unwrap();
    let result = async_std::future::timeout(HANG, server)
        .await
        .expect("no hang");
    assert!(result.is_ok(), "{result:?}");
}

#[async_std::test]
async fn a_peer_that_never_negotiates_is_closed_after_the_negotiation_timeout() {
    let clock = ManualClock::new();
    let (mut mta, filter) = UnixStream::pair().unwrap();
    let connection = Builder::new(clock.clone())
        .read_timeout(Some(Duration::from_secs(7210)))
        .negotiation_timeout(Some(Duration::from_secs(30)))
        .serve(filter, accept);
    let script = async {
        // Half a length field, then nothing: 30 s end it, not the two-hour read timeout.
        futures::AsyncWriteExt::write_all(&mut mta, &[0, 0])
            .await
            .unwrap();
        armed(&clock, 1).await;
        clock.advance(Duration::from_secs(30));
    };
    let (result, ()) = async_std::future::timeout(HANG, futures::future::join(connection, script))
        .await
        .expect("no hang");
    assert!(
        matches!(result, Err(ConnectionError::NegotiationTimeout)),
        "{result:?}"
    );
}

/// Replaces the body with 8 MiB at end of message: far more than a socket buffer holds.
async fn large_reply(session: &mut Session) -> Result<Verdict, Error> {
    session.end_of_message().await?;
    session.replace_body(vec![b'x'; 8 * 1024 * 1024])?;
    Ok(Verdict::Accept)
}

#[async_std::test]
async fn a_peer_that_stops_reading_is_closed_after_the_write_timeout() {
    let clock = ManualClock::new();
    let (mta, filter) = UnixStream::pair().unwrap();
    let mut raw = mta.clone();
    let connection = Builder::new(clock.clone())
        .read_timeout(None)
        .progress_interval(None)
        .write_timeout(Some(Duration::from_secs(60)))
        .serve(filter, large_reply);
    let script = async {
        let mut client = MilterClient::new(mta, Profile::postfix());
        client.negotiate().await.unwrap();
        up_to_end_of_message(&mut client).await;
        // End of message, and then never a byte read: the reply's write waits, armed.
        futures::AsyncWriteExt::write_all(&mut raw, &[0, 0, 0, 1, b'E'])
            .await
            .unwrap();
        armed_for(&clock, Duration::from_secs(60)).await;
        clock.advance(Duration::from_secs(60));
        client
    };
    let (result, _client) =
        async_std::future::timeout(HANG, futures::future::join(connection, script))
            .await
            .expect("no hang");
    assert!(
        matches!(result, Err(ConnectionError::WriteTimeout)),
        "{result:?}"
    );
}

/// A filter that, at end of message, waits for the test to let it go.
fn held_at_end(release: oneshot::Receiver<()>) -> impl async_milter::Filter {
    let release = std::sync::Mutex::new(Some(release));
    async_milter::filter_fn(move |session: &mut Session| {
        let release = release.lock().unwrap().take();
        Box::pin(async move {
            session.end_of_message().await?;
            if let Some(release) = release {
                let _ = release.await;
            }
            session.add_header("X-Held", "yes")?;
            Ok(Verdict::Accept)
        })
    })
}

async fn up_to_end_of_message<S>(client: &mut MilterClient<S>)
where
    S: futures::AsyncRead + futures::AsyncWrite + Unpin,
{
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
}

#[async_std::test]
async fn progress_is_sent_once_per_interval_while_the_filter_works() {
    let clock = ManualClock::new();
    let (mta, filter_side) = UnixStream::pair().unwrap();
    let (release, held) = oneshot::channel();
    let connection = Builder::new(clock.clone())
        .read_timeout(None)
        .progress_interval(Some(Duration::from_secs(5)))
        .serve(filter_side, held_at_end(held));
    let script = async {
        let mut client = MilterClient::new(mta, Profile::postfix());
        client.negotiate().await.unwrap();
        up_to_end_of_message(&mut client).await;
        let time = async {
            for _ in 0..3 {
                armed_for(&clock, Duration::from_secs(5)).await;
                clock.advance(Duration::from_secs(5));
            }
            armed_for(&clock, Duration::from_secs(5)).await;
            release.send(()).unwrap();
        };
        let (eom, ()) = futures::future::join(client.end_of_message(), time).await;
        let eom = eom.unwrap();
        assert_eq!(eom.reply, Reply::Accept);
        assert_eq!(eom.progress, 3, "one PROGRESS per 5 s interval");
        client.quit().await.unwrap();
    };
    let (result, ()) = async_std::future::timeout(HANG, futures::future::join(connection, script))
        .await
        .expect("no hang");
    assert!(result.is_ok(), "{result:?}");
}

/// async-std with a manual clock: real sockets and tasks, time moved by the test.
#[derive(Clone)]
struct ManualTime {
    clock: ManualClock,
}

impl Timer for ManualTime {
    fn now(&self) -> std::time::Instant {
        self.clock.now()
    }

    fn sleep_until(&self, deadline: std::time::Instant) -> Sleep {
        self.clock.sleep_until(deadline)
    }
}

impl Runtime for ManualTime {
    type Listener = <AsyncStd as Runtime>::Listener;
    type Stream = <AsyncStd as Runtime>::Stream;

    fn listen(&self, listener: StdListener) -> io::Result<Self::Listener> {
        AsyncStd.listen(listener)
    }

    fn accept<'a>(&self, listener: &'a Self::Listener) -> BoxFuture<'a, io::Result<Self::Stream>> {
        AsyncStd.accept(listener)
    }

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        AsyncStd.spawn(task);
    }
}

/// Starts a server on the manual clock with a message held at end of message; returns the
/// server task, the shutdown trigger, the pending end-of-message reply and the release.
async fn busy_server(
    clock: &ManualClock,
    grace: Duration,
) -> (
    async_std::task::JoinHandle<io::Result<()>>,
    oneshot::Sender<()>,
    async_std::task::JoinHandle<Result<Reply, String>>,
    oneshot::Sender<()>,
) {
    let config = ServerConfig {
        shutdown_grace: grace,
        connection: ConnectionConfig {
            read_timeout: None,
            progress_interval: None,
            ..ConnectionConfig::default()
        },
        ..ServerConfig::default()
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::from_listener(
        ManualTime {
            clock: clock.clone(),
        },
        listener,
        config,
    )
    .unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let (release, held) = oneshot::channel();
    let server = async_std::task::spawn(server.serve_until(held_at_end(held), stopped.map(|_| ())));
    let stream = async_std::net::TcpStream::connect(addr).await.unwrap();
    let mut client = MilterClient::new(stream, Profile::postfix());
    client.negotiate().await.unwrap();
    up_to_end_of_message(&mut client).await;
    let eom = async_std::task::spawn(async move {
        client
            .end_of_message()
            .await
            .map(|eom| eom.reply)
            .map_err(|e| e.to_string())
    });
    (server, stop, eom, release)
}

#[async_std::test]
async fn shutdown_lets_a_message_finish_within_the_grace_period() {
    let clock = ManualClock::new();
    let grace = Duration::from_secs(30);
    let (server, stop, eom, release) = busy_server(&clock, grace).await;
    stop.send(()).unwrap();
    armed_for(&clock, grace).await;
    clock.advance(Duration::from_secs(29));
    release.send(()).unwrap();
    let reply = async_std::future::timeout(HANG, eom)
        .await
        .expect("no hang");
    assert_eq!(reply, Ok(Reply::Accept), "the message finishes");
    let result = async_std::future::timeout(HANG, server)
        .await
        .expect("no hang");
    assert!(
        result.is_ok(),
        "the server stops once the connection closed: {result:?}"
    );
}

#[async_std::test]
async fn shutdown_closes_connections_still_busy_after_the_grace_period() {
    let clock = ManualClock::new();
    let grace = Duration::from_secs(30);
    let (server, stop, eom, _release) = busy_server(&clock, grace).await;
    stop.send(()).unwrap();
    armed_for(&clock, grace).await;
    clock.advance(grace);
    let result = async_std::future::timeout(HANG, server)
        .await
        .expect("no hang");
    assert!(result.is_ok(), "{result:?}");
    let reply = async_std::future::timeout(HANG, eom)
        .await
        .expect("no hang");
    assert!(reply.is_err(), "the busy connection was closed: {reply:?}");
}

#[async_std::test]
async fn a_filter_can_ask_for_progress_itself() {
    let clock = ManualClock::new();
    let (mta, filter_side) = UnixStream::pair().unwrap();
    let (first_tx, first) = oneshot::channel::<()>();
    let (second_tx, second) = oneshot::channel::<()>();
    let (reached_tx, reached) = futures::channel::mpsc::unbounded::<u8>();
    let parts = std::sync::Mutex::new(Some((first, second, reached_tx)));
    let filter = async_milter::filter_fn(move |session: &mut Session| {
        let parts = parts.lock().unwrap().take();
        Box::pin(async move {
            session.progress(); // before end of message: dropped
            session.end_of_message().await?;
            if let Some((first, second, reached)) = parts {
                session.progress();
                let _ = reached.unbounded_send(1);
                let _ = first.await;
                session.progress();
                let _ = reached.unbounded_send(2);
                let _ = second.await;
            }
            Ok(Verdict::Accept)
        })
    });
    // No timer-driven PROGRESS: every one counted comes from the filter.
    let connection = Builder::new(clock)
        .read_timeout(None)
        .progress_interval(None)
        .serve(filter_side, filter);
    let script = async {
        let mut client = MilterClient::new(mta, Profile::postfix());
        client.negotiate().await.unwrap();
        up_to_end_of_message(&mut client).await;
        let release = async {
            // The connection runs in this task: when the filter's report arrives, the
            // connection has already yielded, after sending the PROGRESS asked for.
            let mut reached = reached;
            assert_eq!(reached.next().await, Some(1));
            first_tx.send(()).unwrap();
            assert_eq!(reached.next().await, Some(2));
            second_tx.send(()).unwrap();
        };
        let (eom, ()) = futures::future::join(client.end_of_message(), release).await;
        let eom = eom.unwrap();
        assert_eq!(eom.reply, Reply::Accept);
        assert_eq!(
            eom.progress, 2,
            "one PROGRESS per request at end of message"
        );
        client.quit().await.unwrap();
    };
    let (result, ()) = async_std::future::timeout(HANG, futures::future::join(connection, script))
        .await
        .expect("no hang");
    assert!(result.is_ok(), "{result:?}");
}
