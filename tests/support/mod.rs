//! Shared by the contract tests: a real server on loopback, a filter built from a closure,
//! channels to watch the filter from the test, and a stream tap that records every packet
//! the filter sends.
//!
//! Every contract test runs once per runtime. A test is a plain `fn` (no `#[test]`) named in
//! [`on_every_runtime!`], which makes the module `name` with the tests `name::async_std`,
//! `name::tokio` and `name::smol`; a test fn nobody names is dead code, which clippy refuses.
//! The server (accept loop and connections, so every filter) runs on that runtime; the MTA
//! side (the test body, the kit's client and every timeout) stays on async-std, since it is
//! the milter side that is under test.
//!
//! Nothing here sleeps to wait for something: the filter reports through channels, and every
//! wait is bounded ([`within`], the kit's own per-answer timeout, [`run`]'s overall limit).

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use async_milter::proto::{Family, FrameDecoder};
use async_milter::rt::{self, Runtime};
use async_milter::server::{Server, ServerConfig, SocketSpec};
use async_milter::testing::{
    self, Envelope, MilterClient, MilterStream, Modification, Profile, Reply,
};
use async_milter::{Error, Filter, Needs, Session, Verdict};
use async_std::channel::{Receiver, Sender, unbounded};
use async_std::net::TcpStream;
use async_std::task;
use futures::channel::oneshot;
use futures::future::BoxFuture;
use futures::io::{AsyncRead, AsyncWrite};

/// The longest any single wait in a test may take before the test fails.
pub(crate) const WAIT: Duration = Duration::from_secs(5);

/// Runs a test body on async-std, failing it if it takes longer than 30 s overall.
pub(crate) fn run<F: Future<Output = ()>>(body: F) {
    let _ = env_logger::builder().is_test(true).try_init();
    task::block_on(async {
        async_std::future::timeout(Duration::from_secs(30), body)
            .await
            .expect("test took longer than 30 s");
    });
}

/// Awaits `future`, failing the test after [`WAIT`].
pub(crate) async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    let Ok(value) = async_std::future::timeout(WAIT, future).await else {
        panic!("timed out waiting for {what}");
    };
    value
}

// ===== the runtime under test =====

/// The runtime a test's server runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rt {
    AsyncStd,
    Tokio,
    Smol,
}

thread_local! {
    /// The runtime of the test running on this thread, set by [`on_runtime`].
    static RUNTIME: Cell<Option<Rt>> = const { Cell::new(None) };
}

/// Runs `test` with its server on `rt` (the test thread's body is driven by [`run`], which
/// polls it on this thread, so [`serve_with`] sees the setting).
pub(crate) fn on_runtime(rt: Rt, test: fn()) {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            RUNTIME.set(None);
        }
    }
    RUNTIME.set(Some(rt));
    let _reset = Reset;
    test();
}

/// The runtime of the running test; a test not started by [`on_every_runtime!`] fails here
/// rather than silently serving on a default.
pub(crate) fn runtime() -> Rt {
    RUNTIME
        .get()
        .expect("contract tests serve through on_every_runtime!, which picks the runtime")
}

/// Makes one test per runtime from each plain `fn()` named: `on_every_runtime!(my_test);`
/// gives `my_test::async_std`, `my_test::tokio` and `my_test::smol`.
// Some test binaries share this module without running contract tests.
#[allow(unused_macros)]
macro_rules! on_every_runtime {
    ($($test:ident),+ $(,)?) => {$(
        mod $test {
            #[test]
            fn async_std() {
                crate::support::on_runtime(crate::support::Rt::AsyncStd, super::$test);
            }

            #[test]
            fn tokio() {
                crate::support::on_runtime(crate::support::Rt::Tokio, super::$test);
            }

            #[test]
            fn smol() {
                crate::support::on_runtime(crate::support::Rt::Smol, super::$test);
            }
        }
    )+};
}
#[allow(unused_imports)]
pub(crate) use on_every_runtime;

/// One multi-thread tokio runtime per test binary, shared by its tokio tests; the server is
/// spawned into it, so `rt::Tokio` finds the runtime it must run inside.
fn tokio_runtime() -> &'static tokio::runtime::Runtime {
    static TOKIO: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    TOKIO.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// Runs `task` in the background on `rt`: async-std's and smol's global executors, or the
