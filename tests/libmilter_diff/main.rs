//! Differential test against libmilter: the same filter written on libmilter (Sendmail
//! 8.17, Debian's `libmilter-dev`; `tests/libmilter_diff/diff_milter.c`, compiled here with
//! `cc -lmilter`) and with this crate's hooks (`tests/libmilter_diff/ours.rs`) is sent the
//! same scripted MTA conversations over unix sockets, and the packets each sends back are
//! compared one by one.
//!
//! What each filter does is chosen by the MTA side: the negotiation by the configuration
//! each server runs with, every answer and every edit by a `{plan}` macro in the script.
//! Every difference is either fixed or listed in `differences.rs` with the reason this
//! crate's packet is the right one (the README's section "Differences from libmilter"
//! says the same for users); a difference not listed, or a listed one that no longer
//! appears, fails the test.
//!
//! `LIBMILTER_DIFF_SHOW=PREFIX cargo test --test libmilter_diff -- --nocapture` prints both
//! transcripts of every conversation whose name starts with PREFIX (`verdict/postfix/rcpt1`).

mod conversations;
mod differences;
mod ours;
mod runner;
mod script;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use async_milter::rt;
use async_milter::server::{Server, ServerConfig};
use futures::channel::oneshot;

use conversations::Conversation;
use differences::Difference;
use ours::Config;
use runner::{READ_TIMEOUT, SILENCE_TIMEOUT, Transcript, play, show_exchange};

/// How long a filter may take to start listening.
const START: Duration = Duration::from_secs(10);

/// Compiles `diff_milter.c` against libmilter.
fn build_c_filter(dir: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/libmilter_diff/diff_milter.c");
    let binary = dir.join("diff_milter");
    let status = Command::new("cc")
        .args(["-O1", "-Wall", "-o"])
        .arg(&binary)
        .arg(&source)
        .args(["-lmilter", "-lpthread"])
        .status()
        .expect("running cc");
    assert!(
        status.success(),
        "compiling {} failed: install the Debian package libmilter-dev (scripts/test does)",
        source.display()
    );
    binary
}

/// The libmilter filters, killed when dropped.
struct CFilters(Vec<Child>);

impl Drop for CFilters {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts the C filter for `config` on `socket` and waits until it listens.
fn start_c_filter(binary: &Path, socket: &Path, config: Config) -> Child {
    let mut child = Command::new(binary)
        .arg(format!("unix:{}", socket.display()))
        .arg(config.name())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting diff_milter");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(START)
        .expect("diff_milter starts listening");
    assert_eq!(line.trim(), "listening", "diff_milter {}", config.name());
    child
}

/// Serves the hooks milter for `config` on `socket` until `stop` fires.
fn start_ours(socket: &Path, config: Config) -> oneshot::Sender<()> {
    let spec = format!("unix:{}", socket.display());
    let server = async_std::task::block_on(Server::bind_on(
        rt::AsyncStd,
        &spec,
        ServerConfig::default(),
    ))
    .expect("bind our server");
    let (stop, stopped) = oneshot::channel::<()>();
    async_std::task::spawn(async move {
        let _ = server.serve_until(ours::milter(config), stopped).await;
    });
    stop
}

/// A private directory for the sockets (libmilter refuses sockets in world-writable ones).
fn socket_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("libmilter-diff-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).expect("socket directory");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    dir
}

/// Compares two transcripts exchange by exchange. Where they differ, the documented
/// differences that apply to the conversation must make the two equal; the comparison goes
/// on while both filters gave the same final answer (the MTA side then carried on the same
/// way) and stops where the conversations part. Returns the differences needed (a rewrite
/// counts only where leaving it out leaves a difference), or a report of the first
/// difference none explains.
fn compare<'a>(
    name: &str,
    lib: &Transcript,
    our: &Transcript,
    allowed: &'a [Difference],
) -> Result<Vec<&'a Difference>, String> {
    let applicable: Vec<&Difference> = allowed.iter().filter(|d| d.applies(name)).collect();
    let mut needed = Vec::new();
    for at in 0..lib.len().max(our.len()) {
        let (lib_at, our_at) = (lib.get(at), our.get(at));
        if lib_at == our_at {
            continue;
        }
        // Whether the rewrites (all but `skip`) make the two sides equal.
        let settles = |skip: Option<usize>| {
            let (mut l, mut o) = (lib_at.cloned(), our_at.cloned());
            if let (Some(l), Some(o)) = (&mut l, &mut o) {
                for (k, d) in applicable.iter().enumerate() {
                    if Some(k) != skip {
                        d.rewrite(l, o);
                    }
                }
            }
            l == o
        };
        if !settles(None) {
            return Err(format!(
                "  libmilter {}\n  ours      {}",
                show_exchange(lib_at),
                show_exchange(our_at)
            ));
        }
        for (k, d) in applicable.iter().enumerate() {
            if !settles(Some(k)) && !needed.iter().any(|n: &&Difference| n.id == d.id) {
                needed.push(*d);
            }
        }
        let outcome = |e: Option<&runner::Exchange>| {
            e.map(|e| (e.replies.last().map(|p| p.0), e.end.clone()))
        };
        if outcome(lib_at) != outcome(our_at) {
            break;
        }
    }
    Ok(needed)
}

