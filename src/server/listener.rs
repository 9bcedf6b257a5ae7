//! Binding, accepting, limits and graceful shutdown, on any [`Runtime`].

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use futures::channel::mpsc;
use futures::future::{AbortHandle, Either, FutureExt, abortable, select};
use log::{error, info, warn};

use super::bind;
use super::config::ServerConfig;
use super::spec::{SocketSpec, SpecError};
use crate::connection::{Builder, ShutdownHandle, panic_message};
use crate::metrics;
use crate::rt::{Runtime, StdListener};
use crate::session::Filter;

/// Pause after a failed accept (out of file descriptors, say), so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// A bound milter socket, ready to serve a filter on runtime `R`.
///
/// [`Server::bind`] uses the [default runtime](crate::rt::DefaultRuntime); [`Server::bind_on`]
/// and [`Server::from_listener`] take one explicitly.
pub struct Server<R: Runtime> {
    runtime: R,
    listener: R::Listener,
    spec: SocketSpec,
    /// A unix socket file this server created, removed again at shutdown.
    owned_path: Option<std::path::PathBuf>,
    config: ServerConfig,
}

impl<R: Runtime> std::fmt::Debug for Server<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("spec", &self.spec)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn invalid_spec(error: SpecError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, error)
}

#[cfg(any(feature = "async-std", feature = "tokio", feature = "smol"))]
impl Server<crate::rt::DefaultRuntime> {
    /// Binds `spec` (`inet:7357@127.0.0.1`, `unix:/run/milter.sock`, `systemd`, …; see
    /// [`SocketSpec`]) with default settings, on the [default runtime](crate::rt::DefaultRuntime).
    pub async fn bind(spec: &str) -> io::Result<Self> {
        Self::bind_with(spec, ServerConfig::default()).await
    }

    /// Binds `spec` with `config`, on the default runtime.
    pub async fn bind_with(spec: &str, config: ServerConfig) -> io::Result<Self> {
        Self::bind_on(crate::rt::DefaultRuntime::default(), spec, config).await
    }
}

impl<R: Runtime> Server<R> {
    /// Binds `spec` with `config` on `runtime`.
    ///
    /// The socket is bound with `config.listen_backlog`. A unix socket file left over from
    /// an earlier run is removed first (only if it is a socket); the new one gets
    /// `config.unix_mode` and is removed again at shutdown.
    ///
    /// `systemd` and `systemd:NAME` bind nothing: they take a socket systemd passed (see
    /// [socket activation](super#socket-activation)). When there is none to take, the error
    /// wraps an [`ActivationError`](super::activation::ActivationError) (kind `NotFound`
    /// when the process was not socket-activated at all); without the `systemd` feature it
    /// is of kind `Unsupported`.
    // Async although nothing here waits: tokio registers a listener only from inside its
    // runtime, which awaiting this guarantees.
    #[allow(clippy::unused_async)]
    pub async fn bind_on(runtime: R, spec: &str, config: ServerConfig) -> io::Result<Self> {
        let spec: SocketSpec = spec.parse().map_err(invalid_spec)?;
        let (listener, owned_path) = match &spec {
            SocketSpec::Inet(addr) => (
                StdListener::Tcp(bind::tcp(*addr, config.listen_backlog)?),
                None,
            ),
            // Passed down, so not ours to remove at shutdown.
            SocketSpec::Systemd(name) => (take_passed(name.as_deref())?, None),
            SocketSpec::Unix(path) => {
                remove_stale_socket(path)?;
                let listener = bind::unix(path, config.listen_backlog)?;
                if let Some(mode) = config.unix_mode {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
                }
                (StdListener::Unix(listener), Some(path.clone()))
            }
        };
        let mut server = Self::from_listener(runtime, listener, config)?;
        server.owned_path = owned_path;
        Ok(server)
    }

    /// Serves on a listener bound elsewhere: by you, or passed down by a service manager.
    /// A unix socket file is left in place at shutdown, since this server did not create it.
    /// The listener keeps the backlog it was bound with (`std::net::TcpListener::bind`
    /// gives 128; bind with `socket2` to choose), not `config.listen_backlog`.
    pub fn from_listener(
        runtime: R,
        listener: impl Into<StdListener>,
        config: ServerConfig,
    ) -> io::Result<Self> {
        let listener = listener.into();
        let spec = match &listener {
            StdListener::Tcp(listener) => SocketSpec::Inet(listener.local_addr()?),
            StdListener::Unix(listener) => SocketSpec::Unix(
                listener
                    .local_addr()?
                    .as_pathname()
                    .map(std::path::Path::to_path_buf)
                    .unwrap_or_default(),
            ),
        };
        let listener = runtime.listen(listener)?;
        info!("listening on {spec}");
        Ok(Self {
            runtime,
            listener,
            spec,
            owned_path: None,
            config,
        })
    }

