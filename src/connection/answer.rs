//! What to answer an event: one filter's answer from its state, and the merge of several
//! filters' answers; pure functions, tested as tables.

use crate::session::{EventReply, Phase, Verdict};

/// The answer to one command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Go on.
    Continue,
    /// Send no more body chunks.
    Skip,
    /// A final verdict for the message or connection (queued edits are not sent).
    Verdict(Verdict),
    /// End of message: the queued edits, then the verdict.
    EditsThen(Verdict),
}

impl From<EventReply> for Answer {
    fn from(reply: EventReply) -> Self {
        Self::Verdict(match reply {
            EventReply::Reject => Verdict::Reject,
            EventReply::Tempfail => Verdict::Tempfail,
            EventReply::Reply(code) => Verdict::Reply(code),
        })
    }
}

/// One answer for the MTA from the answers of several filters to the same event.
///
/// | the filters' answers | merged |
/// |---|---|
/// | any refusal (reject, tempfail, discard, a reply code, shutdown) | the most severe; the first in filter order on a tie |
/// | end of message, all passing | the edits of all, then accept if every filter accepted, else continue |
/// | every filter accepted | accept |
/// | skip or accept from each, at least one skip | skip |
/// | anything else | continue |
///
/// Accept from one filter ends that filter's part in the message; the others go on.
pub(crate) fn merge(answers: &[Answer]) -> Answer {
    let refusal = answers
        .iter()
        .filter_map(|answer| match answer {
            Answer::Verdict(verdict) if !verdict.is_pass() => Some(verdict),
            _ => None,
        })
        .fold(None::<&Verdict>, |worst, verdict| match worst {
            Some(w) if w.severity() >= verdict.severity() => Some(w),
            _ => Some(verdict),
        });
    if let Some(verdict) = refusal {
        return Answer::Verdict(verdict.clone());
    }
    let accepted = |answer: &Answer| {
        matches!(
            answer,
            Answer::Verdict(Verdict::Accept) | Answer::EditsThen(Verdict::Accept)
        )
    };
    if answers.iter().any(|a| matches!(a, Answer::EditsThen(_))) {
        let verdict = if answers.iter().all(accepted) {
            Verdict::Accept
        } else {
            Verdict::Continue
        };
        return Answer::EditsThen(verdict);
    }
    if !answers.is_empty() && answers.iter().all(accepted) {
        return Answer::Verdict(Verdict::Accept);
    }
    if answers.contains(&Answer::Skip) && answers.iter().all(|a| *a == Answer::Skip || accepted(a))
    {
        return Answer::Skip;
    }
    Answer::Continue
}

/// The answer to an event a running filter has taken and moved past.
///
/// `own` is the reply the filter set for this event (a recipient it refused); `waits_for` is
/// the phase the filter now waits for: a filter already waiting for end of message does not
/// want the rest of the body.
pub(crate) fn while_running(
    phase: Option<Phase>,
    own: Option<EventReply>,
    waits_for: Phase,
    skip_allowed: bool,
) -> Answer {
    if let Some(reply) = own {
        return reply.into();
    }
    if phase == Some(Phase::Body) && waits_for > Phase::Body && skip_allowed {
        Answer::Skip
    } else {
        Answer::Continue
    }
}

/// What a finished filter decided for the current message.
#[derive(Debug)]
pub(crate) struct Decided {
    pub(crate) verdict: Verdict,
    /// Whether edits are queued (they can only be sent at end of message).
    pub(crate) has_edits: bool,
    /// Error replies apply to the message, never to the whole connection.
    pub(crate) message_only: bool,
    /// Whether the verdict has been sent; the MTA sends nothing more for this message then.
    pub(crate) sent: bool,
}