/// shared tokio runtime.
pub(crate) fn spawn_on(rt: Rt, task: impl Future<Output = ()> + Send + 'static) {
    match rt {
        Rt::AsyncStd => drop(task::spawn(task)),
        Rt::Tokio => drop(tokio_runtime().spawn(task)),
        Rt::Smol => smol::spawn(task).detach(),
    }
}

/// Both presets, each test runs under both.
pub(crate) fn profiles() -> [Profile; 2] {
    [Profile::postfix(), Profile::sendmail()]
}

/// A short name for a profile in assertion messages.
pub(crate) fn name(profile: &Profile) -> &'static str {
    match profile.kind {
        async_milter::testing::MtaKind::Postfix => "postfix",
        _ => "sendmail",
    }
}

// ===== filters from closures =====

type Body = dyn for<'a> Fn(&'a mut Session) -> BoxFuture<'a, Result<Verdict, Error>>
    + Send
    + Sync
    + 'static;

/// A filter whose body is a closure returning a boxed future (so it can capture channels).
pub(crate) struct TestFilter {
    needs: Needs,
    body: Box<Body>,
}

/// Builds a filter with [`Needs::everything`] from `body`:
/// `filter(move |s| { let tx = tx.clone(); Box::pin(async move { … }) })`.
pub(crate) fn filter<F>(body: F) -> TestFilter
where
    F: for<'a> Fn(&'a mut Session) -> BoxFuture<'a, Result<Verdict, Error>> + Send + Sync + 'static,
{
    TestFilter {
        needs: Needs::everything(),
        body: Box::new(body),
    }
}

impl TestFilter {
    /// Declares the filter's needs.
    #[must_use]
    pub(crate) fn with_needs(mut self, needs: Needs) -> Self {
        self.needs = needs;
        self
    }
}

impl Filter for TestFilter {
    fn needs(&self) -> Needs {
        self.needs.clone()
    }

    async fn filter(&self, session: &mut Session) -> Result<Verdict, Error> {
        (self.body)(session).await
    }
}

// ===== watching the filter =====

/// A channel from the filter to the test. The filter side never blocks.
pub(crate) struct Probe<T> {
    tx: Sender<T>,
    rx: Receiver<T>,
}

impl<T> Probe<T> {
    pub(crate) fn new() -> Self {
        let (tx, rx) = unbounded();
        Self { tx, rx }
    }

    /// The sending side, to move into the filter.
    pub(crate) fn sender(&self) -> Sender<T> {
        self.tx.clone()
    }

    /// The next report, failing the test after [`WAIT`].
    pub(crate) async fn next(&self) -> T {
        within("a report from the filter", self.rx.recv())
            .await
            .expect("probe channel open")
    }

    /// Everything reported so far, without waiting.
    pub(crate) fn drain(&self) -> Vec<T> {
        std::iter::from_fn(|| self.rx.try_recv().ok()).collect()
    }
}

impl<T> Default for Probe<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Reports without blocking; a test that stopped listening is not the filter's problem.
pub(crate) fn report<T>(tx: &Sender<T>, value: T) {
    let _ = tx.try_send(value);
}

/// A gate the filter waits at until the test opens it.
#[derive(Clone)]
pub(crate) struct Gate {
    tx: Sender<()>,
    rx: Receiver<()>,
}

impl Gate {
    pub(crate) fn new() -> Self {
        let (tx, rx) = unbounded();
        Self { tx, rx }
    }

    /// Waits (in the filter) until the gate opens.
    pub(crate) async fn wait(&self) {
        let _ = self.rx.recv().await;
    }

    /// Lets every waiter through, now and later.
    pub(crate) fn open(&self) {
        self.tx.close();
    }
}

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

/// Reports when dropped: shows that a filter future was dropped.
pub(crate) struct DropGuard(pub(crate) Sender<&'static str>, pub(crate) &'static str);

impl Drop for DropGuard {
    fn drop(&mut self) {
        report(&self.0, self.1);
    }
}

// ===== the server =====

/// A server bound on `127.0.0.1:0` (or a unix socket), served until [`Harness::shutdown`].
pub(crate) struct Harness {
    /// The bound address as a socket spec (`inet:PORT@127.0.0.1`, `unix:PATH`).
    pub(crate) spec: String,
    local: SocketSpec,
    stop: Option<oneshot::Sender<()>>,
    /// What `serve_until` returned; cancelled if the server task panicked.
    done: Option<oneshot::Receiver<io::Result<()>>>,
}

