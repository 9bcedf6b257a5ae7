//! Listener and stream types shared by the adapters.

use std::io;
use std::os::unix::net::UnixListener;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::io::{AsyncRead, AsyncWrite};

/// A bound standard-library listener: TCP or unix domain.
///
/// Bound by [`Server::bind`](crate::server::Server::bind), inherited from systemd, or
/// bound by the user and passed in.
#[derive(Debug)]
pub enum StdListener {
    /// A TCP listener.
    Tcp(std::net::TcpListener),
    /// A unix domain stream listener.
    Unix(UnixListener),
}

impl From<std::net::TcpListener> for StdListener {
    fn from(listener: std::net::TcpListener) -> Self {
        Self::Tcp(listener)
    }
}

impl From<UnixListener> for StdListener {
    fn from(listener: UnixListener) -> Self {
        Self::Unix(listener)
    }
}

impl StdListener {
    /// Switches the socket to non-blocking mode, as every runtime expects.
    pub(crate) fn set_nonblocking(&self) -> io::Result<()> {
        match self {
            Self::Tcp(listener) => listener.set_nonblocking(true),
            Self::Unix(listener) => listener.set_nonblocking(true),
        }
    }
}

/// One of two stream types, read and written through whichever it holds: an adapter's
/// accepted TCP or unix connection.
#[derive(Debug)]
pub enum Either<A, B> {
    /// The first kind (TCP in the adapters).
    Left(A),
    /// The second kind (unix domain in the adapters).
    Right(B),
}

impl<A, B> AsyncRead for Either<A, B>
where
    A: AsyncRead + Unpin,
    B: AsyncRead + Unpin,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Left(stream) => Pin::new(stream).poll_read(cx, buf),
            Self::Right(stream) => Pin::new(stream).poll_read(cx, buf),
        }
    }
}

impl<A, B> AsyncWrite for Either<A, B>
where
    A: AsyncWrite + Unpin,
    B: AsyncWrite + Unpin,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Left(stream) => Pin::new(stream).poll_write(cx, buf),
            Self::Right(stream) => Pin::new(stream).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Left(stream) => Pin::new(stream).poll_flush(cx),
            Self::Right(stream) => Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Left(stream) => Pin::new(stream).poll_close(cx),
            Self::Right(stream) => Pin::new(stream).poll_close(cx),
        }
    }
}

/// Replies are single small writes; Nagle's algorithm would hold each one back.
pub(crate) fn no_delay(set: io::Result<()>) {
    if let Err(error) = set {
        log::debug!("cannot set TCP_NODELAY: {error}");
    }
}
