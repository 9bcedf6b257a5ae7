//! What a case is: an attack, and the outcome expected of it.

use std::net::SocketAddr;
use std::time::Duration;

use super::target::Target;
use super::wire::Raw;
use super::{PEAK_BUDGET, PROMPT, SLACK};

/// What an attack leaves for judging.
pub(crate) enum Probe {
    /// The attack's connection, with the replies it has already read.
    Open { raw: Raw, replies: String },
    /// The attack checked its outcome itself.
    Done,
}

/// What an attack can use.
pub(crate) struct Lab<'t> {
    pub(crate) target: &'t Target,
    pub(crate) addr: SocketAddr,
    /// The server's resident memory before the case.
    pub(crate) baseline: u64,
    /// The server's log lines from this one on are the case's.
    pub(crate) mark: usize,
}

pub(crate) type Attack = Box<dyn Fn(&Lab<'_>) -> Result<Probe, String>>;

/// What becomes of the attack's connection.
pub(crate) enum Shape {
    /// These replies, then the server closes the connection at least `not_before` and at
    /// most `within` after the last bytes sent.
    Closes {
        replies: &'static str,
        not_before: Duration,
        within: Duration,
    },
    /// These replies (a fixed number), then the connection goes on serving: after ABORT a
    /// new SMTP session and a message pass, and QUIT closes it.
    Answers { replies: &'static str },
    /// The attack checked it.
    Checked,
}

/// A case's expected outcome.
pub(crate) struct Expect {
    pub(super) shape: Shape,
    /// Each appears in a line the server wrote during the case.
    pub(super) logged: Vec<&'static str>,
    /// Each pair appears within one such line (a value that holds a line break must not
    /// split the line it is logged in).
    pub(super) together: Vec<(&'static str, &'static str)>,
    /// How many lines at level WARN or ERROR the server writes during the case, if fixed.
    pub(super) alarms: Option<usize>,
    /// Most the server's resident memory may grow above the baseline during the case.
    pub(super) peak: u64,
}

impl Expect {
    fn new(shape: Shape, alarms: Option<usize>) -> Self {
        Self {
            shape,
            alarms,
            logged: Vec::new(),
            together: Vec::new(),
            peak: PEAK_BUDGET,
        }
    }

    /// And a line containing `text` is logged.
    #[must_use]
    pub(crate) fn logged(mut self, text: &'static str) -> Self {
        self.logged.push(text);
        self
    }

    /// And one logged line holds both `first` and `second`.
    #[must_use]
    pub(crate) fn logged_together(mut self, first: &'static str, second: &'static str) -> Self {
        self.together.push((first, second));
        self
    }

    /// And exactly `count` lines at level WARN or ERROR (instead of what the shape implies:
    /// one for a close, none for a connection that goes on).
    #[must_use]
    pub(crate) fn alarms(mut self, count: usize) -> Self {
        self.alarms = Some(count);
        self
    }

    /// And the peak may go `bytes` above the baseline (instead of [`PEAK_BUDGET`]).
    #[must_use]
    pub(crate) fn peak(mut self, bytes: u64) -> Self {
        self.peak = bytes;
        self
    }
}

/// No reply; the server closes at once and logs a line containing `log`.
pub(crate) fn closes(log: &'static str) -> Expect {
    closes_with("", log)
}

/// These replies; then the server closes at once and logs a line containing `log`.
pub(crate) fn closes_with(replies: &'static str, log: &'static str) -> Expect {
    Expect::new(
        Shape::Closes {
            replies,
            not_before: Duration::ZERO,
            within: PROMPT,
        },
        Some(1),
    )
    .logged(log)
}

/// No reply; the server closes when `timeout` has passed (not before) and logs `log`.
pub(crate) fn times_out(timeout: Duration, log: &'static str) -> Expect {
    Expect::new(
        Shape::Closes {
            replies: "",
            not_before: timeout.saturating_sub(Duration::from_millis(50)),
            within: timeout + SLACK,
        },
        Some(1),
    )
    .logged(log)
}

/// These replies, and the connection goes on serving.
pub(crate) fn answers(replies: &'static str) -> Expect {
    Expect::new(Shape::Answers { replies }, Some(0))
}

/// The attack checked its outcome; the server-wide checks still apply.
pub(crate) fn checked() -> Expect {
    Expect::new(Shape::Checked, None)
}

/// One entry of the catalogue.
pub(crate) struct Case {
    pub(crate) name: &'static str,
    pub(super) attack: Attack,
    pub(super) expect: Expect,
}

pub(crate) fn case(name: &'static str, attack: Attack, expect: Expect) -> Case {
    Case {
        name,
        attack,
        expect,
    }
}