/// Binds `inet:0@127.0.0.1` with `config` and serves `filter` in a background task on the
/// test's runtime.
pub(crate) async fn serve_with<F: Filter>(filter: F, config: ServerConfig) -> Harness {
    let harness = serve_at("inet:0@127.0.0.1", filter, config)
        .await
        .expect("bind loopback");
    assert_ne!(harness.addr().port(), 0, "local_spec gives the real port");
    harness
}

/// [`serve_with`] with default settings.
pub(crate) async fn serve<F: Filter>(filter: F) -> Harness {
    serve_with(filter, ServerConfig::default()).await
}

/// Binds `spec` with `config` and serves `filter`, both on the test's runtime (tokio
/// registers a listener only from inside its runtime, so binding happens in the task too).
pub(crate) async fn serve_at<F: Filter>(
    spec: &str,
    filter: F,
    config: ServerConfig,
) -> io::Result<Harness> {
    let (bound_tx, bound) = oneshot::channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let (done_tx, done) = oneshot::channel();
    let spec = spec.to_owned();
    let rt = runtime();
    match rt {
        Rt::AsyncStd => spawn_on(
            rt,
            bind_and_serve(
                rt::AsyncStd,
                spec,
                config,
                filter,
                bound_tx,
                stopped,
                done_tx,
            ),
        ),
        Rt::Tokio => spawn_on(
            rt,
            bind_and_serve(rt::Tokio, spec, config, filter, bound_tx, stopped, done_tx),
        ),
        Rt::Smol => spawn_on(
            rt,
            bind_and_serve(rt::Smol, spec, config, filter, bound_tx, stopped, done_tx),
        ),
    }
    let local = within("the server to bind", bound)
        .await
        .expect("the server task reports binding")?;
    Ok(Harness {
        spec: local.to_string(),
        local,
        stop: Some(stop),
        done: Some(done),
    })
}

/// The server task: binds on `runtime`, reports the bound address (or the error), serves
/// until `stopped` completes and reports what `serve_until` returned.
async fn bind_and_serve<R: Runtime, F: Filter>(
    runtime: R,
    spec: String,
    config: ServerConfig,
    filter: F,
    bound: oneshot::Sender<io::Result<SocketSpec>>,
    stopped: oneshot::Receiver<()>,
    done: oneshot::Sender<io::Result<()>>,
) {
    let server = match Server::bind_on(runtime, &spec, config).await {
        Ok(server) => server,
        Err(error) => {
            let _ = bound.send(Err(error));
            return;
        }
    };
    let _ = bound.send(Ok(server.local_spec().clone()));
    let _ = done.send(server.serve_until(filter, stopped).await);
}

impl Harness {
    /// The bound TCP address.
    pub(crate) fn addr(&self) -> SocketAddr {
        let SocketSpec::Inet(addr) = self.local else {
            panic!("bound a TCP socket");
        };
        addr
    }

    /// A negotiated client, nothing sent yet.
    pub(crate) async fn negotiated(&self, profile: Profile) -> MilterClient<MilterStream> {
        let mut client = testing::connect(&self.spec, profile)
            .await
            .expect("connect to the server");
        client.negotiate().await.expect("negotiate");
        client
    }

    /// A client past CONNECT and HELO, both answered with continue.
    pub(crate) async fn client(&self, profile: Profile) -> MilterClient<MilterStream> {
        let mut client = self.negotiated(profile).await;
        greet(&mut client).await;
        client
    }

    /// A tapped client (every packet from the filter recorded), negotiated only.
    pub(crate) async fn tapped(&self, profile: Profile) -> (MilterClient<Tap<TcpStream>>, TapLog) {
        let stream = within("connect", TcpStream::connect(self.addr()))
            .await
            .expect("connect to the server");
        stream.set_nodelay(true).expect("nodelay");
        let (tap, log) = Tap::new(stream);
        let mut client = MilterClient::new(tap, profile);
        client.negotiate().await.expect("negotiate");
        (client, log)
    }

    /// Starts the shutdown (the future given to `serve_until` completes).
    pub(crate) fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Starts the shutdown and waits until `serve_until` has returned.
    pub(crate) async fn stop(mut self) -> io::Result<()> {
        self.shutdown();
        self.stopped().await
    }

