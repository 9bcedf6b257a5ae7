//! Binding listening sockets with a chosen listen backlog.
//!
//! The standard library's `TcpListener::bind` always asks for a backlog of 128 and offers no
//! way to change it. When an MTA's smtpd processes connect at once (after a restart or a
//! lull), connections beyond the backlog have their SYN dropped by the kernel and wait for
//! the client's retransmission, a second later; so the server binds its sockets itself.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::Path;

use log::info;
use socket2::{Domain, SockAddr, Socket, Type};

/// Binds a TCP listener on `addr` as `TcpListener::bind` does (`SO_REUSEADDR`,
/// close-on-exec), with room for `backlog` connections waiting to be accepted.
pub(super) fn tcp(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    // A restarted filter can bind again while connections of the old one are in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    listen(&socket, backlog)?;
    Ok(socket.into())
}

/// Binds a unix-domain stream listener at `path`, with room for `backlog` connections
/// waiting to be accepted.
pub(super) fn unix(path: &Path, backlog: u32) -> io::Result<UnixListener> {
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.bind(&SockAddr::unix(path)?)?;
    listen(&socket, backlog)?;
    Ok(UnixListener::from(OwnedFd::from(socket)))
}

/// Listens, and says so when the kernel will cap the backlog: an admin raising it wonders
/// why bursts still wait.
fn listen(socket: &Socket, backlog: u32) -> io::Result<()> {
    // `listen(2)` takes an `int`; the kernel caps any value at `net.core.somaxconn`.
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    if let Some(cap) = somaxconn().filter(|&cap| cap < backlog) {
        info!("listen backlog {backlog} capped at {cap} by the kernel (sysctl net.core.somaxconn)");
    }
    Ok(())
}

/// The kernel's cap on listen backlogs, where `/proc` shows it (Linux).
fn somaxconn() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()?
        .trim()
        .parse()
        .ok()
}