/// The answer to an event arriving after the filter returned its verdict.
///
/// A verdict reaches the MTA at the first event where it applies to what the filter meant:
/// at connect or HELO the connection (unless `message_only`), at MAIL and from DATA on the
/// message; during RCPT it waits, since a reject there would refuse one recipient only.
/// A passing verdict with edits waits for end of message, answering body chunks with Skip.
pub(crate) fn after_verdict(decided: &Decided, phase: Option<Phase>, skip_allowed: bool) -> Answer {
    let Some(phase) = phase else {
        // UNKNOWN: the verdict is not about this command.
        return Answer::Continue;
    };
    if decided.sent {
        return Answer::Continue;
    }
    let verdict = &decided.verdict;
    if phase == Phase::EndOfMessage {
        return if verdict.is_pass() {
            Answer::EditsThen(verdict.clone())
        } else {
            Answer::Verdict(verdict.clone())
        };
    }
    let pass_on = || {
        if phase == Phase::Body && skip_allowed {
            Answer::Skip
        } else {
            Answer::Continue
        }
    };
    let connection_phase = matches!(phase, Phase::Connect | Phase::Helo | Phase::Start);
    match verdict {
        Verdict::Continue => pass_on(),
        Verdict::Accept if decided.has_edits => pass_on(),
        Verdict::Accept if connection_phase && decided.message_only => Answer::Continue,
        Verdict::Discard if connection_phase => Answer::Continue,
        _ if phase == Phase::Rcpt => Answer::Continue,
        _ if connection_phase && decided.message_only => Answer::Continue,
        _ => Answer::Verdict(verdict.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ReplyCode;

    fn decided(verdict: Verdict, has_edits: bool) -> Decided {
        Decided {
            verdict,
            has_edits,
            message_only: false,
            sent: false,
        }
    }

    #[test]
    fn verdicts_land_where_they_apply() {
        use Phase::*;
        let table: &[(Verdict, bool, Phase, Answer)] = &[
            (
                Verdict::Reject,
                false,
                Connect,
                Answer::Verdict(Verdict::Reject),
            ),
            (
                Verdict::Reject,
                false,
                Helo,
                Answer::Verdict(Verdict::Reject),
            ),
            (
                Verdict::Reject,
                false,
                Mail,
                Answer::Verdict(Verdict::Reject),
            ),
            (Verdict::Reject, false, Rcpt, Answer::Continue),
            (
                Verdict::Reject,
                false,
                Data,
                Answer::Verdict(Verdict::Reject),
            ),
            (
                Verdict::Tempfail,
                false,
                Header,
                Answer::Verdict(Verdict::Tempfail),
            ),
            (Verdict::Discard, false, Connect, Answer::Continue),
            (Verdict::Discard, false, Rcpt, Answer::Continue),
            (
                Verdict::Discard,
                false,
                EndOfHeaders,
                Answer::Verdict(Verdict::Discard),
            ),
            (
                Verdict::Accept,
                false,
                Connect,
                Answer::Verdict(Verdict::Accept),
            ),
            (
                Verdict::Accept,
                false,
                Body,
                Answer::Verdict(Verdict::Accept),
            ),
            (Verdict::Accept, true, Body, Answer::Skip),
            (Verdict::Accept, true, Header, Answer::Continue),
            (
                Verdict::Accept,
                true,
                EndOfMessage,
                Answer::EditsThen(Verdict::Accept),
            ),
            (Verdict::Continue, false, Body, Answer::Skip),
            (Verdict::Continue, false, Rcpt, Answer::Continue),
            (
                Verdict::Continue,
                true,
                EndOfMessage,
                Answer::EditsThen(Verdict::Continue),
            ),
            (
                Verdict::Reject,
                true,
                EndOfMessage,
                Answer::Verdict(Verdict::Reject),
            ),
            (Verdict::Shutdown, false, Rcpt, Answer::Continue),
            (
                Verdict::Shutdown,
                false,
                Data,
                Answer::Verdict(Verdict::Shutdown),
            ),
        ];
        for (verdict, edits, phase, expected) in table {
            let got = after_verdict(&decided(verdict.clone(), *edits), Some(*phase), true);
            assert_eq!(&got, expected, "{verdict:?} with edits={edits} at {phase}");
        }
    }

    #[test]
    fn several_filters_answers_merge_by_severity() {
        use Answer::{Continue, EditsThen, Skip};
        let v = Answer::Verdict;
        let code = ReplyCode::permanent(550, "5.7.1", "policy").unwrap();
        let temp = ReplyCode::temporary(451, "4.7.1", "later").unwrap();
        let table: &[(&[Answer], Answer)] = &[
            (&[Continue, Continue], Continue),
            (&[Continue, v(Verdict::Reject)], v(Verdict::Reject)),
            (
                &[v(Verdict::Tempfail), v(Verdict::Reject)],
                v(Verdict::Reject),
            ),
            (
                &[v(Verdict::Discard), v(Verdict::Tempfail)],
                v(Verdict::Tempfail),
            ),
            (&[v(Verdict::Discard), Continue], v(Verdict::Discard)),
            (
                &[v(Verdict::Accept), v(Verdict::Discard)],
                v(Verdict::Discard),
            ),
            (
                &[v(Verdict::Reply(temp.clone())), v(Verdict::Tempfail)],
                v(Verdict::Reply(temp.clone())),
            ),
            (
                &[v(Verdict::Tempfail), v(Verdict::Reply(temp))],
                v(Verdict::Tempfail),
            ),
            (
                &[v(Verdict::Reply(code.clone())), v(Verdict::Reject)],
                v(Verdict::Reply(code)),
            ),
            (
                &[v(Verdict::Reject), v(Verdict::Shutdown)],
                v(Verdict::Shutdown),
            ),
            // Accept ends one filter's part; the others go on.
            (&[v(Verdict::Accept), Continue], Continue),
            (
                &[v(Verdict::Accept), v(Verdict::Accept)],
                v(Verdict::Accept),
            ),
            (&[v(Verdict::Accept), Skip], Skip),
            (&[Skip, Continue], Continue),
            (&[Skip, Skip], Skip),
            // End of message: everyone's edits, then accept only if all accepted.
            (
                &[EditsThen(Verdict::Accept), EditsThen(Verdict::Continue)],
                EditsThen(Verdict::Continue),
            ),
            (
                &[EditsThen(Verdict::Accept), EditsThen(Verdict::Accept)],
                EditsThen(Verdict::Accept),
            ),
            (
                &[EditsThen(Verdict::Accept), v(Verdict::Reject)],
                v(Verdict::Reject),
            ),
        ];
        for (answers, expected) in table {
            assert_eq!(&merge(answers), expected, "{answers:?}");
        }
    }

    #[test]
    fn skip_only_where_negotiated() {
        let d = decided(Verdict::Continue, false);
        assert_eq!(
            after_verdict(&d, Some(Phase::Body), false),
            Answer::Continue
        );
        assert_eq!(
            while_running(Some(Phase::Body), None, Phase::EndOfMessage, false),
            Answer::Continue
        );
        assert_eq!(
            while_running(Some(Phase::Body), None, Phase::EndOfMessage, true),
            Answer::Skip
        );
        assert_eq!(
            while_running(Some(Phase::Body), None, Phase::Body, true),
            Answer::Continue
        );
        assert_eq!(
            while_running(Some(Phase::Header), None, Phase::EndOfMessage, true),
            Answer::Continue
        );
    }

    #[test]
    fn error_verdicts_never_touch_the_connection() {
        let d = Decided {
            verdict: Verdict::Tempfail,
            has_edits: false,
            message_only: true,
            sent: false,
        };
        assert_eq!(
            after_verdict(&d, Some(Phase::Connect), true),
            Answer::Continue
        );
        assert_eq!(
            after_verdict(&d, Some(Phase::Mail), true),
            Answer::Verdict(Verdict::Tempfail)
        );
    }

    #[test]
    fn own_replies_win_and_sent_verdicts_are_not_repeated() {
        let code = ReplyCode::permanent(550, "5.1.1", "no such user").unwrap();
        assert_eq!(
            while_running(
                Some(Phase::Rcpt),
                Some(EventReply::Reply(code.clone())),
                Phase::Rcpt,
                true
            ),
            Answer::Verdict(Verdict::Reply(code))
        );
        let mut d = decided(Verdict::Reject, false);
        d.sent = true;
        assert_eq!(after_verdict(&d, Some(Phase::Data), true), Answer::Continue);
        assert_eq!(
            after_verdict(&decided(Verdict::Reject, false), None, true),
            Answer::Continue
        );
    }
}