/// How many conversations are played at once (each on its own connections).
const PARALLEL: usize = 4;

/// Plays every conversation against libmilter and against ours, [`PARALLEL`] at a time;
/// the transcripts come back in the conversations' order.
fn play_all(
    conversations: &[Conversation],
    sockets: &BTreeMap<&str, (PathBuf, PathBuf)>,
) -> Vec<(Transcript, Transcript)> {
    let mut played: Vec<Option<(Transcript, Transcript)>> = vec![None; conversations.len()];
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..PARALLEL)
            .map(|worker| {
                scope.spawn(move || {
                    let mut done = Vec::new();
                    for (i, conversation) in conversations.iter().enumerate() {
                        if i % PARALLEL != worker {
                            continue;
                        }
                        let (lib_socket, our_socket) = &sockets[conversation.config.name()];
                        let timeout = if conversation.libmilter_silent() {
                            SILENCE_TIMEOUT
                        } else {
                            READ_TIMEOUT
                        };
                        let script = &conversation.script.0;
                        done.push((
                            i,
                            play(lib_socket, script, timeout),
                            play(our_socket, script, timeout),
                        ));
                    }
                    done
                })
            })
            .collect();
        for worker in workers {
            for (i, lib, our) in worker.join().expect("a conversation worker") {
                played[i] = Some((lib, our));
            }
        }
    });
    played.into_iter().map(|p| p.expect("played")).collect()
}

#[test]
fn replies_match_libmilter_packet_by_packet() {
    let started = Instant::now();
    let dir = socket_dir();
    let binary = build_c_filter(&dir);
    let mut c_filters = CFilters(Vec::new());
    let mut sockets = BTreeMap::new();
    let mut stops = Vec::new();
    for config in Config::ALL {
        let lib = dir.join(format!("lib-{}.sock", config.name()));
        let our = dir.join(format!("ours-{}.sock", config.name()));
        c_filters.0.push(start_c_filter(&binary, &lib, config));
        stops.push(start_ours(&our, config));
        sockets.insert(config.name(), (lib, our));
    }

    let conversations = conversations::all();
    let mut names = std::collections::HashSet::new();
    for c in &conversations {
        assert!(
            names.insert(c.name.as_str()),
            "duplicate conversation {}",
            c.name
        );
    }
    let allowed = differences::allowed();
    let mut packets = 0;
    let mut exchanges = 0;
    let mut unexpected = Vec::new();
    let mut seen_allowed = std::collections::HashSet::new();
    let mut to_fix = Vec::new();
    let show = std::env::var("LIBMILTER_DIFF_SHOW").ok();
    let played = play_all(&conversations, &sockets);
    for (conversation, (lib, our)) in conversations.iter().zip(played) {
        let Conversation { name, config, .. } = conversation;
        if show
            .as_deref()
            .is_some_and(|prefix| name.starts_with(prefix))
        {
            println!("{name}:");
            for at in 0..lib.len().max(our.len()) {
                println!("  libmilter {}", show_exchange(lib.get(at)));
                println!("  ours      {}", show_exchange(our.get(at)));
            }
        }
        exchanges += lib.len() + our.len();
        packets += lib
            .iter()
            .chain(&our)
            .map(|e| e.replies.len())
            .sum::<usize>();
        match compare(name, &lib, &our, &allowed) {
            Ok(seen) => {
                for d in seen {
                    seen_allowed.insert(d.id);
                    if d.to_fix {
                        to_fix.push(name.clone());
                    }
                }
            }
            Err(report) => unexpected.push(format!("{name} ({}):\n{report}", config.name())),
        }
    }
    for stop in stops {
        let _ = stop.send(());
    }
    drop(c_filters);
    let _ = std::fs::remove_dir_all(&dir);

    println!(
        "libmilter differential: {} conversations, {exchanges} exchanges, {packets} packets compared in {:.1} s; {} documented differences seen",
        conversations.len(),
        started.elapsed().as_secs_f64(),
        seen_allowed.len()
    );
    for d in allowed.iter().filter(|d| d.to_fix) {
        println!("to fix: {}: {}", d.id, d.reason);
    }
    if !to_fix.is_empty() {
        println!("conversations showing a difference to fix: {to_fix:?}");
    }
    let stale: Vec<&str> = allowed
        .iter()
        .filter(|d| !seen_allowed.contains(d.id))
        .map(|d| d.id)
        .collect();
    assert!(
        unexpected.is_empty(),
        "{} conversations differ from libmilter in a way not documented in tests/libmilter_diff/differences.rs:\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
    assert!(
        stale.is_empty(),
        "documented differences no longer seen (fixed? remove them from differences.rs and the docs): {stale:?}"
    );
}
