//! Metrics through the [`metrics`](https://docs.rs/metrics/0.24) facade (feature `metrics`).
//!
//! With the feature on, every connection records the metrics below through the `metrics`
//! macros; the application installs the recorder it wants (a Prometheus exporter, a `StatsD` client,
//! …) before serving, as `examples/metrics.rs` does with `metrics-exporter-prometheus`.
//! Without a recorder installed, recording costs a relaxed atomic load; the counters whose
//! labels are only known at run time (verdicts, edits, errors; a few per message at most)
//! also build their key in a small allocation. With the feature off nothing is recorded and
//! the `metrics` crate is not compiled; the names below stay available, so dashboards and
//! alerts can refer to them from code.
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `milter_connections_open` | gauge | | MTA connections being served now |
//! | `milter_connections_total` | counter | | MTA connections served (opened) |
//! | `milter_connections_refused_total` | counter | | connections closed unserved at the server's `max_connections` |
//! | `milter_connection_errors_total` | counter | `kind` | connections ended abnormally: `protocol` (bytes that are not the milter protocol, or a command out of place), `negotiation` (the MTA cannot give what the filter needs), `timeout` (the MTA stayed silent beyond the read timeout), `io`, `internal` (a reply that could not be encoded) |
//! | `milter_messages_total` | counter | | messages (mail transactions: MAIL to end of message or abort) begun |
//! | `milter_verdicts_total` | counter | `stage`, `verdict` | verdicts sent to the MTA for a message or a connection, by the stage they were sent at and their kind |
//! | `milter_recipient_rejects_total` | counter | `verdict` | recipients refused one by one (a filter's reply at RCPT) |
//! | `milter_edits_total` | counter | `kind` | edits sent at end of message |
//! | `milter_filter_errors_total` | counter | `filter` | filter calls that returned an error (answered with the error verdict) |
//! | `milter_filter_panics_total` | counter | `filter` | filter calls that panicked (answered with the error verdict) |
//! | `milter_reply_duration_seconds` | histogram | `stage` | time from reading the MTA's command to writing our reply, the filters' work included; commands the MTA wants no reply to are not timed |
//!
//! Label values:
//!
//! - `stage`: `optneg`, `connect`, `helo`, `mail`, `rcpt`, `data`, `header`, `eoh`,
//!   `body`, `eom`, `unknown` (the MTA's command the reply answers).
//! - `verdict`: `continue` (end of message without a verdict of its own), `accept`,
//!   `reject`, `tempfail`, `discard`, `reply_permanent` and `reply_temporary` (a custom
//!   5xx or 4xx reply code), `shutdown`.
//! - `kind` of an edit: `change_from`, `add_rcpt`, `delete_rcpt`, `add_header`,
//!   `insert_header`, `change_header`, `delete_header`, `replace_body`, `quarantine`.
//! - `filter`: the member's name in a [`FilterList`](crate::FilterList); absent for a
//!   single unnamed filter.
//!
//! Time comes from the connection's [`Timer`], like every other timeout, so a
//! [`ManualClock`](crate::rt::ManualClock) drives the histogram in tests too.

use std::time::Instant;

use crate::connection::ConnectionError;
use crate::proto::CommandKind;
use crate::rt::Timer;
use crate::session::Verdict;

/// Gauge: MTA connections being served now.
pub const CONNECTIONS_OPEN: &str = "milter_connections_open";
/// Counter: MTA connections served.
pub const CONNECTIONS_TOTAL: &str = "milter_connections_total";
/// Counter: connections refused at the server's `max_connections`.
pub const CONNECTIONS_REFUSED: &str = "milter_connections_refused_total";
/// Counter, label `kind`: connections ended abnormally.
pub const CONNECTION_ERRORS: &str = "milter_connection_errors_total";
/// Counter: messages begun.
pub const MESSAGES: &str = "milter_messages_total";
/// Counter, labels `stage` and `verdict`: verdicts sent to the MTA.
pub const VERDICTS: &str = "milter_verdicts_total";
/// Counter, label `verdict`: recipients refused one by one.
pub const RECIPIENT_REJECTS: &str = "milter_recipient_rejects_total";
/// Counter, label `kind`: edits sent at end of message.
pub const EDITS: &str = "milter_edits_total";
/// Counter, label `filter`: filter calls that returned an error.
pub const FILTER_ERRORS: &str = "milter_filter_errors_total";
/// Counter, label `filter`: filter calls that panicked.
pub const FILTER_PANICS: &str = "milter_filter_panics_total";
/// Histogram in seconds, label `stage`: time from the MTA's command to our reply.
pub const REPLY_DURATION: &str = "milter_reply_duration_seconds";

