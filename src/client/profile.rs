//! How the simulated MTA behaves: what it offers, which macros it sends, and its quirks.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::proto::{Actions, CommandKind, MAX_BODY_CHUNK, MacroStage, OptNeg, ProtocolFlags};

/// Which MTA's behaviour a [`Profile`] reproduces where the two differ (§6 of the protocol
/// notes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MtaKind {
    /// Postfix 3.7: MACRO before every command, ABORT after every message and before QUIT,
    /// closes without QUIT after a connection-level verdict, UNKNOWN carries the command word,
    /// CHGHEADER indexes shift after a delete, a hidden `Received:` counts for INSHEADER,
    /// PROGRESS accepted at any stage, SHUTDOWN accepted.
    Postfix,
    /// Sendmail 8.17: MACRO only for configured stages, `IPv6:` address prefix, no ABORT
    /// after a completed message, QUIT after a connection-level verdict, UNKNOWN carries the
    /// full line, CHGHEADER indexes stable within one end of message, protocol flags must be
    /// a subset of the offer, PROGRESS only at end of message, no SHUTDOWN.
    Sendmail,
}

/// When the queue ID macro `i` gets its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QueueIdTiming {
    /// Known from MAIL on (Sendmail).
    Mail,
    /// Known after the first accepted RCPT, so in RCPT macros from the second RCPT on and
    /// dependably from DATA on (Postfix).
    AfterFirstRcpt,
}

/// How the simulated MTA behaves.
///
/// Start from [`Profile::postfix`] or [`Profile::sendmail`] and adjust the public fields or
/// use the builder methods. Macro names are written as the MTA sends them: single letters
/// bare (`i`, `j`, `_`), longer names in braces (`{daemon_name}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// Whose quirks to reproduce.
    pub kind: MtaKind,
    /// The OPTNEG offer: version (2 to 6), actions and protocol flags.
    pub offer: OptNeg,
    /// Default macro lists, keyed by the command code the MACRO packet precedes
    /// (`C H M R T L N B E U`). A command without an entry gets no MACRO packet. An empty
    /// list gives an empty MACRO packet with Postfix and no packet with Sendmail.
    pub macro_lists: Vec<(CommandKind, Vec<String>)>,
    /// Fixed macro values. An entry here overrides the value the client computes itself
    /// (see [`MilterClient`](super::MilterClient) for the computed ones).
    pub macro_values: BTreeMap<String, String>,
    /// The queue ID, sent as macro `i` and used in the simulated `Received:` header.
    pub queue_id: String,
    /// When `i` gets its value.
    pub queue_id_timing: QueueIdTiming,
    /// The MTA's own host name (macro `j`).
    pub hostname: String,
    /// Whether IPv6 addresses in CONNECT are sent in compressed form; Sendmail's default is
    /// uncompressed (`IPv6:2001:db8:0:0:0:0:0:1`).
    pub compress_ipv6: bool,
    /// Whether the delivered message starts with a `Received:` header the filter never sees
    /// and that INSHEADER indexes count (Postfix).
    pub hidden_received: bool,
    /// Body chunk size used by [`MilterClient::send_message`](super::MilterClient::send_message),
    /// clamped to 1..=65535.
    pub body_chunk_size: usize,
    /// How long to wait for each answer (and for each write to complete). PROGRESS restarts
    /// the wait.
    pub timeout: Duration,
}

fn names(list: &str) -> Vec<String> {
    list.split_whitespace().map(str::to_owned).collect()
}

fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

impl Profile {
    /// Postfix 3.7 with `milter_protocol = 6` and default macro settings (§5.7).
    #[must_use]
    pub fn postfix() -> Self {
        Self {
            kind: MtaKind::Postfix,
            offer: OptNeg::VERSION_6,
            macro_lists: vec![
                (
                    CommandKind::Connect,
                    names("j {daemon_name} {daemon_addr} v _"),
                ),
                (
                    CommandKind::Helo,
                    names("{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}"),
                ),
                (
                    CommandKind::Mail,
                    names(
                        "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer}",
                    ),
                ),
                (
                    CommandKind::Rcpt,
                    names("i {rcpt_addr} {rcpt_host} {rcpt_mailer}"),
                ),
                (CommandKind::Data, names("i")),
                (CommandKind::Header, names("i")),
                (CommandKind::EndOfHeaders, names("i")),
                (CommandKind::Body, names("i")),
                (CommandKind::EndOfMessage, names("i")),
                (CommandKind::Unknown, Vec::new()),
            ],
            macro_values: values(&[
                ("j", "mx.example.net"),
                ("{daemon_name}", "mx.example.net"),
                ("{daemon_addr}", "127.0.0.1"),
                ("v", "Postfix 3.7.11"),
            ]),
            queue_id: "4XBQ1F2K3Lz9".to_owned(),
            queue_id_timing: QueueIdTiming::AfterFirstRcpt,
            hostname: "mx.example.net".to_owned(),
            compress_ipv6: true,
            hidden_received: true,
            body_chunk_size: MAX_BODY_CHUNK,
            timeout: Duration::from_secs(10),
        }
    }

