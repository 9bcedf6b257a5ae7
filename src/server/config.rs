//! Server settings.

use std::time::Duration;

use crate::connection::ConnectionConfig;

/// Default limit on simultaneous connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16_384;

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
            unix_mode: None,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }
}
