//! Socket activation: the listening sockets systemd passes to the process it starts.
//!
//! systemd (or `systemd-socket-activate`, or any manager speaking the same protocol) binds
//! the sockets of a `.socket` unit itself and starts the service with them open as file
//! descriptors 3, 4, …, announced by three environment variables: `LISTEN_PID` (the pid
//! meant to take them), `LISTEN_FDS` (how many) and `LISTEN_FDNAMES` (their
//! `FileDescriptorName=`s, colon-separated). [`listeners`] and [`named_listeners`] take them
//! as [`StdListener`]s, telling TCP from unix sockets by their address family, ready for
//! [`Server::from_listener`](super::Server::from_listener). The socket specs `systemd` and
//! `systemd:NAME` do the same inside [`Server::bind`](super::Server::bind).
//!
//! As `sd_listen_fds(1)` does, the first look at the environment removes `LISTEN_PID` and
//! `LISTEN_FDS`, so child processes do not take the sockets for theirs, and marks the
//! sockets close-on-exec. (`LISTEN_FDNAMES` stays: without the other two it means nothing,
//! and removing a variable needs `unsafe` since Rust 2024.) The environment is
//! process-wide, so what that first look found is kept for the life of the process: later
//! calls see the same answer, and each socket is handed out once. Take the sockets early,
//! before other threads might read the environment from C code.
//!
//! Only stream sockets with `Accept=no` (the default) can be served; a datagram or FIFO
//! entry in the unit is an [`ActivationError::Unusable`] socket.

use std::fmt;
use std::sync::{Mutex, PoisonError};

use listenfd::ListenFd;

use crate::rt::StdListener;

/// The first passed file descriptor (`SD_LISTEN_FDS_START`).
const FIRST_FD: i32 = 3;

/// The name systemd reports for a socket when `LISTEN_FDNAMES` is not set.
const UNNAMED: &str = "unknown";

/// Why there is no passed socket to serve on.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ActivationError {
    /// `LISTEN_FDS` or `LISTEN_PID` is not set: the process was not started by socket
    /// activation.
    NotActivated,
    /// `LISTEN_PID` names another process: the variables were inherited from a parent that
    /// left them set, and the sockets are not ours to take.
    OtherProcess {
        /// The pid in `LISTEN_PID`.
        listen_pid: u32,
        /// This process's pid.
        pid: u32,
    },
    /// A variable does not have the documented form.
    Malformed {
        /// The variable's name.
        variable: &'static str,
        /// Its value.
        value: String,
    },
    /// No passed socket is left that matches: none was passed (`LISTEN_FDS=0`), none has
    /// the name asked for, or each was taken already.
    NoSocket {
        /// The name asked for (`systemd:NAME`), if any.
        name: Option<String>,
    },
    /// Several passed sockets match where one was asked for; give each a
    /// `FileDescriptorName=` and choose with `systemd:NAME`.
    Ambiguous {
        /// The name asked for, if any.
        name: Option<String>,
        /// How many match.
        count: usize,
    },
    /// A passed descriptor is not a TCP or unix stream listener.
    Unusable {
        /// The file descriptor.
        fd: i32,
        /// Its name from `LISTEN_FDNAMES`.
        name: String,
    },
}

impl ActivationError {
    /// Whether the process was simply not socket-activated ([`NotActivated`] or
    /// [`OtherProcess`]), as opposed to activated with sockets that cannot be used.
    ///
    /// [`NotActivated`]: Self::NotActivated
    /// [`OtherProcess`]: Self::OtherProcess
    #[must_use]
    pub fn is_not_activated(&self) -> bool {
        matches!(self, Self::NotActivated | Self::OtherProcess { .. })
    }
}

impl fmt::Display for ActivationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotActivated => {
                f.write_str("not socket-activated: LISTEN_FDS or LISTEN_PID is not set")
            }
            Self::OtherProcess { listen_pid, pid } => write!(
                f,
                "not socket-activated: LISTEN_PID is {listen_pid}, this process is {pid}"
            ),
            Self::Malformed { variable, value } => write!(f, "malformed {variable}={value:?}"),
            Self::NoSocket { name: None } => f.write_str("systemd passed no socket to serve on"),
            Self::NoSocket { name: Some(name) } => {
                write!(f, "systemd passed no socket named {name:?}")
            }
            Self::Ambiguous { name: None, count } => write!(
                f,
                "systemd passed {count} sockets: name one with systemd:NAME (FileDescriptorName=)"
            ),
            Self::Ambiguous {
                name: Some(name),
                count,
            } => write!(f, "systemd passed {count} sockets named {name:?}"),
            Self::Unusable { fd, name } => write!(
                f,
                "fd {fd} ({name}) passed by systemd is not a TCP or unix stream listener"
            ),
        }
    }
}