/// Calls `$apply!($args)` with the `verdict` label of each kind of verdict: one list for
/// [`verdict_label`] and the literal-keyed counters.
macro_rules! verdicts {
    ($apply:ident ! ($($args:tt)*)) => {
        $apply! { ($($args)*)
            [Verdict::Continue] => "continue",
            [Verdict::Accept] => "accept",
            [Verdict::Reject] => "reject",
            [Verdict::Tempfail] => "tempfail",
            [Verdict::Discard] => "discard",
            [Verdict::Reply(code) if code.is_temporary()] => "reply_temporary",
            [Verdict::Reply(_)] => "reply_permanent",
            [Verdict::Shutdown] => "shutdown"
        }
    };
}

/// Hands every command kind with its `stage` label, as literals, to the macro `$apply`.
macro_rules! stages {
    ($apply:ident) => {
        $apply! {
            OptNeg => "optneg",
            Connect => "connect",
            Helo => "helo",
            Mail => "mail",
            Rcpt => "rcpt",
            Data => "data",
            Header => "header",
            EndOfHeaders => "eoh",
            Body => "body",
            EndOfMessage => "eom",
            Unknown => "unknown",
            Abort => "abort",
            Macro => "macro",
            Quit => "quit",
            QuitNewConnection => "quit_nc"
        }
    };
}

/// Counts a connection as open while it lives (a guard, so a connection aborted at the
/// server's shutdown deadline is counted out too).
#[must_use]
pub(crate) struct OpenConnection(());

impl OpenConnection {
    pub(crate) fn new() -> Self {
        #[cfg(feature = "metrics")]
        {
            ::metrics::gauge!(CONNECTIONS_OPEN).increment(1);
            ::metrics::counter!(CONNECTIONS_TOTAL).increment(1);
        }
        Self(())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        #[cfg(feature = "metrics")]
        ::metrics::gauge!(CONNECTIONS_OPEN).decrement(1);
    }
}

/// A connection was refused at `max_connections`.
pub(crate) fn connection_refused() {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(CONNECTIONS_REFUSED).increment(1);
}

/// A connection ended with `error`.
pub(crate) fn connection_error(error: &ConnectionError) {
    let kind = match error {
        ConnectionError::Decode(_) | ConnectionError::Unexpected { .. } => "protocol",
        ConnectionError::Negotiate(_) => "negotiation",
        ConnectionError::Timeout => "timeout",
        ConnectionError::NegotiationTimeout => "negotiation_timeout",
        ConnectionError::WriteTimeout => "write_timeout",
        ConnectionError::Io(_) => "io",
        ConnectionError::Encode(_) => "internal",
    };
    #[cfg(feature = "metrics")]
    ::metrics::counter!(CONNECTION_ERRORS, "kind" => kind).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = kind;
}

/// A message (mail transaction) began.
pub(crate) fn message_begun() {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(MESSAGES).increment(1);
}

