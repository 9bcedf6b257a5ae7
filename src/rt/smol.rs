//! The smol adapter.

use std::future::Future;
use std::io;
use std::net::TcpStream;
use std::os::unix::net::{UnixListener, UnixStream};
use std::pin::Pin;
use std::time::Instant;

use smol::Async;

use super::io::no_delay;
use super::{Either, Runtime, Sleep, StdListener, Timer};

/// Runs the server on smol (feature `smol`): connections are spawned on smol's global
/// executor, so drive the server with `smol::block_on`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Smol;

impl Timer for Smol {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep {
        let timer = smol::Timer::at(deadline);
        Box::pin(async move {
            timer.await;
        })
    }
}

impl Runtime for Smol {
    type Listener = Either<Async<std::net::TcpListener>, Async<UnixListener>>;
    type Stream = Either<Async<TcpStream>, Async<UnixStream>>;

    fn listen(&self, listener: StdListener) -> io::Result<Self::Listener> {
        listener.set_nonblocking()?;
        Ok(match listener {
            StdListener::Tcp(listener) => Either::Left(Async::new(listener)?),
            StdListener::Unix(listener) => Either::Right(Async::new(listener)?),
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
                    no_delay(stream.get_ref().set_nodelay(true));
                    Either::Left(stream)
                }
                Either::Right(listener) => Either::Right(listener.accept().await?.0),
            })
        })
    }

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        smol::spawn(task).detach();
    }
}
