//! Behaviour contract, server: connection limit, read timeout, maximum frame size, graceful
//! shutdown (with a message in flight, and with a grace period that runs out), unix sockets,
//! and PROGRESS while a filter is busy at end of message. Real sockets, both presets, every
//! runtime (see `support`).
//!
//! Where a real timeout is the subject, outcomes are checked with generous upper bounds;
//! everything else is synchronised through channels.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_milter::connection::ConnectionConfig;
use async_milter::server::ServerConfig;
use async_milter::testing::{self, ClientError, Reply};
use async_milter::{Error, Verdict};
use async_std::net::TcpStream;
use futures::{AsyncReadExt, join};
use support::{
    DropGuard, Gate, MESSAGE, Probe, appended, envelope, filter, name, on_every_runtime, profiles,
    report, run, serve_at, serve_with, within,
};

/// Accepts every message, adding a header.
fn accepting() -> support::TestFilter {
    filter(|s| {
        Box::pin(async move {
            s.end_of_message().await?;
            s.add_header("X-Served", "yes")?;
            Ok::<_, Error>(Verdict::Accept)
        })
    })
}

fn with_connection(connection: ConnectionConfig) -> ServerConfig {
    ServerConfig {
        connection,
        ..ServerConfig::default()
    }
}

/// The filter's end of the stream closed: EOF or a reset.
fn closed<T: std::fmt::Debug>(result: &Result<T, ClientError>) -> bool {
    matches!(
        result,
        Err(ClientError::Closed { .. } | ClientError::Io(_) | ClientError::SessionClosed)
    )
}

/// Reads from a stream the server should close: `Ok(0)` or a reset, within [`support::WAIT`].
async fn wait_for_close(mut stream: impl futures::AsyncRead + Unpin) {
    let mut buf = [0; 64];
    match within("the server to close the connection", stream.read(&mut buf)).await {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!("expected the connection to close, got {n} bytes"),
    }
}

on_every_runtime!(connections_beyond_the_limit_are_closed_at_once);
fn connections_beyond_the_limit_are_closed_at_once() {
    run(async {
        for profile in profiles() {
            let config = ServerConfig {
                max_connections: 1,
                ..ServerConfig::default()
            };
            let harness = serve_with(accepting(), config).await;
            let who = name(&profile);
            let mut first = harness.client(profile.clone()).await;
            // The second is accepted and closed: the kit sees the end at negotiation.
            let mut second = testing::connect(&harness.spec, profile.clone())
                .await
                .expect("the kernel accepts the connection");
            let negotiation = second.negotiate().await;
            assert!(closed(&negotiation), "{who}: {negotiation:?}");
            // The first is not disturbed.
            let outcome = first.send_message(&envelope(), MESSAGE).await.unwrap();
            assert_eq!(outcome.verdict, Reply::Accept, "{who}");
            first.quit().await.expect("quit");
            // Once it has gone, a new connection is served. The server notices the end of
            // the first one on its own schedule, so try until it has (bounded).
            let mut third = within("a free connection slot", async {
                loop {
                    let mut client = testing::connect(&harness.spec, profile.clone())
                        .await
                        .expect("connect");
                    if client.negotiate().await.is_ok() {
                        return client;
                    }
                    async_std::task::sleep(Duration::from_millis(10)).await;
                }
            })
            .await;
            support::greet(&mut third).await;
            let outcome = third.send_message(&envelope(), MESSAGE).await.unwrap();
            assert_eq!(outcome.verdict, Reply::Accept, "{who}");
            third.quit().await.expect("quit");
            harness.stop().await.expect("server stops");
        }
    });
}

on_every_runtime!(a_silent_mta_is_closed_after_the_read_timeout);
fn a_silent_mta_is_closed_after_the_read_timeout() {
    run(async {
        let timeout = Duration::from_millis(200);
        for profile in profiles() {
            let probe = Probe::new();
            let tx = probe.sender();
            let harness = serve_with(
                filter(move |s| {
                    let tx = tx.clone();
                    Box::pin(async move {
                        let _guard = DropGuard(tx.clone(), "dropped");
                        s.end_of_message().await?;
                        Ok(Verdict::Accept)
                    })
                }),
                with_connection(ConnectionConfig {
                    read_timeout: Some(timeout),
                    ..ConnectionConfig::default()
                }),
            )
            .await;
            let who = name(&profile);
            // Between messages, and in the middle of one.
            for mid_message in [false, true] {
                let mut client = harness.client(profile.clone()).await;
                if mid_message {
                    client.mail("<a@example.com>", &[]).await.unwrap();
                    client.rcpt("<b@example.net>", &[]).await.unwrap();
                }
                let silent_since = Instant::now();
                let stream = client.into_inner().expect("stream");
                wait_for_close(stream).await;
                let waited = silent_since.elapsed();
                assert!(
                    waited + Duration::from_millis(20) >= timeout,
                    "{who}: closed after {waited:?}, before the timeout"
                );
                assert!(waited < Duration::from_secs(3), "{who}: {waited:?}");
                assert_eq!(probe.next().await, "dropped", "{who} {mid_message}");
            }
            harness.stop().await.expect("server stops");
        }
    });
}

