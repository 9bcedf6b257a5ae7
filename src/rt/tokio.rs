//! The tokio adapter.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::io::{AsyncRead, AsyncWrite};
use tokio::io::ReadBuf;
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use super::io::no_delay;
use super::{Either, Runtime, Sleep, StdListener, Timer};

/// Runs the server on tokio (feature `tokio`). Call it from inside a tokio runtime
/// (`#[tokio::main]`, multi-thread or current-thread); it needs tokio's `net` and `time`
/// drivers, which the feature turns on.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tokio;

impl Timer for Tokio {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep {
        Box::pin(tokio::time::sleep_until(deadline.into()))
    }
}

impl Runtime for Tokio {
    type Listener = Either<TcpListener, UnixListener>;
    type Stream = Either<TokioIo<TcpStream>, TokioIo<UnixStream>>;

    fn listen(&self, listener: StdListener) -> io::Result<Self::Listener> {
        listener.set_nonblocking()?;
        Ok(match listener {
            StdListener::Tcp(listener) => Either::Left(TcpListener::from_std(listener)?),
            StdListener::Unix(listener) => Either::Right(UnixListener::from_std(listener)?),
        })
    }

    fn accept<'a>(
        &self,
        listener: &'a Self::Listener,
    ) -> Pin<Box<dyn Future<Output = io::Result<Self::Stream>> + Send + 'a>> {
        Box::pin(async move {
            Ok(match listener {
                Either::Left(listener) => {
                    let (stream, _) = listener.accept().await?;
                    no_delay(stream.set_nodelay(true));
                    Either::Left(TokioIo(stream))
                }
                Either::Right(listener) => Either::Right(TokioIo(listener.accept().await?.0)),
            })
        })
    }

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        tokio::spawn(task);
    }
}

/// A tokio stream seen through the `futures::io` traits the connection core reads; wrap
/// a stream from your own accept loop in it to serve it with
/// [`connection::Builder`](crate::connection::Builder).
#[derive(Debug)]
pub struct TokioIo<T>(T);

impl<T> TokioIo<T> {
    /// Wraps a tokio stream.
    pub fn new(stream: T) -> Self {
        Self(stream)
    }

    /// The wrapped stream.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: tokio::io::AsyncRead + Unpin> AsyncRead for TokioIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut buf = ReadBuf::new(buf);
        match Pin::new(&mut self.0).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(buf.filled().len())),
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> AsyncWrite for TokioIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
