//! Socket activation end to end: `systemd-socket-activate` (Debian package `systemd`) binds a
//! socket and starts the `accept_all` example on it with the spec `systemd`, and a whole
//! milter session goes through, over TCP and over a unix socket.
//!
//! The example is built by plain `cargo test`; with `--test socket_activation` alone, build
//! it first (`cargo build --example accept_all`).

mod support;

use std::fs::File;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use async_milter::testing::{MilterClient, Profile, Reply};
use async_std::net::TcpStream;
use async_std::os::unix::net::UnixStream;
use futures::io::{AsyncRead, AsyncWrite};
use support::{MESSAGE, envelope, greet, run};

/// Where Debian installs the tool; else it is looked up on `PATH`.
const SOCKET_ACTIVATE: &str = "/usr/bin/systemd-socket-activate";

/// How long to keep trying to connect while `systemd-socket-activate` binds.
const CONNECT_TRIES: u32 = 100;
const CONNECT_PAUSE: Duration = Duration::from_millis(50);

/// A scratch directory for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "async-milter-activation-{}-{test}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch directory");
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed (and reaped) when dropped, so a failing test leaves nothing behind.
struct KillOnDrop {
    child: Child,
    log: PathBuf,
}

impl KillOnDrop {
    /// What the child wrote to stderr so far, for failure messages.
    fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = File::open(&self.log) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `accept_all` example beside this test binary (`target/debug/examples`).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let path = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .join("examples")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: `cargo test` builds the examples; with --test alone, run \
         `cargo build --example {name}` first",
        path.display()
    );
    path
}

/// `systemd-socket-activate`, or a clear failure naming the package to install.
fn socket_activate() -> PathBuf {
    let found = Path::new(SOCKET_ACTIVATE)
        .is_file()
        .then(|| SOCKET_ACTIVATE.into());
    let found = found.or_else(|| {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("systemd-socket-activate"))
                .find(|candidate| candidate.is_file())
        })
    });
    found.expect(
        "systemd-socket-activate not found: install the Debian package `systemd` \
         (scripts/e2e installs it)",
    )
}

/// Starts `systemd-socket-activate` listening on `listen` with `args`, running `accept_all`
/// with `spec`. It execs the example in place at the first connection, so the pid is the
/// milter's.
fn activate(scratch: &Scratch, listen: &str, args: &[&str], spec: &str) -> KillOnDrop {
    let log = scratch.0.join("milter.log");
    let stderr = File::create(&log).expect("create log");
    let child = Command::new(socket_activate())
        .arg(format!("--listen={listen}"))
        .args(args)
        .arg(example("accept_all"))
        .arg(spec)
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("start systemd-socket-activate");
    KillOnDrop { child, log }
}

/// Connects with `connect`, retrying (bounded) while the socket is not there yet.
async fn connect_retrying<S, F, Fut>(milter: &KillOnDrop, mut connect: F) -> S
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::io::Result<S>>,
{
    let mut last = None;
    for _ in 0..CONNECT_TRIES {
        match connect().await {
            Ok(stream) => return stream,
            Err(error) => last = Some(error),
        }
        async_std::task::sleep(CONNECT_PAUSE).await;
    }
    panic!(
        "the activated socket never accepted: {last:?}\nlog:\n{}",
        milter.log()
    );
}

/// One whole message through the activated milter, which accepts it.
async fn one_session<S>(milter: &KillOnDrop, stream: S)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut client = MilterClient::new(stream, Profile::postfix());
    if let Err(error) = client.negotiate().await {
        panic!("negotiate: {error}\nlog:\n{}", milter.log());
    }
    greet(&mut client).await;
    let outcome = client
        .send_message(&envelope(), MESSAGE)
        .await
        .unwrap_or_else(|error| panic!("send_message: {error}\nlog:\n{}", milter.log()));
    assert_eq!(outcome.verdict, Reply::Accept, "log:\n{}", milter.log());
    assert!(outcome.delivered.is_some());
    client.quit().await.expect("quit");
}

/// A port that was free a moment ago (the usual race is harmless in a test).
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("find a free port")
}

#[test]
fn serves_a_session_on_a_passed_tcp_socket() {
    let scratch = Scratch::new("tcp");
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let milter = activate(&scratch, &addr.to_string(), &[], "systemd");
    run(async {
        let stream = connect_retrying(&milter, || TcpStream::connect(addr)).await;
        one_session(&milter, stream).await;
        // The same listener keeps serving: a second connection, a second session.
        let stream = TcpStream::connect(addr).await.expect("second connection");
        one_session(&milter, stream).await;
    });
    assert!(
        milter
            .log()
            .contains(&format!("listening on inet:{}@127.0.0.1", addr.port())),
        "log:\n{}",
        milter.log()
    );
}

#[test]
fn serves_a_session_on_a_passed_unix_socket_chosen_by_name() {
    let scratch = Scratch::new("unix");
    let path = scratch.0.join("milter.sock");
    let milter = activate(
        &scratch,
        path.to_str().expect("utf-8 temp path"),
        &["--fdname=milter"],
        "systemd:milter",
    );
    run(async {
        let stream = connect_retrying(&milter, || UnixStream::connect(&path)).await;
        one_session(&milter, stream).await;
    });
}

#[test]
fn a_socket_name_that_was_not_passed_is_a_clear_error() {
    let scratch = Scratch::new("wrong-name");
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let mut milter = activate(
        &scratch,
        &addr.to_string(),
        &["--fdname=milter"],
        "systemd:other",
    );
    // The example starts at the first connection, finds no such socket and exits.
    run(async {
        let _stream = connect_retrying(&milter, || TcpStream::connect(addr)).await;
    });
    let mut status = None;
    for _ in 0..CONNECT_TRIES {
        status = milter.child.try_wait().expect("wait for the example");
        if status.is_some() {
            break;
        }
        std::thread::sleep(CONNECT_PAUSE);
    }
    let status =
        status.unwrap_or_else(|| panic!("the example kept running\nlog:\n{}", milter.log()));
    assert!(!status.success(), "log:\n{}", milter.log());
    assert!(milter.log().contains("NoSocket"), "log:\n{}", milter.log());
}

#[test]
fn variables_meant_for_another_process_are_not_activation() {
    // LISTEN_PID names a process other than the example: the sockets are not its to take.
    let output = Command::new(example("accept_all"))
        .arg("systemd")
        .env("LISTEN_PID", "1")
        .env("LISTEN_FDS", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run the example");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "stderr:\n{stderr}");
    assert!(stderr.contains("OtherProcess"), "stderr:\n{stderr}");
    assert!(stderr.contains("NotFound"), "stderr:\n{stderr}");
}
