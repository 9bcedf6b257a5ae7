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
//!
//! # Socket activation
//!
//! With the `systemd` feature (on by default) the socket specs `systemd` and `systemd:NAME`
//! take a listening socket that systemd bound and passed down (`LISTEN_PID`, `LISTEN_FDS`,
//! `LISTEN_FDNAMES`), TCP or unix, instead of binding one. So a program that takes its spec
//! from the command line is socket-activated by starting it as `my-filter systemd`:
//! `systemd` takes the only socket passed, `systemd:NAME` the one whose
//! `FileDescriptorName=` is NAME. A process that was not socket-activated gets an error
//! wrapping [`ActivationError::NotActivated`](activation::ActivationError::NotActivated)
//! (or [`OtherProcess`](activation::ActivationError::OtherProcess)), never a panic.
//!
//! ```no_run
//! # use async_milter::{server::Server, Session, Verdict, Error};
//! # async fn accept_all(_session: &mut Session) -> Result<Verdict, Error> {
//! #     Ok(Verdict::Accept)
//! # }
//! # async_std::task::block_on(async {
//! Server::bind("systemd").await?.serve(accept_all).await
//! # })?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! [`activation::listeners`] hands over every passed socket, for several servers or any
//! other use; [`Server::from_listener`] serves on one of them, or on any listener you bound
//! yourself. A socket passed down is left in place at shutdown: it belongs to systemd.

#[cfg(feature = "systemd")]
#[cfg_attr(docsrs, doc(cfg(feature = "systemd")))]
pub mod activation;
mod bind;
mod config;
mod listener;
#[cfg(feature = "signals")]
mod signals;
mod spec;

pub use config::{
    DEFAULT_LISTEN_BACKLOG, DEFAULT_MAX_CONNECTIONS, DEFAULT_SHUTDOWN_GRACE, ServerConfig,
};
pub use listener::Server;
#[cfg(feature = "signals")]
#[cfg_attr(docsrs, doc(cfg(feature = "signals")))]
pub use signals::termination_signal;
pub use spec::{SocketSpec, SpecError};