on_every_runtime!(a_frame_over_the_maximum_closes_only_that_connection);
fn a_frame_over_the_maximum_closes_only_that_connection() {
    run(async {
        let max = 4096;
        for profile in profiles() {
            let reading = filter(|s| {
                Box::pin(async move {
                    while s.next_body_chunk().await?.is_some() {}
                    Ok(Verdict::Accept)
                })
            });
            let harness = serve_with(
                reading,
                with_connection(ConnectionConfig {
                    max_frame_len: max,
                    ..ConnectionConfig::default()
                }),
            )
            .await;
            let who = name(&profile);
            let mut victim = harness.client(profile.clone()).await;
            let mut bystander = harness.client(profile.clone()).await;
            victim.mail("<a@example.com>", &[]).await.unwrap();
            victim.rcpt("<b@example.net>", &[]).await.unwrap();
            victim.data().await.unwrap();
            victim.header("Subject", " big").await.unwrap();
            victim.end_of_headers().await.unwrap();
            // A frame of exactly the maximum (code byte plus payload) passes...
            let fits = vec![b'x'; max as usize - 1];
            assert_eq!(victim.body(&fits).await.unwrap(), Reply::Continue, "{who}");
            // ...one byte more closes the connection.
            let too_big = vec![b'x'; max as usize];
            let result = victim.body(&too_big).await;
            assert!(closed(&result), "{who}: {result:?}");
            let outcome = bystander.send_message(&envelope(), MESSAGE).await.unwrap();
            assert_eq!(outcome.verdict, Reply::Accept, "{who}");
            bystander.quit().await.expect("quit");
            let mut fresh = harness.client(profile).await;
            let outcome = fresh.send_message(&envelope(), MESSAGE).await.unwrap();
            assert_eq!(outcome.verdict, Reply::Accept, "{who}");
            fresh.quit().await.expect("quit");
            harness.stop().await.expect("server stops");
        }
    });
}

/// A filter that reports reaching end of message and waits at `gate` before accepting.
fn waiting_at_end_of_message(probe: &Probe<&'static str>, gate: &Gate) -> support::TestFilter {
    let tx = probe.sender();
    let gate = gate.clone();
    filter(move |s| {
        let tx = tx.clone();
        let gate = gate.clone();
        Box::pin(async move {
            let _guard = DropGuard(tx.clone(), "dropped");
            s.end_of_message().await?;
            report(&tx, "at end of message");
            gate.wait().await;
            s.add_header("X-Finished", "after the gate")?;
            Ok(Verdict::Accept)
        })
    })
}