impl std::error::Error for ActivationError {}

impl From<ActivationError> for std::io::Error {
    fn from(error: ActivationError) -> Self {
        let kind = if error.is_not_activated() {
            std::io::ErrorKind::NotFound
        } else {
            std::io::ErrorKind::InvalidInput
        };
        Self::new(kind, error)
    }
}

/// Takes every passed socket not taken yet, in the order of the unit's `Listen*=` lines.
///
/// # Errors
///
/// [`ActivationError::NotActivated`] or [`OtherProcess`](ActivationError::OtherProcess) when
/// the process was not socket-activated, [`Malformed`](ActivationError::Malformed) for
/// garbled variables, [`Unusable`](ActivationError::Unusable) (and nothing taken) when one
/// of the sockets is not a stream listener. No socket passed is an empty list.
pub fn listeners() -> Result<Vec<StdListener>, ActivationError> {
    Ok(named_listeners()?
        .into_iter()
        .map(|(_, listener)| listener)
        .collect())
}

/// Like [`listeners`], with each socket's name: its `FileDescriptorName=`, which systemd
/// defaults to the socket unit's name, or `"unknown"` when the manager sent no names.
pub fn named_listeners() -> Result<Vec<(String, StdListener)>, ActivationError> {
    with_passed(|passed| {
        if let Some(slot) = passed.iter().find(|slot| slot.listener.is_none()) {
            return Err(slot.unusable());
        }
        Ok(passed
            .drain(..)
            .filter_map(|slot| Some((slot.name, slot.listener?)))
            .collect())
    })
}

/// Takes the one passed socket named `name`, or the only one passed when `name` is `None`:
/// the socket specs `systemd:NAME` and `systemd`.
pub(crate) fn take(name: Option<&str>) -> Result<StdListener, ActivationError> {
    with_passed(|passed| {
        let matches: Vec<usize> = (0..passed.len())
            .filter(|&i| name.is_none_or(|name| passed[i].name == name))
            .collect();
        let index = match matches[..] {
            [index] => index,
            [] => {
                return Err(ActivationError::NoSocket {
                    name: name.map(str::to_owned),
                });
            }
            _ => {
                return Err(ActivationError::Ambiguous {
                    name: name.map(str::to_owned),
                    count: matches.len(),
                });
            }
        };
        match passed[index].listener.take() {
            Some(listener) => {
                passed.remove(index);
                Ok(listener)
            }
            None => Err(passed[index].unusable()),
        }
    })
}

/// One passed descriptor not handed out yet.
#[derive(Debug)]
struct Slot {
    fd: i32,
    name: String,
    /// `None` when the descriptor is not a stream listener.
    listener: Option<StdListener>,
}

impl Slot {
    fn unusable(&self) -> ActivationError {
        ActivationError::Unusable {
            fd: self.fd,
            name: self.name.clone(),
        }
    }
}

/// What the first look at the environment found, kept because that look clears it.
static PASSED: Mutex<Option<Result<Vec<Slot>, ActivationError>>> = Mutex::new(None);

/// Runs `f` on the passed sockets not handed out yet, reading the environment the first time.
fn with_passed<T>(
    f: impl FnOnce(&mut Vec<Slot>) -> Result<T, ActivationError>,
) -> Result<T, ActivationError> {
    let mut passed = PASSED.lock().unwrap_or_else(PoisonError::into_inner);
    match passed.get_or_insert_with(take_from_env) {
        Ok(slots) => f(slots),
        Err(error) => Err(error.clone()),
    }
}

/// Reads the variables, then has `listenfd` clear them and adopt the descriptors.
fn take_from_env() -> Result<Vec<Slot>, ActivationError> {
    let var = |name| std::env::var(name).ok();
    let names = parse(
        var("LISTEN_PID").as_deref(),
        var("LISTEN_FDS").as_deref(),
        var("LISTEN_FDNAMES").as_deref(),
        std::process::id(),
    );
    // Clears LISTEN_PID and LISTEN_FDS whether or not they were meant for us, as
    // sd_listen_fds(1) does. Descriptors it holds but we do not take stay open, untouched.
    let mut fds = ListenFd::from_env();
    let slots = names?
        .into_iter()
        .zip(FIRST_FD..)
        .enumerate()
        .map(|(index, (name, fd))| {
            let listener = match fds.take_tcp_listener(index) {
                Ok(Some(tcp)) => Some(StdListener::Tcp(tcp)),
                // Not an inet stream socket (checked by address family and type): unix?
                _ => fds
                    .take_unix_listener(index)
                    .ok()
                    .flatten()
                    .map(StdListener::Unix),
            };
            Slot { fd, name, listener }
        })
        .collect();
    Ok(slots)
}

