//! The phases of a milter conversation, in the order the MTA sends them.

use std::fmt;

use crate::proto::CommandKind;

/// Where a connection is in the SMTP conversation.
///
/// Phases are ordered: a filter can await a phase that is still to come, never one that has
/// passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// Nothing received yet.
    Start,
    /// The client connected.
    Connect,
    /// HELO or EHLO.
    Helo,
    /// MAIL FROM.
    Mail,
    /// RCPT TO.
    Rcpt,
    /// DATA.
    Data,
    /// Headers are arriving.
    Header,
    /// End of headers.
    EndOfHeaders,
    /// Body chunks are arriving.
    Body,
    /// End of message.
    EndOfMessage,
}

impl Phase {
    /// The phase a command moves the conversation to, if it belongs to the ordered flow.
    ///
    /// UNKNOWN, MACRO, ABORT and QUIT do not move it.
    #[must_use]
    pub fn of(command: CommandKind) -> Option<Self> {
        Some(match command {
            CommandKind::Connect => Self::Connect,
            CommandKind::Helo => Self::Helo,
            CommandKind::Mail => Self::Mail,
            CommandKind::Rcpt => Self::Rcpt,
            CommandKind::Data => Self::Data,
            CommandKind::Header => Self::Header,
            CommandKind::EndOfHeaders => Self::EndOfHeaders,
            CommandKind::Body => Self::Body,
            CommandKind::EndOfMessage => Self::EndOfMessage,
            _ => return None,
        })
    }

    /// Whether this phase is part of a message (MAIL and later).
    #[must_use]
    pub fn in_message(self) -> bool {
        self >= Self::Mail
    }

    /// Whether a verdict given here applies to the whole message, so the MTA may be told
    /// at once (as opposed to RCPT, where it would touch one recipient only).
    #[must_use]
    pub fn is_message_wide(self) -> bool {
        matches!(
            self,
            Self::Mail
                | Self::Data
                | Self::Header
                | Self::EndOfHeaders
                | Self::Body
                | Self::EndOfMessage
        )
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Start => "start",
            Self::Connect => "connect",
            Self::Helo => "HELO",
            Self::Mail => "MAIL",
            Self::Rcpt => "RCPT",
            Self::Data => "DATA",
            Self::Header => "header",
            Self::EndOfHeaders => "end of headers",
            Self::Body => "body",
            Self::EndOfMessage => "end of message",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Phase;
    use crate::proto::CommandKind;

    #[test]
    fn commands_map_to_ordered_phases() {
        let flow = [
            CommandKind::Connect,
            CommandKind::Helo,
            CommandKind::Mail,
            CommandKind::Rcpt,
            CommandKind::Data,
            CommandKind::Header,
            CommandKind::EndOfHeaders,
            CommandKind::Body,
            CommandKind::EndOfMessage,
        ];
        let phases: Vec<Phase> = flow.iter().map(|&c| Phase::of(c).unwrap()).collect();
        assert!(phases.windows(2).all(|w| w[0] < w[1]));
        for other in [
            CommandKind::Macro,
            CommandKind::Abort,
            CommandKind::Quit,
            CommandKind::Unknown,
        ] {
            assert_eq!(Phase::of(other), None);
        }
    }

    #[test]
    fn only_rcpt_and_connection_phases_are_not_message_wide() {
        assert!(!Phase::Connect.is_message_wide());
        assert!(!Phase::Helo.is_message_wide());
        assert!(!Phase::Rcpt.is_message_wide());
        assert!(Phase::Mail.is_message_wide());
        assert!(Phase::Body.is_message_wide());
    }
}