/// Waits until connecting fails: the listener is gone.
async fn wait_until_refused(addr: std::net::SocketAddr) {
    within("new connections to be refused", async {
        while let Ok(stream) = TcpStream::connect(addr).await {
            drop(stream);
            async_std::task::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

on_every_runtime!(shutdown_lets_the_message_in_flight_finish_and_refuses_new_connections);
fn shutdown_lets_the_message_in_flight_finish_and_refuses_new_connections() {
    run(async {
        for profile in profiles() {
            let probe = Probe::new();
            let gate = Gate::new();
            let mut harness = serve_with(
                waiting_at_end_of_message(&probe, &gate),
                ServerConfig::default(),
            )
            .await;
            let who = name(&profile);
            let addr = harness.addr();
            let (mut client, log) = harness.tapped(profile.clone()).await;
            support::greet(&mut client).await;
            client.mail("<a@example.com>", &[]).await.unwrap();
            client.rcpt("<b@example.net>", &[]).await.unwrap();
            let (eom, ()) = join!(client.end_of_message(), async {
                assert_eq!(probe.next().await, "at end of message");
                harness.shutdown();
                wait_until_refused(addr).await;
                gate.open();
            });
            let eom = eom.expect("the message in flight gets its verdict");
            assert_eq!(eom.reply, Reply::Accept, "{who}");
            assert_eq!(
                eom.modifications,
                [appended(&profile, "X-Finished", "after the gate")],
                "{who}"
            );
            harness.stopped().await.expect("serve_until returns");
            assert_eq!(probe.next().await, "dropped");
            // The server closed the connection after the message.
            let mut buf = [0; 16];
            let mut stream = client.into_inner().expect("stream");
            let read = within("end of stream", stream.read(&mut buf)).await;
            assert!(matches!(read, Ok(0) | Err(_)), "{who}: {read:?}");
            drop(log);
        }
    });
}

on_every_runtime!(shutdown_closes_a_stuck_connection_when_the_grace_period_ends);
fn shutdown_closes_a_stuck_connection_when_the_grace_period_ends() {
    run(async {
        let grace = Duration::from_millis(300);
        for profile in profiles() {
            let probe = Probe::new();
            let gate = Gate::new(); // never opened
            let config = ServerConfig {
                shutdown_grace: grace,
                ..ServerConfig::default()
            };
            let mut harness = serve_with(waiting_at_end_of_message(&probe, &gate), config).await;
            let who = name(&profile);
            let mut client = harness.client(profile.clone()).await;
            client.mail("<a@example.com>", &[]).await.unwrap();
            client.rcpt("<b@example.net>", &[]).await.unwrap();
            let (eom, waited) = join!(client.end_of_message(), async {
                assert_eq!(probe.next().await, "at end of message");
                let started = Instant::now();
                harness.shutdown();
                harness.stopped().await.expect("serve_until returns");
                started.elapsed()
            });
            assert!(closed(&eom), "{who}: {eom:?}");
            assert!(
                waited + Duration::from_millis(20) >= grace,
                "{who}: {waited:?}"
            );
            assert!(waited < Duration::from_secs(3), "{who}: {waited:?}");
            assert_eq!(probe.next().await, "dropped", "{who}");
        }
    });
}

/// A fresh directory under the system temp dir, removed by the test.
fn temp_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "async-milter-contract-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

on_every_runtime!(unix_sockets_stale_file_mode_and_removal);
fn unix_sockets_stale_file_mode_and_removal() {
    run(async {
        for (profile, mode) in profiles().into_iter().zip([0o600, 0o666]) {
            let who = name(&profile);
            let dir = temp_dir();
            let path = dir.join("milter.sock");
            // A socket file left by an earlier run.
            drop(std::os::unix::net::UnixListener::bind(&path).expect("stale socket"));
            assert!(path.exists());
            let config = ServerConfig {
                unix_mode: Some(mode),
                ..ServerConfig::default()
            };
            let spec = format!("unix:{}", path.display());
            let harness = serve_at(&spec, accepting(), config)
                .await
                .expect("a stale socket is replaced");
            let permissions = std::fs::metadata(&path).unwrap().permissions();
            assert_eq!(permissions.mode() & 0o777, mode, "{who}");
            let mut client = testing::connect(&spec, profile.clone()).await.unwrap();
            client.negotiate().await.unwrap();
            support::greet(&mut client).await;
            let outcome = client.send_message(&envelope(), MESSAGE).await.unwrap();
            assert_eq!(outcome.verdict, Reply::Accept, "{who}");
            client.quit().await.expect("quit");
            harness.stop().await.expect("server stops");
            assert!(
                !path.exists(),
                "{who}: the socket file is removed at shutdown"
            );
            std::fs::remove_dir_all(&dir).unwrap();
        }
    });
}

on_every_runtime!(a_non_socket_file_at_the_unix_path_is_refused_and_kept);
fn a_non_socket_file_at_the_unix_path_is_refused_and_kept() {
    run(async {
        let dir = temp_dir();
        let path = dir.join("not-a-socket");
        std::fs::write(&path, b"precious data").unwrap();
        let spec = format!("unix:{}", path.display());
        let result = serve_at(&spec, accepting(), ServerConfig::default()).await;
        let Err(error) = result else {
            panic!("binding over a regular file is refused");
        };
        assert_eq!(error.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"precious data");
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

on_every_runtime!(progress_is_sent_while_the_filter_is_busy_at_end_of_message);
fn progress_is_sent_while_the_filter_is_busy_at_end_of_message() {
    run(async {
        for profile in profiles() {
            let probe = Probe::new();
            let gate = Gate::new();
            let harness = serve_with(
                waiting_at_end_of_message(&probe, &gate),
                with_connection(ConnectionConfig {
                    progress_interval: Some(Duration::from_millis(50)),
                    ..ConnectionConfig::default()
                }),
            )
            .await;
            let who = name(&profile);
            let (mut client, log) = harness.tapped(profile.clone()).await;
            support::greet(&mut client).await;
            client.mail("<a@example.com>", &[]).await.unwrap();
            client.rcpt("<b@example.net>", &[]).await.unwrap();
            let progress = log.progress();
            let (eom, ()) = join!(client.end_of_message(), async {
                assert_eq!(probe.next().await, "at end of message");
                within("a PROGRESS packet", progress.recv())
                    .await
                    .expect("progress");
                gate.open();
            });
            let eom = eom.expect("end of message");
            assert!(eom.progress >= 1, "{who}: {eom:?}");
            assert_eq!(eom.reply, Reply::Accept, "{who}");
            assert_eq!(
                eom.modifications,
                [appended(&profile, "X-Finished", "after the gate")],
                "{who}"
            );
            client.quit().await.expect("quit");
            harness.stop().await.expect("server stops");
        }
    });
}