/// The most descriptors accepted: far above any real unit, and a bound on what is allocated.
const MAX_FDS: u32 = 65_536;

/// Checks the three variables against our pid and returns one name per passed descriptor.
fn parse(
    listen_pid: Option<&str>,
    listen_fds: Option<&str>,
    fd_names: Option<&str>,
    pid: u32,
) -> Result<Vec<String>, ActivationError> {
    let (Some(listen_pid), Some(listen_fds)) = (listen_pid, listen_fds) else {
        return Err(ActivationError::NotActivated);
    };
    let malformed = |variable, value: &str| ActivationError::Malformed {
        variable,
        value: value.to_owned(),
    };
    let listen_pid: u32 = listen_pid
        .parse()
        .map_err(|_| malformed("LISTEN_PID", listen_pid))?;
    if listen_pid != pid {
        return Err(ActivationError::OtherProcess { listen_pid, pid });
    }
    let count: u32 = listen_fds
        .parse()
        .ok()
        .filter(|&count| count <= MAX_FDS)
        .ok_or_else(|| malformed("LISTEN_FDS", listen_fds))?;
    let count = count as usize;
    match fd_names {
        None => Ok(vec![UNNAMED.to_owned(); count]),
        Some(names) => {
            let names: Vec<String> = if count == 0 && names.is_empty() {
                Vec::new()
            } else {
                names.split(':').map(str::to_owned).collect()
            };
            if names.len() == count {
                Ok(names)
            } else {
                Err(malformed("LISTEN_FDNAMES", fd_names.unwrap_or_default()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PID: u32 = 4242;

    #[test]
    fn absent_variables_mean_not_activated() {
        for (pid, fds) in [(None, None), (Some("4242"), None), (None, Some("1"))] {
            let result = parse(pid, fds, None, PID);
            assert_eq!(
                result,
                Err(ActivationError::NotActivated),
                "{pid:?} {fds:?}"
            );
            assert!(result.unwrap_err().is_not_activated());
        }
    }

    #[test]
    fn another_process_pid_means_not_activated() {
        let result = parse(Some("1"), Some("1"), Some("milter"), PID);
        assert_eq!(
            result,
            Err(ActivationError::OtherProcess {
                listen_pid: 1,
                pid: PID
            })
        );
        assert!(result.unwrap_err().is_not_activated());
    }

    #[test]
    fn names_default_to_unknown() {
        assert_eq!(
            parse(Some("4242"), Some("2"), None, PID),
            Ok(vec!["unknown".to_owned(), "unknown".to_owned()])
        );
        assert_eq!(parse(Some("4242"), Some("0"), None, PID), Ok(vec![]));
        assert_eq!(parse(Some("4242"), Some("0"), Some(""), PID), Ok(vec![]));
    }

    #[test]
    fn names_come_in_order() {
        assert_eq!(
            parse(Some("4242"), Some("2"), Some("inet:unix"), PID),
            Ok(vec!["inet".to_owned(), "unix".to_owned()])
        );
    }

    #[test]
    fn garbled_variables_are_malformed() {
        for (pid, fds, names, variable) in [
            ("x", "1", None, "LISTEN_PID"),
            ("-1", "1", None, "LISTEN_PID"),
            ("4242", "one", None, "LISTEN_FDS"),
            ("4242", "-1", None, "LISTEN_FDS"),
            ("4242", "99999999", None, "LISTEN_FDS"),
            ("4242", "2", Some("only-one"), "LISTEN_FDNAMES"),
            ("4242", "1", Some("a:b"), "LISTEN_FDNAMES"),
        ] {
            let result = parse(Some(pid), Some(fds), names, PID);
            let Err(ActivationError::Malformed { variable: got, .. }) = result else {
                panic!("{pid} {fds} {names:?}: {result:?}");
            };
            assert_eq!(got, variable, "{pid} {fds} {names:?}");
        }
    }

    #[test]
    fn errors_read_as_sentences_without_full_stops() {
        let error = ActivationError::OtherProcess {
            listen_pid: 1,
            pid: PID,
        };
        assert_eq!(
            error.to_string(),
            "not socket-activated: LISTEN_PID is 1, this process is 4242"
        );
        let io: std::io::Error = error.clone().into();
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
        let inner = io
            .get_ref()
            .and_then(|e| e.downcast_ref::<ActivationError>());
        assert_eq!(inner, Some(&error));
    }
}
