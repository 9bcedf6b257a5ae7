//! A tokio user and a smol user run the README's fifteen-line filter with only the runtime
//! changed: two small programs (tests/runtime-users/) that depend on this crate without
//! its default runtime are built on their own, started, and sent a message each.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use async_milter::testing::{self, Envelope, Profile, Reply};

/// The README filter both programs include.
const FILTER: &str = include_str!("runtime-users/filter.rs");

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Builds the program alone (so the library gets only that runtime's feature) and returns
/// the binary's path.
fn build(package: &str) -> PathBuf {
    let target = root().join("target");
    let status = Command::new(env!("CARGO"))
        .current_dir(root())
        .args(["build", "--quiet", "-p", package])
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building {package} failed");
    target.join("debug").join(package)
}

/// Starts the program on a free port and returns it with the spec it printed.
fn start(binary: &Path) -> (Running, String) {
    let mut child = Command::new(binary)
        .arg("inet:0@127.0.0.1")
        .stdout(Stdio::piped())
        .spawn()
        .expect("the program starts");
    let stdout = child.stdout.take().expect("stdout piped");
    let running = Running(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("it prints its address");
    let spec = line
        .trim()
        .strip_prefix("listening ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (running, spec)
}

async fn one_message(spec: &str) {
    let mut client = testing::connect(spec, Profile::postfix())
        .await
        .expect("connects");
    client.negotiate().await.expect("negotiates");
    let envelope = Envelope::new(
        "<alice@example.com>",
        &["<bob@example.net>", "<trap@example.org>"],
    );
    let outcome = client
        .send_message(&envelope, b"Subject: hi\r\n\r\nHello\r\n")
        .await
        .expect("the message goes through");
    assert_eq!(outcome.verdict, Reply::Accept);
    assert!(
        matches!(outcome.rcpts.get(1), Some((_, Reply::ReplyCode(text))) if text.starts_with("550 5.1.1")),
        "the trap recipient is refused: {:?}",
        outcome.rcpts
    );
    let delivered = outcome.delivered.expect("delivered");
    assert_eq!(
        delivered.header("X-Scanned").map(str::trim_start),
        Some("clean, from <alice@example.com>")
    );
    assert_eq!(delivered.recipient_addresses(), ["<bob@example.net>"]);
    client.quit().await.expect("quits");
}

fn check(package: &str) {
    let binary = build(package);
    let (_running, spec) = start(&binary);
    async_std::task::block_on(async_std::future::timeout(
        Duration::from_secs(30),
        one_message(&spec),
    ))
    .expect("no hang");
}

#[test]
fn the_readme_shows_the_filter_the_programs_run() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = FILTER.find("use async_milter").unwrap();
    let function = &FILTER[start..];
    assert!(
        readme.contains(function.trim_end()),
        "README.md must show tests/runtime-users/filter.rs verbatim"
    );
}

#[test]
fn a_tokio_user_runs_the_readme_filter() {
    check("tokio-user");
}

#[test]
fn a_smol_user_runs_the_readme_filter() {
    check("smol-user");
}