    /// The bound address (with the real port when bound to port 0).
    #[must_use]
    pub fn local_spec(&self) -> &SocketSpec {
        &self.spec
    }

    /// Serves `filter` (a plain `async fn(&mut Session) -> Result<Verdict, E>` or any
    /// [`Filter`]) for as long as the process runs (accept errors are logged and retried);
    /// see [`Server::serve_until`] for a graceful stop.
    pub async fn serve<F: Filter>(self, filter: F) -> io::Result<()> {
        self.serve_until(filter, std::future::pending::<()>()).await
    }

    /// Serves `filter` until `shutdown` completes, then stops accepting, lets connections
    /// finish their message for up to `shutdown_grace`, closes the rest and returns.
    pub async fn serve_until<F, S>(self, filter: F, shutdown: S) -> io::Result<()>
    where
        F: Filter,
        S: Future,
    {
        let Self {
            runtime,
            listener,
            spec,
            owned_path,
            config,
        } = self;
        let members = filter.into_members();
        // Needs that negotiation cannot carry would fail every connection: refuse them now.
        for member in &members {
            member.filter.needs().check().map_err(|error| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("the filter's needs cannot be negotiated: {error}"),
                )
            })?;
        }
        let stop = ShutdownHandle::new();
        let builder = Builder::new(runtime.clone()).config(config.connection.clone());
        let registry = Registry::default();
        // Every connection task holds a sender; the receiver ends when the last one is gone.
        let (done_tx, mut done_rx) = mpsc::channel::<()>(0);
        let next_id = AtomicU64::new(1);

        let mut shutdown = std::pin::pin!(shutdown.fuse());
        loop {
            let accepted = match select(runtime.accept(&listener), shutdown.as_mut()).await {
                Either::Left((accepted, _)) => accepted,
                Either::Right(_) => break,
            };
            let stream = match accepted {
                Ok(stream) => stream,
                Err(error) => {
                    error!("accept on {spec} failed: {error}");
                    runtime.sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            };
            let id = next_id.fetch_add(1, Ordering::Relaxed);
            if registry.len() >= config.max_connections {
                warn!(
                    "connection {id}: refused, {} connections already (max_connections)",
                    config.max_connections
                );
                drop(stream);
                metrics::connection_refused();
                continue;
            }
            let connection = builder.serve_members(stream, members.clone(), stop.clone(), id);
            let (serve, handle) = abortable(connection);
            registry.insert(id, handle);
            let registry = registry.clone();
            let done = done_tx.clone();
            runtime.spawn(async move {
                // The slot is given back however the task ends, a panic included.
                let _slot = Slot { registry, id };
                // Errors are logged by the connection with its id; a panic (a bug, since
                // filter panics are caught where the filter runs) ends this connection only.
                if let Err(panic) = AssertUnwindSafe(serve).catch_unwind().await {
                    error!("connection {id}: panicked: {}", panic_message(&*panic));
                }
                drop(done);
            });
        }

        info!(
            "shutting down {spec}: no new connections, {} in flight",
            registry.len()
        );
        drop(listener);
        if let Some(path) = &owned_path {
            let _ = std::fs::remove_file(path);
        }
        stop.shutdown();
        drop(done_tx);
        let grace = runtime.sleep(config.shutdown_grace);
        if let Either::Right(_) = select(done_rx.next(), grace).await {
            warn!(
                "closing {} connections still busy after the grace period",
                registry.len()
            );
            registry.abort_all();
            let _ = done_rx.next().await;
        }
        info!("stopped {spec}");
        Ok(())
    }
}

/// The socket systemd passed for the spec `systemd` or `systemd:NAME`.
#[cfg(feature = "systemd")]
fn take_passed(name: Option<&str>) -> io::Result<StdListener> {
    Ok(super::activation::take(name)?)
}

/// Without the `systemd` feature there is nothing to take the passed sockets with.
#[cfg(not(feature = "systemd"))]
fn take_passed(_name: Option<&str>) -> io::Result<StdListener> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "socket activation (the systemd socket spec) needs the `systemd` feature",
    ))
}

/// Removes a socket file left by an earlier run; refuses to remove anything else.
fn remove_stale_socket(path: &std::path::Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        )),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    }
}

/// Live connections, so the server can count them and abort them at the deadline.
#[derive(Clone, Default)]
struct Registry(Arc<Mutex<HashMap<u64, AbortHandle>>>);

/// A connection's place in the registry, given back when dropped.
struct Slot {
    registry: Registry,
    id: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.registry.remove(self.id);
    }
}

impl Registry {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<u64, AbortHandle>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn len(&self) -> usize {
        self.map().len()
    }

    fn insert(&self, id: u64, handle: AbortHandle) {
        self.map().insert(id, handle);
    }

    fn remove(&self, id: u64) {
        self.map().remove(&id);
    }

    fn abort_all(&self) {
        for handle in self.map().values() {
            handle.abort();
        }
    }
}
