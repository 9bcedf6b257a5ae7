//! Which heap allocations are the library's own and which the runtime's.
//!
//! [`Attributed`] wraps a [`Runtime`]: every task the server spawns, and the server's accept
//! loop, count as library code while they are polled, except for the calls they make through
//! the runtime interface (socket reads and writes, accepting, spawning, making a sleep),
//! which count as the runtime's. Allocations are read from the process-wide counters around
//! each stretch of library code, so one made meanwhile on another thread (async-std's
//! reactor thread) would be counted with the library; the benchmark pins the server to one
//! core, where such overlaps are rare. A sleep's own polls are not wrapped (that would need
//! a second box per sleep) and count with the library; the driver makes one read timer per
//! connection.
//!
//! The wrapper's own boxes (one per accept) are counted apart so they can be left out.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use async_milter::rt::{Runtime, Sleep, StdListener, Timer};
use futures::io::{AsyncRead, AsyncWrite, IoSlice, IoSliceMut};

/// Allocations made in library code.
static LIBRARY: AtomicU64 = AtomicU64::new(0);
/// Allocations made by this wrapper itself.
static HARNESS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// While library code runs on this thread: the allocation counter when it (re)started.
    static LIBRARY_SINCE: Cell<Option<u64>> = const { Cell::new(None) };
}

fn allocations() -> u64 {
    crate::GLOBAL.stats().allocations as u64
}

/// Runs `f` as library code: allocations in it count as the library's.
fn library<T>(f: impl FnOnce() -> T) -> T {
    let outer = LIBRARY_SINCE.with(|since| since.replace(Some(allocations())));
    if let Some(start) = outer {
        // Nested: close the outer stretch first (it restarts below).
        LIBRARY.fetch_add(allocations() - start, Ordering::Relaxed);
    }
    let out = f();
    let now = allocations();
    LIBRARY_SINCE.with(|since| {
        if let Some(start) = since.get() {
            LIBRARY.fetch_add(now - start, Ordering::Relaxed);
        }
        since.set(outer.map(|_| now));
    });
    out
}

/// Runs `f` as runtime code: allocations in it do not count as the library's.
fn runtime<T>(f: impl FnOnce() -> T) -> T {
    let Some(start) = LIBRARY_SINCE.with(Cell::get) else {
        return f();
    };
    LIBRARY.fetch_add(allocations() - start, Ordering::Relaxed);
    LIBRARY_SINCE.with(|since| since.set(None));
    let out = f();
    LIBRARY_SINCE.with(|since| since.set(Some(allocations())));
    out
}

/// The counters for the stats line: library allocations, the wrapper's own.
pub(crate) fn counters() -> (u64, u64) {
    (
        LIBRARY.load(Ordering::Relaxed),
        HARNESS.load(Ordering::Relaxed),
    )
}

/// A runtime whose spawned tasks are polled as library code.
#[derive(Clone)]
pub(crate) struct Attributed<R>(pub(crate) R);

/// Awaits `future` polled as library code (a spawned connection, the accept loop).
pub(crate) async fn as_library<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| library(|| future.as_mut().poll(cx))).await
}

/// A runtime future (an accept) polled as runtime code inside library code.
struct RuntimeFuture<F: ?Sized>(Pin<Box<F>>);

impl<F: Future + ?Sized> Future for RuntimeFuture<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        runtime(|| self.0.as_mut().poll(cx))
    }
}

/// An accepted connection whose reads and writes count as the runtime's.
pub(crate) struct Stream<S>(S);

impl<S: AsyncRead + Unpin> AsyncRead for Stream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        runtime(|| Pin::new(&mut self.0).poll_read(cx, buf))
    }

    fn poll_read_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        runtime(|| Pin::new(&mut self.0).poll_read_vectored(cx, bufs))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Stream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        runtime(|| Pin::new(&mut self.0).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        runtime(|| Pin::new(&mut self.0).poll_write_vectored(cx, bufs))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        runtime(|| Pin::new(&mut self.0).poll_flush(cx))
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        runtime(|| Pin::new(&mut self.0).poll_close(cx))
    }
}

impl<R: Timer> Timer for Attributed<R> {
    fn now(&self) -> Instant {
        self.0.now()
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep {
        runtime(|| self.0.sleep_until(deadline))
    }
}

impl<R: Runtime> Runtime for Attributed<R> {
    type Listener = R::Listener;
    type Stream = Stream<R::Stream>;

    fn listen(&self, listener: StdListener) -> io::Result<Self::Listener> {
        self.0.listen(listener)
    }

    fn accept<'a>(
        &self,
        listener: &'a Self::Listener,
    ) -> Pin<Box<dyn Future<Output = io::Result<Self::Stream>> + Send + 'a>> {
        let inner = runtime(|| self.0.accept(listener));
        let before = allocations();
        let accept = Box::pin(async move { RuntimeFuture(inner).await.map(Stream) });
        HARNESS.fetch_add(allocations() - before, Ordering::Relaxed);
        accept
    }

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        runtime(|| self.0.spawn(as_library(task)));
    }
}
