//! `ServerConfig::listen_backlog` reaches the kernel on every runtime: a server that is bound
//! but accepts nothing holds exactly that many connections waiting.
//!
//! Unix sockets show it exactly and without waiting: a non-blocking connect to a listener
//! whose queue is full fails at once with `EAGAIN` (Linux queues backlog + 1). TCP shows
//! it from below: with the standard library's fixed backlog of 128 the kernel would drop
//! the SYNs of connections beyond it and those connects would time out; with a larger
//! backlog every one of them completes its handshake although nothing accepts.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use async_milter::rt::{AsyncStd, Runtime, Smol, Tokio};
use async_milter::server::{Server, ServerConfig, SocketSpec};
use socket2::{Domain, SockAddr, Socket, Type};

/// A unix backlog small enough for any kernel's `somaxconn`.
const UNIX_BACKLOG: u32 = 50;
/// Above the standard library's 128, so only a backlog that was applied holds them all.
const TCP_BACKLOG: u32 = 160;
/// Bounds each TCP connect; one whose SYN was dropped would wait for this and fail.
const CONNECT_LIMIT: Duration = Duration::from_secs(5);

fn config(listen_backlog: u32) -> ServerConfig {
    ServerConfig {
        listen_backlog,
        ..ServerConfig::default()
    }
}

/// Binds a unix socket with [`UNIX_BACKLOG`] and never accepts: backlog + 1 connections
/// queue, the next is refused with `WouldBlock`.
async fn unix_queue_holds_the_backlog<R: Runtime>(runtime: R, tag: &str) {
    let dir =
        std::env::temp_dir().join(format!("async-milter-backlog-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path: PathBuf = dir.join("milter.sock");
    let spec = format!("unix:{}", path.display());
    let server = Server::bind_on(runtime, &spec, config(UNIX_BACKLOG))
        .await
        .expect("bind");
    let address = SockAddr::unix(&path).unwrap();
    let mut queued: Vec<Socket> = Vec::new();
    let refused = loop {
        let socket = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
        socket.set_nonblocking(true).unwrap();
        match socket.connect(&address) {
            Ok(()) => queued.push(socket),
            Err(error) => break error,
        }
        assert!(
            queued.len() <= UNIX_BACKLOG as usize + 1,
            "{tag}: more than backlog + 1 connections queued: the backlog was not applied"
        );
    };
    assert_eq!(
        refused.kind(),
        io::ErrorKind::WouldBlock,
        "{tag}: {refused}"
    );
    assert_eq!(queued.len(), UNIX_BACKLOG as usize + 1, "{tag}");
    drop(queued);
    drop(server);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Binds TCP with [`TCP_BACKLOG`] and never accepts: every one of that many connects
/// completes.
async fn tcp_queue_holds_the_backlog<R: Runtime>(runtime: R, tag: &str) {
    let server = Server::bind_on(runtime, "inet:0@127.0.0.1", config(TCP_BACKLOG))
        .await
        .expect("bind");
    let SocketSpec::Inet(addr) = *server.local_spec() else {
        panic!("{tag}: bound to {}", server.local_spec());
    };
    let connected = connect_all(addr, TCP_BACKLOG as usize).unwrap_or_else(|(n, error)| {
        panic!(
            "{tag}: connection {} of {TCP_BACKLOG} failed: {error}: the backlog was not applied",
            n + 1
        )
    });
    assert_eq!(connected.len(), TCP_BACKLOG as usize, "{tag}");
    drop(server);
}

/// Opens `n` TCP connections one after the other, each bounded by [`CONNECT_LIMIT`].
fn connect_all(addr: SocketAddr, n: usize) -> Result<Vec<TcpStream>, (usize, io::Error)> {
    (0..n)
        .map(|i| TcpStream::connect_timeout(&addr, CONNECT_LIMIT).map_err(|error| (i, error)))
        .collect()
}

/// Whether the kernel's cap lets a TCP backlog above the standard library's show at all
/// (`net.core.somaxconn` is 4096 by default since Linux 5.4, 128 before).
fn somaxconn_allows_tcp_check() -> bool {
    let cap: Option<u32> = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|text| text.trim().parse().ok());
    match cap {
        Some(cap) if cap >= TCP_BACKLOG => true,
        _ => {
            eprintln!(
                "net.core.somaxconn is {cap:?}, below {TCP_BACKLOG}: the TCP backlog cannot be shown here"
            );
            false
        }
    }
}

#[test]
fn async_std_applies_the_backlog() {
    async_std::task::block_on(async {
        unix_queue_holds_the_backlog(AsyncStd, "async-std").await;
        if somaxconn_allows_tcp_check() {
            tcp_queue_holds_the_backlog(AsyncStd, "async-std").await;
        }
    });
}

#[test]
fn tokio_applies_the_backlog() {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            unix_queue_holds_the_backlog(Tokio, "tokio").await;
            if somaxconn_allows_tcp_check() {
                tcp_queue_holds_the_backlog(Tokio, "tokio").await;
            }
        });
}

#[test]
fn smol_applies_the_backlog() {
    smol::block_on(async {
        unix_queue_holds_the_backlog(Smol, "smol").await;
        if somaxconn_allows_tcp_check() {
            tcp_queue_holds_the_backlog(Smol, "smol").await;
        }
    });
}
