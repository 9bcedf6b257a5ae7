//! What a filter decides about a message or connection.

use crate::proto::{ReplyCode, Response, WireStr};

/// The outcome a filter returns.
///
/// Where it lands depends on when the filter returns: at connect or HELO it applies to the
/// connection; while recipients are announced it is held until the next message-wide event
/// (a reject there would touch one recipient only); later it applies to the message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// No objection: the message goes on and queued edits are applied at end of message.
    Continue,
    /// Accept the message (at connect or HELO: the whole connection) and stop filtering it.
    Accept,
    /// Reject with the MTA's default permanent reply.
    Reject,
    /// Fail temporarily with the MTA's default reply.
    Tempfail,
    /// Accept and silently drop the whole message.
    Discard,
    /// Reject or fail temporarily with this reply (its class decides which).
    Reply(ReplyCode),
    /// Close the SMTP session with `421 4.7.0` (sent as a reply code, which both MTAs honour).
    Shutdown,
}

impl Verdict {
    /// Whether the message goes through (possibly with edits).
    #[must_use]
    pub fn is_pass(&self) -> bool {
        matches!(self, Self::Continue | Self::Accept)
    }

    /// How severe the verdict is, for combining several: continue < accept < discard <
    /// tempfail < reject < shutdown.
    #[must_use]
    pub fn severity(&self) -> u8 {
        match self {
            Self::Continue => 0,
            Self::Accept => 1,
            Self::Discard => 2,
            Self::Tempfail => 3,
            Self::Reply(code) if code.is_temporary() => 3,
            Self::Reject | Self::Reply(_) => 4,
            Self::Shutdown => 5,
        }
    }

    /// Appends the response for this verdict to `dst`.
    pub(crate) fn encode(&self, dst: &mut Vec<u8>) {
        let text;
        let response = match self {
            Self::Continue => Response::Continue,
            Self::Accept => Response::Accept,
            Self::Reject => Response::Reject,
            Self::Tempfail => Response::Tempfail,
            Self::Discard => Response::Discard,
            Self::Reply(code) => {
                text = code.to_wire();
                Response::ReplyCode(WireStr::new(&text))
            }
            Self::Shutdown => {
                text = shutdown_reply().to_wire();
                Response::ReplyCode(WireStr::new(&text))
            }
        };
        // A verdict is at most one checked reply line set, well under the payload limit.
        if response.encode(dst).is_err() {
            let _ = Response::Tempfail.encode(dst);
        }
    }
}

/// The reply sent for [`Verdict::Shutdown`].
fn shutdown_reply() -> ReplyCode {
    ReplyCode::temporary(421, "4.7.0", "closing connection").unwrap_or_else(|_| unreachable!())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_is_a_421_reply_code() {
        let mut wire = Vec::new();
        Verdict::Shutdown.encode(&mut wire);
        assert_eq!(&wire[4..], b"y421 4.7.0 closing connection\0");
    }

    #[test]
    fn severity_orders_verdicts() {
        let reply = ReplyCode::permanent(550, "5.7.1", "no").unwrap();
        assert!(Verdict::Reply(reply).severity() > Verdict::Tempfail.severity());
        assert!(Verdict::Discard.severity() > Verdict::Accept.severity());
    }
}