    /// Waits until `serve_until` has returned (after [`Harness::shutdown`]).
    pub(crate) async fn stopped(&mut self) -> io::Result<()> {
        let done = self.done.take().expect("not awaited yet");
        within("serve_until to return", done)
            .await
            .expect("the server task ends by returning, not by panicking")
    }
}

/// CONNECT and HELO as the SMTP client `client.example.com [192.0.2.1]:50000`.
pub(crate) async fn greet<S>(client: &mut MilterClient<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let reply = client
        .connect("client.example.com", Family::Inet, 50000, "192.0.2.1")
        .await
        .expect("connect");
    assert!(reply.is_continue(), "connect answered {reply:?}");
    let reply = client.helo("client.example.com").await.expect("helo");
    assert!(reply.is_continue(), "helo answered {reply:?}");
}

pub(crate) const CLIENT_HOST: &str = "client.example.com";
pub(crate) const CLIENT_ADDR: &str = "192.0.2.1";

/// One sender, two recipients.
pub(crate) fn envelope() -> Envelope {
    Envelope::new(
        "<alice@example.com>",
        &["<bob@example.net>", "<carol@example.net>"],
    )
}

/// A small message: three headers, two body lines.
pub(crate) const MESSAGE: &[u8] =
    b"From: Alice <alice@example.com>\r\nTo: bob@example.net\r\nSubject: hello\r\n\r\nline one\r\nline two\r\n";

/// Whether a reply means the message went through (continue at end of message is accept).
pub(crate) fn passed(reply: &Reply) -> bool {
    matches!(reply, Reply::Continue | Reply::Accept)
}

// ===== the tap =====

/// Every packet the filter sent on a tapped connection, plus a way to close it from outside.
#[derive(Clone)]
pub(crate) struct TapLog {
    inner: Arc<Mutex<TapState>>,
    stream: TcpStream,
}

struct TapState {
    decoder: FrameDecoder,
    frames: Vec<(u8, Vec<u8>)>,
    progress: Option<Sender<()>>,
}

impl TapLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, TapState> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every packet received since the last call, as (code byte, payload).
    pub(crate) fn take(&self) -> Vec<(u8, Vec<u8>)> {
        std::mem::take(&mut self.lock().frames)
    }

    /// A channel that gets one message per PROGRESS packet from now on.
    pub(crate) fn progress(&self) -> Receiver<()> {
        let (tx, rx) = unbounded();
        self.lock().progress = Some(tx);
        rx
    }

    /// Closes the connection in both directions under the client's feet (the filter sees
    /// end of stream).
    pub(crate) fn close(&self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// A stream that records what it reads, packet by packet.
pub(crate) struct Tap<S> {
    inner: S,
    log: TapLog,
}

impl Tap<TcpStream> {
    fn new(stream: TcpStream) -> (Self, TapLog) {
        let log = TapLog {
            inner: Arc::new(Mutex::new(TapState {
                decoder: FrameDecoder::new(),
                frames: Vec::new(),
                progress: None,
            })),
            stream: stream.clone(),
        };
        (
            Self {
                inner: stream,
                log: log.clone(),
            },
            log,
        )
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tap<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(n)) = &poll {
            let mut state = self.log.lock();
            state.decoder.push(&buf[..*n]);
            while let Ok(Some(frame)) = state.decoder.decode() {
                if frame.kind == b'p' {
                    if let Some(tx) = &state.progress {
                        let _ = tx.try_send(());
                    }
                }
                state.frames.push((frame.kind, frame.payload.to_vec()));
            }
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tap<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// A frame as (code byte, payload) for comparisons.
pub(crate) fn frame(kind: u8, payload: &[u8]) -> (u8, Vec<u8>) {
    (kind, payload.to_vec())
}

/// The modification `Session::add_header` sends: ADDHEADER on Postfix, INSHEADER past the
/// end on Sendmail (whose ADDHEADER would land above an existing header of that name).
pub(crate) fn appended(profile: &Profile, name: &str, value: &str) -> Modification {
    match profile.kind {
        async_milter::testing::MtaKind::Postfix => Modification::AddHeader {
            name: name.into(),
            value: value.into(),
        },
        _ => Modification::InsertHeader {
            index: 0x7fff_fffe,
            name: name.into(),
            value: value.into(),
        },
    }
}