/// `verdict` was sent in reply to `kind`.
pub(crate) fn verdict_sent(kind: CommandKind, verdict: &Verdict) {
    // One arm per stage and verdict with literal labels, so the key is static (see
    // `Stopwatch::replied`).
    #[cfg(feature = "metrics")]
    {
        macro_rules! by_verdict {
            (($stage:literal) $([$($arm:tt)*] => $label:literal),*) => {
                match verdict {
                    $($($arm)* => {
                        ::metrics::counter!(VERDICTS, "stage" => $stage, "verdict" => $label)
                            .increment(1);
                    })*
                }
            };
        }
        macro_rules! by_stage {
            ($($command:ident => $stage:literal),*) => {
                match kind {
                    $(CommandKind::$command => verdicts!(by_verdict!($stage)),)*
                }
            };
        }
        stages!(by_stage);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (kind, verdict);
}

/// A recipient was refused with `verdict`.
pub(crate) fn recipient_refused(verdict: &Verdict) {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(RECIPIENT_REJECTS, "verdict" => verdict_label(verdict)).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = verdict;
}

/// An edit of `kind` was sent.
pub(crate) fn edit_sent(kind: &'static str) {
    // Literal labels, so the key is static (see `Stopwatch::replied`).
    #[cfg(feature = "metrics")]
    {
        macro_rules! count {
            ($($label:literal),*) => {
                match kind {
                    $($label => ::metrics::counter!(EDITS, "kind" => $label).increment(1),)*
                    other => ::metrics::counter!(EDITS, "kind" => other).increment(1),
                }
            };
        }
        count!(
            "change_from",
            "delete_rcpt",
            "add_rcpt",
            "insert_header",
            "delete_header",
            "change_header",
            "add_header",
            "quarantine",
            "replace_body"
        );
    }
    #[cfg(not(feature = "metrics"))]
    let _ = kind;
}

/// A filter call (named `filter` in a list) returned an error.
pub(crate) fn filter_failed(filter: Option<&str>) {
    #[cfg(feature = "metrics")]
    match filter {
        Some(name) => ::metrics::counter!(FILTER_ERRORS, "filter" => name.to_owned()).increment(1),
        None => ::metrics::counter!(FILTER_ERRORS).increment(1),
    }
    #[cfg(not(feature = "metrics"))]
    let _ = filter;
}

/// A filter call (named `filter` in a list) panicked.
pub(crate) fn filter_panicked(filter: Option<&str>) {
    #[cfg(feature = "metrics")]
    match filter {
        Some(name) => ::metrics::counter!(FILTER_PANICS, "filter" => name.to_owned()).increment(1),
        None => ::metrics::counter!(FILTER_PANICS).increment(1),
    }
    #[cfg(not(feature = "metrics"))]
    let _ = filter;
}

/// Times one command's reply on the connection's clock; reads no clock with the feature
/// off.
pub(crate) struct Stopwatch {
    started: Option<Instant>,
}

impl Stopwatch {
    /// Starts timing now, as `timer` tells it.
    pub(crate) fn start(timer: &dyn Timer) -> Self {
        #[cfg(feature = "metrics")]
        let started = Some(timer.now());
        #[cfg(not(feature = "metrics"))]
        let started = {
            let _ = timer;
            None
        };
        Self { started }
    }

    /// The reply to `kind` has been written.
    pub(crate) fn replied(self, kind: CommandKind, timer: &dyn Timer) {
        if let Some(started) = self.started {
            let elapsed = timer.now().saturating_duration_since(started);
            // One arm per stage with its label as a literal: the `metrics` macros make a
            // static key of that, where a label computed at run time costs a new `Vec` for
            // the key at every reply, recorder or not.
            #[cfg(feature = "metrics")]
            macro_rules! record {
                ($($command:ident => $label:literal),*) => {
                    match kind {
                        $(CommandKind::$command => {
                            ::metrics::histogram!(REPLY_DURATION, "stage" => $label).record(elapsed);
                        })*
                    }
                };
            }
            #[cfg(feature = "metrics")]
            stages!(record);
            #[cfg(not(feature = "metrics"))]
            let _ = (kind, elapsed);
        }
    }
}

/// The `stage` label of a reply to `kind`.
pub(crate) fn stage_label(kind: CommandKind) -> &'static str {
    macro_rules! label {
        ($($command:ident => $label:literal),*) => {
            match kind {
                $(CommandKind::$command => $label,)*
            }
        };
    }
    stages!(label)
}

/// The `verdict` label of `verdict`.
pub(crate) fn verdict_label(verdict: &Verdict) -> &'static str {
    macro_rules! label {
        (() $([$($arm:tt)*] => $label:literal),*) => {
            match verdict {
                $($($arm)* => $label,)*
            }
        };
    }
    verdicts!(label!())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_snake_case_and_distinct() {
        let stages: Vec<_> = CommandKind::ALL.iter().map(|k| stage_label(*k)).collect();
        let mut unique = stages.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), stages.len());
        assert!(
            stages
                .iter()
                .all(|s| s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        );
    }
}
