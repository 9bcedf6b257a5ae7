//! The runtime edge: a timer, spawning and accepting, with one adapter per runtime.
//!
//! Everything below this module (the protocol, the sessions, the connection core) is
//! runtime-neutral: it takes time from a [`Timer`] and works over any `futures::io` stream.
//! The [`Server`](crate::server::Server) takes a [`Runtime`] for spawning connections and
//! accepting on listeners. Adapters sit behind cargo features:
//!
//! | feature | adapter | notes |
//! |---|---|---|
//! | `async-std` (default) | [`AsyncStd`] | the runtime the product is specified on |
//! | `tokio` | [`Tokio`] | must run inside a tokio runtime (`#[tokio::main]`) |
//! | `smol` | [`Smol`] | spawns on smol's global executor |
//!
//! [`DefaultRuntime`] is the first of these that is enabled, in that order; it is what
//! [`Server::bind`](crate::server::Server::bind) uses. [`ManualClock`] is a timer that only
//! moves when told to, for deterministic tests of timeouts.

#[cfg(feature = "async-std")]
mod async_std;
mod io;
mod manual;
#[cfg(feature = "smol")]
mod smol;
#[cfg(feature = "tokio")]
mod tokio;

use std::future::Future;
use std::io as stdio;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures::io::{AsyncRead, AsyncWrite};

#[cfg(feature = "async-std")]
#[cfg_attr(docsrs, doc(cfg(feature = "async-std")))]
pub use self::async_std::AsyncStd;
#[cfg(feature = "smol")]
#[cfg_attr(docsrs, doc(cfg(feature = "smol")))]
pub use self::smol::Smol;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use self::tokio::{Tokio, TokioIo};
pub use io::{Either, StdListener};
pub use manual::ManualClock;

/// A future that completes at a deadline.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A source of time: the current instant and sleeps until a deadline.
///
/// The connection core never reads the clock itself; every instant comes from here, so a
/// [`ManualClock`] makes timeouts deterministic in tests.
pub trait Timer: Send + Sync + 'static {
    /// The current instant on this timer's clock.
    fn now(&self) -> Instant;

    /// A future that completes once the clock reaches `deadline`.
    fn sleep_until(&self, deadline: Instant) -> Sleep;

    /// A future that completes after `duration` on this timer's clock.
    fn sleep(&self, duration: Duration) -> Sleep {
        self.sleep_until(self.now() + duration)
    }
}

impl<T: Timer + ?Sized> Timer for std::sync::Arc<T> {
    fn now(&self) -> Instant {
        (**self).now()
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep {
        (**self).sleep_until(deadline)
    }
}

/// A connection accepted by a [`Runtime`]: any `futures::io` stream.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

/// What the server needs from an async runtime: a timer, spawning, and accepting.
///
/// Listeners are bound (or inherited) as standard-library sockets and handed over with
/// [`Runtime::listen`], so binding, socket activation and passed-in listeners work the
/// same on every runtime.
pub trait Runtime: Timer + Clone {
    /// A listener registered with the runtime.
    type Listener: Send + Sync + 'static;
    /// An accepted connection.
    type Stream: Stream;

    /// Registers a bound standard-library listener (switched to non-blocking mode here).
    fn listen(&self, listener: StdListener) -> stdio::Result<Self::Listener>;

    /// Accepts the next connection.
    fn accept<'a>(
        &self,
        listener: &'a Self::Listener,
    ) -> Pin<Box<dyn Future<Output = stdio::Result<Self::Stream>> + Send + 'a>>;

    /// Runs `task` in the background.
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static);
}

/// The runtime [`Server::bind`](crate::server::Server::bind) uses: async-std when its
/// feature is on, else tokio, else smol.
#[cfg(feature = "async-std")]
pub type DefaultRuntime = AsyncStd;
/// The runtime [`Server::bind`](crate::server::Server::bind) uses: async-std when its
/// feature is on, else tokio, else smol.
#[cfg(all(not(feature = "async-std"), feature = "tokio"))]
pub type DefaultRuntime = Tokio;
/// The runtime [`Server::bind`](crate::server::Server::bind) uses: async-std when its
/// feature is on, else tokio, else smol.
#[cfg(all(not(feature = "async-std"), not(feature = "tokio"), feature = "smol"))]
pub type DefaultRuntime = Smol;
