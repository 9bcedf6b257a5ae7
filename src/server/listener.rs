//! Binding, accepting, limits and graceful shutdown on async-std.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_std::net::TcpListener;
use async_std::os::unix::net::UnixListener;
use async_std::task;
use futures::future::{AbortHandle, Either, FutureExt, abortable, select};
use log::{error, info, warn};

use super::config::ServerConfig;
use super::spec::{SocketSpec, SpecError};
use crate::connection::{ConnectionConfig, ShutdownSignal, Sleep, serve_connection};
use crate::session::{Filter, FilterFn, FnFilter};

/// Pause after a failed accept (out of file descriptors, say), so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// A bound milter socket, ready to serve a filter.
#[derive(Debug)]
pub struct Server {
    listener: Listener,
    spec: SocketSpec,
    config: ServerConfig,
}

#[derive(Debug)]
enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

fn invalid_spec(error: SpecError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, error)
}

impl Server {
    /// Binds `spec` (`inet:7357@127.0.0.1`, `unix:/run/milter.sock`, …) with default settings.
    pub async fn bind(spec: &str) -> io::Result<Self> {
        Self::bind_with(spec, ServerConfig::default()).await
    }

    /// Binds `spec` with `config`.
    ///
    /// A unix socket file left over from an earlier run is removed first (only if it is a
    /// socket); the new one gets `config.unix_mode` and is removed again at shutdown.
    pub async fn bind_with(spec: &str, config: ServerConfig) -> io::Result<Self> {
        let spec: SocketSpec = spec.parse().map_err(invalid_spec)?;
        let (listener, spec) = match spec {
            SocketSpec::Inet(addr) => {
                let listener = TcpListener::bind(addr).await?;
                let bound = listener.local_addr()?;
                (Listener::Tcp(listener), SocketSpec::Inet(bound))
            }
            SocketSpec::Unix(path) => {
                remove_stale_socket(&path)?;
                let listener = UnixListener::bind(&path).await?;
                if let Some(mode) = config.unix_mode {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
                }
                (Listener::Unix(listener), SocketSpec::Unix(path))
            }
        };
        info!("listening on {spec}");
        Ok(Self {
            listener,
            spec,
            config,
        })
    }

    /// The bound address (with the real port when bound to port 0).
    #[must_use]
    pub fn local_spec(&self) -> &SocketSpec {
        &self.spec
    }

    /// Serves a plain `async fn(&mut Session) -> Result<Verdict, E>` for as long as the
    /// process runs (accept errors are logged and retried); see [`Server::serve_until`] for
    /// a graceful stop.
    pub async fn serve<F>(self, function: F) -> io::Result<()>
    where
        F: for<'a> FilterFn<'a>,
    {
        self.serve_until(FnFilter::new(function), std::future::pending::<()>())
            .await
    }

    /// Serves `filter` until `shutdown` completes, then stops accepting, lets connections
    /// finish their message for up to `shutdown_grace`, closes the rest and returns.
    pub async fn serve_until<F, S>(self, filter: F, shutdown: S) -> io::Result<()>
    where
        F: Filter,
        S: Future,
    {
        let Self {
            listener,
            spec,
            config,
        } = self;
        let filter = Arc::new(filter);
        let (stop_tx, stop_rx) = futures::channel::oneshot::channel::<()>();
        let stop: ShutdownSignal = stop_rx.map(|_| ()).boxed().shared();
        let connection = ConnectionConfig {
            sleep: Some(async_std_sleep()),
            shutdown: Some(stop),
            ..config.connection.clone()
        };
        let registry = Registry::default();
        let (done_tx, done_rx) = async_std::channel::bounded::<()>(1);
        let next_id = AtomicU64::new(1);

        let mut shutdown = std::pin::pin!(shutdown.fuse());
        loop {
            let accepted = match select(std::pin::pin!(listener.accept()), shutdown.as_mut()).await
            {
                Either::Left((accepted, _)) => accepted,
                Either::Right(_) => break,
            };
            let stream = match accepted {
                Ok(stream) => stream,
                Err(error) => {
                    error!("accept on {spec} failed: {error}");
                    task::sleep(ACCEPT_ERROR_PAUSE).await;
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
                continue;
            }
            let (serve, handle) =
                abortable(serve_boxed(stream, filter.clone(), connection.clone(), id));
            registry.insert(id, handle);
            let registry = registry.clone();
            let done = done_tx.clone();
            task::spawn(async move {
                let _ = serve.await;
                registry.remove(id);
                drop(done);
            });
        }

        info!(
            "shutting down {spec}: no new connections, {} in flight",
            registry.len()
        );
        drop(listener);
        if let SocketSpec::Unix(path) = &spec {
            let _ = std::fs::remove_file(path);
        }
        let _ = stop_tx.send(());
        drop(done_tx);
        let all_done = done_rx.recv();
        if let Either::Right(_) = select(
            std::pin::pin!(all_done),
            task::sleep(config.shutdown_grace).boxed(),
        )
        .await
        {
            warn!(
                "closing {} connections still busy after the grace period",
                registry.len()
            );
            registry.abort_all();
            let _ = done_rx.recv().await;
        }
        info!("stopped {spec}");
        Ok(())
    }
}

impl Listener {
    async fn accept(&self) -> io::Result<Accepted> {
        match self {
            Self::Tcp(listener) => {
                let (stream, _) = listener.accept().await?;
                // Replies are single small writes; Nagle would hold each one back. A peer
                // that already reset is found out by the first read instead.
                if let Err(error) = stream.set_nodelay(true) {
                    log::debug!("cannot set TCP_NODELAY: {error}");
                }
                Ok(Accepted::Tcp(stream))
            }
            Self::Unix(listener) => Ok(Accepted::Unix(listener.accept().await?.0)),
        }
    }
}

enum Accepted {
    Tcp(async_std::net::TcpStream),
    Unix(async_std::os::unix::net::UnixStream),
}

async fn serve_boxed<F: Filter>(
    stream: Accepted,
    filter: Arc<F>,
    config: ConnectionConfig,
    id: u64,
) {
    // Errors are logged by the driver with the connection id.
    let _ = match stream {
        Accepted::Tcp(stream) => serve_connection(stream, filter, config, id).await,
        Accepted::Unix(stream) => serve_connection(stream, filter, config, id).await,
    };
}

/// The async-std timer, as the connection driver takes it.
pub(crate) fn async_std_sleep() -> Sleep {
    Arc::new(|duration| Box::pin(task::sleep(duration)))
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
