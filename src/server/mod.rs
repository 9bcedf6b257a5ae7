//! The server: listens on a socket spec and serves each MTA connection as its own task.
//!
//! ```no_run
//! use async_milter::{server::Server, Session, Verdict, Error};
//!
//! async fn accept_all(_session: &mut Session) -> Result<Verdict, Error> {
//!     Ok(Verdict::Accept)
//! }
//!
//! # async_std::task::block_on(async {
//! Server::bind("inet:7357@127.0.0.1").await?.serve(accept_all).await
//! # })?;
//! # Ok::<(), std::io::Error>(())
//! ```

#[cfg(feature = "systemd")]
#[cfg_attr(docsrs, doc(cfg(feature = "systemd")))]
pub mod activation;
mod config;
mod listener;
#[cfg(feature = "signals")]
mod signals;
mod spec;

pub use config::{DEFAULT_MAX_CONNECTIONS, DEFAULT_SHUTDOWN_GRACE, ServerConfig};
pub use listener::Server;
#[cfg(feature = "signals")]
#[cfg_attr(docsrs, doc(cfg(feature = "signals")))]
pub use signals::termination_signal;
pub use spec::{SocketSpec, SpecError};
