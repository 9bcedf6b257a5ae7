//! Owned forms of what the filter answers: replies, modifications and the negotiated options.

use crate::proto::{Actions, CommandKind, MacroStage, OptNeg, ProtocolFlags};

/// The filter's answer to one command, or why there is none.
///
/// PROGRESS packets are consumed while waiting and never appear here.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reply {
    /// `c`: go on.
    Continue,
    /// `a`: accept (the filter wants no more events for this message or session).
    Accept,
    /// `r`: reject.
    Reject,
    /// `t`: temporary failure.
    Tempfail,
    /// `d`: accept and silently drop the message.
    Discard,
    /// `s`: send no more body chunks (only in answer to BODY).
    Skip,
    /// `y`: reject or tempfail with this SMTP reply text.
    ReplyCode(String),
    /// `4`: Postfix-only; the MTA answers 421 and closes the session.
    Shutdown,
    /// The command was suppressed by a negotiated `NO_*` flag (or by the protocol version)
    /// and not sent.
    NotSent,
    /// The command was sent, but a negotiated `NR_*` flag says the filter does not answer it.
    NoReply,
}

impl Reply {
    /// Whether the reply refuses what it answers: reject, tempfail, a reply code or shutdown.
    #[must_use]
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::Reject | Self::Tempfail | Self::ReplyCode(_) | Self::Shutdown
        )
    }

    /// Whether the MTA goes on as if the filter had said continue: continue, not sent or no
    /// reply.
    #[must_use]
    pub fn is_continue(&self) -> bool {
        matches!(self, Self::Continue | Self::NotSent | Self::NoReply)
    }
}

/// One modification the filter sent before its end-of-message verdict, in owned form.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Modification {
    /// `h`: append a header.
    AddHeader {
        /// Header name.
        name: String,
        /// Value as sent by the filter.
        value: String,
    },
    /// `i`: insert a header at a 0-based position.
    InsertHeader {
        /// Position: 0 is the top.
        index: u32,
        /// Header name.
        name: String,
        /// Value as sent by the filter.
        value: String,
    },
    /// `m`: change (or, with an empty value, delete) the `index`-th header of this name.
    ChangeHeader {
        /// 1-based index among headers of this name.
        index: u32,
        /// Header name.
        name: String,
        /// New value; empty deletes.
        value: String,
    },
    /// `+`: add a recipient.
    AddRcpt(String),
    /// `2`: add a recipient with ESMTP arguments (one space-separated string).
    AddRcptWithArgs {
        /// The recipient.
        rcpt: String,
        /// The ESMTP arguments, if any.
        args: Option<String>,
    },
    /// `-`: remove a recipient.
    DeleteRcpt(String),
    /// `e`: replace the envelope sender.
    ChangeFrom {
        /// The new sender.
        sender: String,
        /// The ESMTP arguments, if any.
        args: Option<String>,
    },
    /// `b`: replace the body; one contiguous run of REPLBODY packets, concatenated.
    ReplaceBody(Vec<u8>),
    /// `q`: hold the message with this reason.
    Quarantine(String),
}

impl Modification {
    /// The action flag a filter must have negotiated to send this modification.
    #[must_use]
    pub fn required_action(&self) -> Actions {
        match self {
            Self::AddHeader { .. } | Self::InsertHeader { .. } => Actions::ADD_HEADERS,
            Self::ChangeHeader { .. } => Actions::CHANGE_HEADERS,
            Self::AddRcpt(_) => Actions::ADD_RCPT,
            Self::AddRcptWithArgs { .. } => Actions::ADD_RCPT_WITH_ARGS,
            Self::DeleteRcpt(_) => Actions::DELETE_RCPT,
            Self::ChangeFrom { .. } => Actions::CHANGE_FROM,
            Self::ReplaceBody(_) => Actions::CHANGE_BODY,
            Self::Quarantine(_) => Actions::QUARANTINE,
        }
    }
}

