//! Server settings.

use std::time::Duration;

use crate::connection::ConnectionConfig;

/// Default limit on simultaneous connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16_384;

/// Default listen backlog: Linux's default `net.core.somaxconn` since 5.4, room for every
/// smtpd process of a busy MTA connecting at once.
pub const DEFAULT_LISTEN_BACKLOG: u32 = 4096;

/// Default time connections get to finish their message at shutdown.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Settings for a [`Server`](super::Server).
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Settings every connection gets (timeouts, frame size, the reply for failing filters).
    pub connection: ConnectionConfig,
    /// Most connections served at once. A connection beyond it is accepted and closed at
    /// once with a warning, so the MTA applies its default action for the milter without
    /// waiting for a connect timeout.
    pub max_connections: usize,
    /// How many connections the kernel completes and holds for the server before it
    /// accepts them (the `listen(2)` backlog) on the sockets [`Server::bind`] binds. When
    /// it is full, the kernel drops new connection attempts and the MTA's retry comes a
    /// second later, so it should cover every smtpd process that may connect at once
    /// (Postfix's `default_process_limit` is 100; busy sites run several hundred). The
    /// kernel caps it at `net.core.somaxconn` (`sysctl net.core.somaxconn`: 4096 by
    /// default since Linux 5.4, 128 before). Sockets passed by systemd keep the unit's
    /// `Backlog=`, and listeners given to [`Server::from_listener`] keep theirs.
    ///
    /// [`Server::bind`]: super::Server::bind
    /// [`Server::from_listener`]: super::Server::from_listener
    pub listen_backlog: u32,
    /// Permissions of a unix socket file (`0o660`, say); `None` keeps what the umask gives.
    pub unix_mode: Option<u32>,
    /// How long connections may take to finish their message after shutdown begins.
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            connection: ConnectionConfig::default(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            listen_backlog: DEFAULT_LISTEN_BACKLOG,
            unix_mode: None,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }
}
