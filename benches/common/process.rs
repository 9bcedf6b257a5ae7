//! Starting a benchmark server as a child process (shared by the benchmarks).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

/// Starts `command` with piped standard input and output and waits (up to 10 s) for the
/// `listening ...` line every bench server prints first. The rest of its output arrives on
/// the receiver, read on a thread so the pipe never fills.
pub(crate) fn start_listening(
    command: &mut Command,
) -> Result<(Child, Receiver<String>), Box<dyn std::error::Error + Send + Sync>> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, lines) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = lines.recv_timeout(Duration::from_secs(10))?;
    if !first.starts_with("listening") {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("unexpected first line {first:?}").into());
    }
    Ok((child, lines))
}

/// A KiB figure (`VmRSS:`, `VmHWM:`, `RssAnon:` ...) from a process's `/proc/PID/status`
/// text; 0 if absent.
pub(crate) fn status_kib(status: &str, field: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
