//! Serving one connection directly: a builder with documented defaults, and the
//! connection future with its graceful-shutdown handle.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::io::{AsyncRead, AsyncWrite};
use log::{info, warn};

use super::config::ConnectionConfig;
use super::driver::Driver;
use super::error::ConnectionError;
use super::shutdown::ShutdownHandle;
use crate::metrics;
use crate::rt::Timer;
use crate::session::{Filter, Member, Verdict};

/// Serves one MTA connection over a stream of your own (your own accept loop, an
/// in-memory pipe); [`Server`](crate::server::Server) uses the same path for every
/// connection it accepts.
///
/// The timer is required, so a connection can never run without its timeouts by
/// accident; pass the runtime's ([`AsyncStd`](crate::rt::AsyncStd), [`Tokio`](crate::rt::Tokio),
/// [`Smol`](crate::rt::Smol)) or a [`ManualClock`](crate::rt::ManualClock) in tests.
///
/// ```no_run
/// # #[cfg(feature = "async-std")]
/// # async_std::task::block_on(async {
/// use async_milter::connection::Builder;
/// use async_milter::rt::AsyncStd;
/// use async_milter::{Error, Session, Verdict};
///
/// async fn accept_all(_session: &mut Session) -> Result<Verdict, Error> {
///     Ok(Verdict::Accept)
/// }
///
/// let listener = async_std::net::TcpListener::bind("127.0.0.1:7357").await?;
/// let (stream, _) = listener.accept().await?;
/// let connection = Builder::new(AsyncStd).id(1).serve(stream, accept_all);
/// let shutdown = connection.shutdown_handle(); // shutdown.shutdown() from elsewhere
/// connection.await?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # });
/// ```
#[derive(Clone)]
#[must_use]
pub struct Builder {
    timer: Arc<dyn Timer>,
    config: ConnectionConfig,
    id: u64,
}

impl Builder {
    /// A builder with the default settings of [`ConnectionConfig`] and connection id 0.
    pub fn new(timer: impl Timer) -> Self {
        Self {
            timer: Arc::new(timer),
            config: ConnectionConfig::default(),
            id: 0,
        }
    }

    /// Replaces every setting at once.
    pub fn config(mut self, config: ConnectionConfig) -> Self {
        self.config = config;
        self
    }

    /// The connection's id in log lines and [`Session::connection_id`](crate::Session::connection_id).
    pub fn id(mut self, id: u64) -> Self {
        self.id = id;
        self
    }

    /// How long the MTA may stay silent while a frame is awaited; `None`: forever.
    /// Default [`DEFAULT_READ_TIMEOUT`](super::DEFAULT_READ_TIMEOUT).
    pub fn read_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.read_timeout = timeout;
        self
    }

    /// How long a new connection may take to send its OPTNEG; `None`: the read timeout.
    /// Default [`DEFAULT_NEGOTIATION_TIMEOUT`](super::DEFAULT_NEGOTIATION_TIMEOUT).
    pub fn negotiation_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.negotiation_timeout = timeout;
        self
    }

    /// How long a reply may wait for the MTA to read it; `None`: forever.
    /// Default [`DEFAULT_WRITE_TIMEOUT`](super::DEFAULT_WRITE_TIMEOUT).
    pub fn write_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.write_timeout = timeout;
        self
    }

    /// How often PROGRESS is sent while the filter works at end of message; `None`: never.
    /// Default [`DEFAULT_PROGRESS_INTERVAL`](super::DEFAULT_PROGRESS_INTERVAL).
    pub fn progress_interval(mut self, interval: Option<Duration>) -> Self {
        self.config.progress_interval = interval;
        self
    }

    /// Largest frame accepted from the MTA. Default
    /// [`DEFAULT_MAX_FRAME_LEN`](crate::proto::DEFAULT_MAX_FRAME_LEN).
    pub fn max_frame_len(mut self, len: u32) -> Self {
        self.config.max_frame_len = len;
        self
    }

    /// The verdict a message gets when its filter fails or panics. Default tempfail.
    pub fn error_verdict(mut self, verdict: Verdict) -> Self {
        self.config.error_verdict = verdict;
        self
    }

    /// Starts serving `stream` with `filter`; await the returned [`Connection`].
    pub fn serve<S, F>(&self, stream: S, filter: F) -> Connection
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        F: Filter,
    {
        self.serve_members(
            stream,
            filter.into_members(),
            ShutdownHandle::new(),
            self.id,
        )
    }

    /// [`Builder::serve`] with the filters (shared between connections), a shutdown handle
    /// shared with others (a server's) and the connection's own id.
    pub(crate) fn serve_members<S>(
        &self,
        stream: S,
        members: Vec<Member>,
        shutdown: ShutdownHandle,
        id: u64,
    ) -> Connection
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut driver = Driver::new(
            stream,
            self.timer.clone(),
            self.config.clone(),
            id,
            shutdown.clone(),
        );
        let run = async move {
            // Counted out when the future is dropped too (aborted at a shutdown deadline).
            let _open = metrics::OpenConnection::new();
            info!("connection {id}: opened");
            let result = driver.run(members).await;
            match &result {
                Ok(()) => info!("connection {id}: closed"),
                Err(error) => {
                    metrics::connection_error(error);
                    warn!("connection {id}: closed: {error}");
                }
            }
            result
        };
        Connection {
            run: Box::pin(run),
            shutdown,
        }
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("config", &self.config)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// One connection being served: a future that completes when the MTA quits, closes the
/// stream, the connection shuts down, or an error ends it.
#[must_use = "a connection does nothing unless awaited"]
pub struct Connection {
    run: Pin<Box<dyn Future<Output = Result<(), ConnectionError>> + Send>>,
    shutdown: ShutdownHandle,
}

impl Connection {
    /// A handle that shuts this connection down gracefully: between messages it closes at
    /// once, inside one after the message's end.
    #[must_use]
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }
}

impl Future for Connection {
    type Output = Result<(), ConnectionError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.run.as_mut().poll(cx)
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("shutdown", &self.shutdown)
            .finish_non_exhaustive()
    }
}