    /// Sendmail 8.17 with the macro lists of `cf/m4/cfhead.m4` as observed (§5.7 and
    /// "Observed milter behaviour"): MACRO packets at CONNECT, MAIL, RCPT and end of message.
    #[must_use]
    pub fn sendmail() -> Self {
        Self {
            kind: MtaKind::Sendmail,
            offer: OptNeg::VERSION_6,
            macro_lists: vec![
                (
                    CommandKind::Connect,
                    names("j _ {daemon_name} {if_name} {if_addr}"),
                ),
                (
                    CommandKind::Mail,
                    names(
                        "i {auth_type} {auth_authen} {auth_ssf} {auth_author} {mail_mailer} {mail_host} {mail_addr}",
                    ),
                ),
                (
                    CommandKind::Rcpt,
                    names("{rcpt_mailer} {rcpt_host} {rcpt_addr}"),
                ),
                (CommandKind::EndOfMessage, names("{msg_id}")),
            ],
            macro_values: values(&[
                ("j", "mx.example.net"),
                ("{daemon_name}", "MTA"),
                ("{if_name}", "localhost"),
                ("{if_addr}", "127.0.0.1"),
            ]),
            queue_id: "63QAbc0a012345".to_owned(),
            queue_id_timing: QueueIdTiming::Mail,
            hostname: "mx.example.net".to_owned(),
            compress_ipv6: false,
            hidden_received: false,
            body_chunk_size: MAX_BODY_CHUNK,
            timeout: Duration::from_secs(10),
        }
    }

    /// Offers this protocol version. For Postfix the protocol flags follow its
    /// `milter_protocol` setting (§3.2); Sendmail always offers version 6.
    #[must_use]
    pub fn with_version(mut self, version: u32) -> Self {
        self.offer.version = version;
        if self.kind == MtaKind::Postfix {
            self.offer.protocol = match version {
                ..=2 => ProtocolFlags::from_bits(0x7F),
                3 => ProtocolFlags::from_bits(0x17F),
                4 | 5 => ProtocolFlags::from_bits(0x37F),
                _ => ProtocolFlags::V6,
            };
        }
        self
    }

    /// Offers these actions.
    #[must_use]
    pub fn with_actions(mut self, actions: Actions) -> Self {
        self.offer.actions = actions;
        self
    }

    /// Offers these protocol flags.
    #[must_use]
    pub fn with_protocol(mut self, protocol: ProtocolFlags) -> Self {
        self.offer.protocol = protocol;
        self
    }

    /// Sets a fixed macro value (overriding any computed one).
    #[must_use]
    pub fn with_macro(mut self, name: &str, value: &str) -> Self {
        self.macro_values.insert(name.to_owned(), value.to_owned());
        self
    }

    /// Replaces the default macro list sent before `command` (names separated by spaces).
    #[must_use]
    pub fn with_macro_list(mut self, command: CommandKind, list: &str) -> Self {
        self.macro_lists.retain(|(kind, _)| *kind != command);
        self.macro_lists.push((command, names(list)));
        self
    }

    /// Removes the default macro list for `command`: no MACRO packet precedes it.
    #[must_use]
    pub fn without_macro_list(mut self, command: CommandKind) -> Self {
        self.macro_lists.retain(|(kind, _)| *kind != command);
        self
    }

    /// Sets the queue ID.
    #[must_use]
    pub fn with_queue_id(mut self, queue_id: &str) -> Self {
        queue_id.clone_into(&mut self.queue_id);
        self
    }

    /// Sets the body chunk size of the message driver.
    #[must_use]
    pub fn with_body_chunk_size(mut self, size: usize) -> Self {
        self.body_chunk_size = size;
        self
    }

    /// Sets how long to wait for each answer.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The default macro list for `command`, if any.
    #[must_use]
    pub fn macro_list(&self, command: CommandKind) -> Option<&[String]> {
        self.macro_lists
            .iter()
            .find(|(kind, _)| *kind == command)
            .map(|(_, list)| list.as_slice())
    }