/// The filter's complete answer to end of message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndOfMessage {
    /// Modifications in wire order (a REPLBODY run is one entry).
    pub modifications: Vec<Modification>,
    /// The final response. CONTINUE here means the same as ACCEPT.
    pub reply: Reply,
    /// How many PROGRESS packets arrived before the final response.
    pub progress: usize,
}

/// The options agreed in OPTNEG, as the simulated MTA will honour them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// The protocol version the filter chose.
    pub version: u32,
    /// The actions the filter may use.
    pub actions: Actions,
    /// The protocol flags the filter asked for.
    pub protocol: ProtocolFlags,
    /// Macro lists the filter requested, per stage, as sent (names separated by spaces or
    /// commas).
    pub macro_requests: Vec<(MacroStage, String)>,
}

impl Negotiated {
    /// The agreed version, actions and protocol flags.
    #[must_use]
    pub fn options(&self) -> OptNeg {
        OptNeg {
            version: self.version,
            actions: self.actions,
            protocol: self.protocol,
        }
    }

    /// Whether the MTA sends `command` at all under these options (`NO_*` flags and the
    /// version: no UNKNOWN below 3, no DATA below 4).
    #[must_use]
    pub fn sends(&self, command: CommandKind) -> bool {
        self.options().sends(command)
    }

    /// Whether the MTA waits for an answer to `command` (`NR_*` flags).
    #[must_use]
    pub fn expects_reply(&self, command: CommandKind) -> bool {
        self.options().expects_reply(command)
    }

    /// Whether header values travel with their leading whitespace (`HDR_LEADSPC`).
    #[must_use]
    pub fn leading_space(&self) -> bool {
        self.protocol.contains(ProtocolFlags::HEADER_LEADING_SPACE)
    }

    /// The requested macro list for `stage`, if the filter sent one.
    #[must_use]
    pub fn requested_macros(&self, stage: MacroStage) -> Option<&str> {
        self.macro_requests
            .iter()
            .find(|(s, _)| *s == stage)
            .map(|(_, names)| names.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn negotiated(version: u32, protocol: ProtocolFlags) -> Negotiated {
        Negotiated {
            version,
            actions: Actions::EMPTY,
            protocol,
            macro_requests: vec![(MacroStage::Rcpt, "{rcpt_addr}".into())],
        }
    }

    #[test]
    fn no_flags_and_version_suppress_commands() {
        let n = negotiated(6, ProtocolFlags::NO_HELO | ProtocolFlags::NO_BODY);
        assert!(!n.sends(CommandKind::Helo) && !n.sends(CommandKind::Body));
        assert!(n.sends(CommandKind::Mail) && n.sends(CommandKind::EndOfMessage));
        let v3 = negotiated(3, ProtocolFlags::EMPTY);
        assert!(!v3.sends(CommandKind::Data) && v3.sends(CommandKind::Unknown));
        let v2 = negotiated(2, ProtocolFlags::EMPTY);
        assert!(!v2.sends(CommandKind::Unknown));
    }

    #[test]
    fn nr_flags_remove_the_wait() {
        let n = negotiated(6, ProtocolFlags::NR_HEADER | ProtocolFlags::NR_CONNECT);
        assert!(!n.expects_reply(CommandKind::Header) && !n.expects_reply(CommandKind::Connect));
        assert!(n.expects_reply(CommandKind::EndOfMessage) && n.expects_reply(CommandKind::Helo));
        assert!(!n.expects_reply(CommandKind::Abort) && !n.expects_reply(CommandKind::Quit));
        assert_eq!(n.requested_macros(MacroStage::Rcpt), Some("{rcpt_addr}"));
        assert_eq!(n.requested_macros(MacroStage::Mail), None);
    }

    #[test]
    fn reply_classes() {
        assert!(Reply::ReplyCode("550 x".into()).is_refusal() && Reply::Shutdown.is_refusal());
        assert!(!Reply::Discard.is_refusal() && !Reply::Accept.is_continue());
        assert!(Reply::NoReply.is_continue() && Reply::NotSent.is_continue());
    }
}
