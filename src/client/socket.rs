//! Connecting to a filter by socket spec, as an MTA's configuration names it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_std::net::TcpStream;
use async_std::os::unix::net::UnixStream;
use futures::io::{AsyncRead, AsyncWrite};

use super::connection::MilterClient;
use super::error::ClientError;
use super::profile::Profile;
use crate::server::SocketSpec;

/// Connects to a filter listening on `spec` and returns a client, not yet negotiated.
///
/// `spec` takes the forms [`Server::bind`](crate::server::Server::bind) accepts (see
/// [`SocketSpec`]): `inet:PORT@HOST`, `inet6:PORT@HOST`, `inet:HOST:PORT`, `unix:/path`,
/// `local:/path`, a bare `/path`, and `HOST:PORT` or `[V6]:PORT`, with the host an IP address
/// or `localhost`. TCP connections get `TCP_NODELAY`. Connecting fails with
/// [`ClientError::InvalidSpec`], [`ClientError::ConnectTimeout`] after
/// [`Profile::timeout`], or [`ClientError::Io`].
///
/// ```no_run
/// use async_milter::client::{Profile, connect};
///
/// # async_std::task::block_on(async {
/// let mut client = connect("inet:7357@127.0.0.1", Profile::postfix()).await?;
/// client.negotiate().await?;
/// let mut client = connect("unix:/run/milter/filter.sock", Profile::sendmail()).await?;
/// client.negotiate().await?;
/// # Ok::<(), async_milter::client::ClientError>(())
/// # });
/// ```
pub async fn connect(
    spec: &str,
    profile: Profile,
) -> Result<MilterClient<MilterStream>, ClientError> {
    let spec: SocketSpec = spec.parse()?;
    let limit = profile.timeout;
    let stream = async_std::future::timeout(limit, async {
        match spec {
            SocketSpec::Inet(addr) => {
                let stream = TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                Ok::<_, io::Error>(Inner::Tcp(stream))
            }
            SocketSpec::Unix(path) => Ok(Inner::Unix(UnixStream::connect(path).await?)),
            SocketSpec::Systemd(_) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a systemd socket is the filter's to listen on, not an address to connect to",
            )),
        }
    })
    .await
    .map_err(|_| ClientError::ConnectTimeout(limit))??;
    Ok(MilterClient::new(MilterStream(stream), profile))
}

/// A connected TCP or unix-domain stream to a filter, as [`connect`] opens it.
#[derive(Debug)]
pub struct MilterStream(Inner);

#[derive(Debug)]
enum Inner {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl AsyncRead for MilterStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().0 {
            Inner::Tcp(stream) => Pin::new(stream).poll_read(cx, buf),
            Inner::Unix(stream) => Pin::new(stream).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MilterStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().0 {
            Inner::Tcp(stream) => Pin::new(stream).poll_write(cx, buf),
            Inner::Unix(stream) => Pin::new(stream).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            Inner::Tcp(stream) => Pin::new(stream).poll_flush(cx),
            Inner::Unix(stream) => Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            Inner::Tcp(stream) => Pin::new(stream).poll_close(cx),
            Inner::Unix(stream) => Pin::new(stream).poll_close(cx),
        }
    }
}