    /// The macro names to send before `command`, taking the filter's requests into account,
    /// or `None` when no MACRO packet is sent at all.
    ///
    /// Postfix uses a requested list only when it is non-empty and otherwise falls back to its
    /// default; its EOH list also governs HEADER and its EOM list also governs BODY. Sendmail
    /// uses a requested list even when empty (then no packet), and uses a requested EOM list
    /// only if an EOH list was requested too (and sends no EOM macros if only the EOH list was).
    pub(crate) fn macro_names(
        &self,
        command: CommandKind,
        requests: &[(MacroStage, String)],
    ) -> Option<Vec<String>> {
        let requested = |stage: MacroStage| {
            requests
                .iter()
                .find(|(s, _)| *s == stage)
                .map(|(_, list)| list.as_str())
        };
        let split = |list: &str| -> Vec<String> {
            list.split([' ', ','])
                .filter(|name| !name.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let default = self.macro_list(command).map(<[String]>::to_vec);
        match self.kind {
            MtaKind::Postfix => {
                let stage = MacroStage::for_command(command);
                match stage.and_then(requested) {
                    Some(list) if !split(list).is_empty() => Some(split(list)),
                    _ => default,
                }
            }
            MtaKind::Sendmail => {
                let stage = match command {
                    CommandKind::Header | CommandKind::Body => None,
                    other => MacroStage::for_command(other),
                };
                let chosen = match stage {
                    Some(MacroStage::EndOfMessage)
                        if requested(MacroStage::EndOfHeaders).is_some() =>
                    {
                        Some(
                            requested(MacroStage::EndOfMessage)
                                .map(split)
                                .unwrap_or_default(),
                        )
                    }
                    Some(stage) if stage != MacroStage::EndOfMessage => {
                        requested(stage).map(split).or(default)
                    }
                    _ => default,
                };
                chosen.filter(|list| !list.is_empty())
            }
        }
    }
}

impl Default for Profile {
    /// The Postfix profile.
    fn default() -> Self {
        Self::postfix()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(
        profile: &Profile,
        command: CommandKind,
        requests: &[(MacroStage, &str)],
    ) -> Option<String> {
        let requests: Vec<(MacroStage, String)> = requests
            .iter()
            .map(|(s, l)| (*s, (*l).to_owned()))
            .collect();
        profile
            .macro_names(command, &requests)
            .map(|names| names.join(" "))
    }

    #[test]
    fn postfix_sends_a_list_before_every_command() {
        let postfix = Profile::postfix();
        for command in [
            CommandKind::Connect,
            CommandKind::Helo,
            CommandKind::Mail,
            CommandKind::Rcpt,
            CommandKind::Data,
            CommandKind::Header,
            CommandKind::EndOfHeaders,
            CommandKind::Body,
            CommandKind::EndOfMessage,
            CommandKind::Unknown,
        ] {
            assert!(list(&postfix, command, &[]).is_some(), "{command:?}");
        }
        assert_eq!(
            list(&postfix, CommandKind::Unknown, &[]).as_deref(),
            Some("")
        );
        assert_eq!(list(&postfix, CommandKind::Abort, &[]), None);
    }

    #[test]
    fn postfix_requests_replace_non_empty_stages_including_header_and_body() {
        let postfix = Profile::postfix();
        let requests = [
            (MacroStage::EndOfHeaders, "{a}"),
            (MacroStage::EndOfMessage, "{b},{c}"),
            (MacroStage::Mail, ""),
        ];
        assert_eq!(
            list(&postfix, CommandKind::Header, &requests).as_deref(),
            Some("{a}")
        );
        assert_eq!(
            list(&postfix, CommandKind::EndOfHeaders, &requests).as_deref(),
            Some("{a}")
        );
        assert_eq!(
            list(&postfix, CommandKind::Body, &requests).as_deref(),
            Some("{b} {c}")
        );
        assert!(
            list(&postfix, CommandKind::Mail, &requests)
                .unwrap()
                .starts_with("i {auth_type}")
        );
    }

    #[test]
    fn sendmail_lists_and_requests() {
        let sendmail = Profile::sendmail();
        assert_eq!(list(&sendmail, CommandKind::Helo, &[]), None);
        assert_eq!(list(&sendmail, CommandKind::Data, &[]), None);
        assert_eq!(list(&sendmail, CommandKind::Unknown, &[]), None);
        let requests = [(MacroStage::Helo, "{cipher}"), (MacroStage::Mail, "")];
        assert_eq!(
            list(&sendmail, CommandKind::Helo, &requests).as_deref(),
            Some("{cipher}")
        );
        assert_eq!(list(&sendmail, CommandKind::Mail, &requests), None);
        // The EOM list counts only together with an EOH list.
        let eom_only = [(MacroStage::EndOfMessage, "i")];
        assert_eq!(
            list(&sendmail, CommandKind::EndOfMessage, &eom_only).as_deref(),
            Some("{msg_id}")
        );
        let both = [
            (MacroStage::EndOfHeaders, "j"),
            (MacroStage::EndOfMessage, "i"),
        ];
        assert_eq!(
            list(&sendmail, CommandKind::EndOfMessage, &both).as_deref(),
            Some("i")
        );
        assert_eq!(list(&sendmail, CommandKind::Body, &both), None);
    }

    #[test]
    fn postfix_version_sets_its_protocol_offer() {
        assert_eq!(
            Profile::postfix().with_version(2).offer.protocol.bits(),
            0x7F
        );
        assert_eq!(
            Profile::postfix().with_version(3).offer.protocol.bits(),
            0x17F
        );
        assert_eq!(
            Profile::sendmail().with_version(2).offer.protocol,
            ProtocolFlags::V6
        );
    }
}
