//! The async-std adapter.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::Instant;

use async_std::net::{TcpListener, TcpStream};
use async_std::os::unix::net::{UnixListener, UnixStream};

use super::io::no_delay;
use super::{Either, Runtime, Sleep, StdListener, Timer};

/// Runs the server on async-std (feature `async-std`, on by default).
#[derive(Clone, Copy, Debug, Default)]
pub struct AsyncStd;

impl Timer for AsyncStd {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep {
        Box::pin(async_std::task::sleep(
            deadline.saturating_duration_since(Instant::now()),
        ))
    }
}

impl Runtime for AsyncStd {
    type Listener = Either<TcpListener, UnixListener>;
    type Stream = Either<TcpStream, UnixStream>;

    fn listen(&self, listener: StdListener) -> io::Result<Self::Listener> {
        listener.set_nonblocking()?;
        Ok(match listener {
            StdListener::Tcp(listener) => Either::Left(listener.into()),
            StdListener::Unix(listener) => Either::Right(listener.into()),
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
                    Either::Left(stream)
                }
                Either::Right(listener) => Either::Right(listener.accept().await?.0),
            })
        })
    }

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        async_std::task::spawn(task);
    }
}
