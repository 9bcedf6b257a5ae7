//! The message as the MTA would deliver it after applying a filter's modifications.

use super::message::{DeliveredHeader, to_crlf};
use super::profile::MtaKind;
use super::reply::Modification;

/// A recipient of the delivered message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveredRecipient {
    /// The address as given in RCPT or by the filter.
    pub address: String,
    /// ESMTP parameters, one per element.
    pub args: Vec<String>,
}

/// The message as the MTA would deliver it: envelope and content after the modifications.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// The envelope sender.
    pub sender: String,
    /// ESMTP parameters of the sender.
    pub sender_args: Vec<String>,
    /// The recipients after additions and deletions.
    pub recipients: Vec<DeliveredRecipient>,
    /// The header fields in delivery order, including the MTA's own `Received:` when the
    /// profile has one.
    pub headers: Vec<DeliveredHeader>,
    /// The body with CRLF line ends.
    pub body: Vec<u8>,
}

impl Delivered {
    /// The first value of the header `name` (case-insensitive), exactly as delivered after
    /// the colon: the leading space the MTA adds (or the whitespace the filter sent with
    /// `HDR_LEADSPC`) is kept, so a caller can check it. Folded lines are joined with a bare LF
    /// ([`to_bytes`](Self::to_bytes) renders CRLF). For the value without leading whitespace
    /// use [`DeliveredHeader::trimmed_value`] on [`headers`](Self::headers).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// Every value of the header `name` (case-insensitive), in delivery order, each exactly
    /// as delivered after the colon (see [`header`](Self::header)).
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// The recipient addresses.
    #[must_use]
    pub fn recipient_addresses(&self) -> Vec<&str> {
        self.recipients.iter().map(|r| r.address.as_str()).collect()
    }

    /// The message as RFC 5322 bytes with CRLF line ends (`Name:value`, as stored).
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for header in &self.headers {
            out.extend_from_slice(header.name.as_bytes());
            out.push(b':');
            out.extend_from_slice(&to_crlf(header.value.as_bytes(), false));
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// One header in the MTA's working list.
#[derive(Clone, Debug)]
struct Slot {
    field: DeliveredHeader,
    /// The MTA's own header, never shown to the filter and not counted by CHGHEADER.
    hidden: bool,
    /// Sendmail marks deleted headers instead of removing them, so indexes stay put.
    deleted: bool,
}

/// Applies modifications the way the profile's MTA does; see the module docs for the rules.
pub(crate) struct Editor {
    kind: MtaKind,
    leading_space: bool,
    slots: Vec<Slot>,
    delivered: Delivered,
}

impl Editor {
    pub(crate) fn new(
        kind: MtaKind,
        leading_space: bool,
        hidden: Option<DeliveredHeader>,
        delivered: Delivered,
    ) -> Self {
        let mut slots: Vec<Slot> = hidden
            .into_iter()
            .map(|field| Slot {
                field,
                hidden: true,
                deleted: false,
            })
            .collect();
        slots.extend(delivered.headers.iter().cloned().map(|field| Slot {
            field,
            hidden: false,
            deleted: false,
        }));
        Self {
            kind,
            leading_space,
            slots,
            delivered,
        }
    }

    fn stored_value(&self, value: &str) -> String {
        if self.leading_space {
            value.to_owned()
        } else {
            format!(" {value}")
        }
    }

    fn new_slot(&self, name: &str, value: &str) -> Slot {
        Slot {
            field: DeliveredHeader {
                name: name.to_owned(),
                value: self.stored_value(value),
            },
            hidden: false,
            deleted: false,
        }
    }

    pub(crate) fn apply(&mut self, modification: &Modification) {
        match modification {
            Modification::AddHeader { name, value } => {
                let slot = self.new_slot(name, value);
                self.slots.push(slot);
            }
            Modification::InsertHeader { index, name, value } => {
                let at = (*index as usize).min(self.slots.len());
                let slot = self.new_slot(name, value);
                self.slots.insert(at, slot);
            }
            Modification::ChangeHeader { index, name, value } => {
                self.change_header(*index, name, value);
            }
            Modification::AddRcpt(rcpt) => self.delivered.recipients.push(DeliveredRecipient {
                address: rcpt.clone(),
                args: Vec::new(),
            }),
            Modification::AddRcptWithArgs { rcpt, args } => {
                self.delivered.recipients.push(DeliveredRecipient {
                    address: rcpt.clone(),
                    args: split_args(args.as_deref()),
                });
            }
            Modification::DeleteRcpt(rcpt) => {
                let target = normalize_address(rcpt);
                self.delivered
                    .recipients
                    .retain(|r| normalize_address(&r.address) != target);
            }
            Modification::ChangeFrom { sender, args } => {
                self.delivered.sender.clone_from(sender);
                self.delivered.sender_args = split_args(args.as_deref());
            }
            Modification::ReplaceBody(body) => self.delivered.body = to_crlf(body, false),
            Modification::Quarantine(_) => {}
        }
    }

    fn change_header(&mut self, index: u32, name: &str, value: &str) {
        let wanted = index.max(1) as usize;
        let position = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| !slot.hidden && slot.field.name.eq_ignore_ascii_case(name))
            .nth(wanted - 1)
            .map(|(position, _)| position);
        match (position, value.is_empty()) {
            (Some(position), true) => match self.kind {
                MtaKind::Postfix => {
                    self.slots.remove(position);
                }
                MtaKind::Sendmail => {
                    if let Some(slot) = self.slots.get_mut(position) {
                        slot.deleted = true;
                    }
                }
            },
            (Some(position), false) => {
                let stored = self.stored_value(value);
                if let Some(slot) = self.slots.get_mut(position) {
                    slot.field.value = stored;
                    slot.deleted = false;
                }
            }
            (None, true) => {}
            (None, false) => {
                let slot = self.new_slot(name, value);
                self.slots.push(slot);
            }
        }
    }

    pub(crate) fn finish(mut self) -> Delivered {
        self.delivered.headers = self
            .slots
            .into_iter()
            .filter(|slot| !slot.deleted)
            .map(|slot| slot.field)
            .collect();
        self.delivered
    }
}

fn split_args(args: Option<&str>) -> Vec<String> {
    args.map(|a| a.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// An address for comparison: angle brackets and surrounding space stripped, the domain
/// lower-cased (the local part is case-sensitive).
pub(crate) fn normalize_address(address: &str) -> String {
    let trimmed = address.trim();
    let bare = trimmed
        .strip_prefix('<')
        .and_then(|a| a.strip_suffix('>'))
        .unwrap_or(trimmed);
    match bare.rsplit_once('@') {
        Some((local, domain)) => format!("{local}@{}", domain.to_ascii_lowercase()),
        None => bare.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, value: &str) -> DeliveredHeader {
        DeliveredHeader {
            name: name.into(),
            value: value.into(),
        }
    }

    fn editor(kind: MtaKind, hidden: bool) -> Editor {
        let delivered = Delivered {
            sender: "<a@example.com>".into(),
            sender_args: Vec::new(),
            recipients: vec![DeliveredRecipient {
                address: "<b@Example.NET>".into(),
                args: Vec::new(),
            }],
            headers: vec![field("X-A", " 1"), field("Y", " y"), field("x-a", " 2")],
            body: b"hi\r\n".to_vec(),
        };
        Editor::new(
            kind,
            false,
            hidden.then(|| field("Received", " hidden")),
            delivered,
        )
    }

    fn names(delivered: &Delivered) -> Vec<String> {
        delivered
            .headers
            .iter()
            .map(|h| format!("{}:{}", h.name, h.value))
            .collect()
    }

    #[test]
    fn postfix_indexes_shift_after_delete() {
        let mut e = editor(MtaKind::Postfix, true);
        e.apply(&Modification::ChangeHeader {
            index: 1,
            name: "X-A".into(),
            value: String::new(),
        });
        e.apply(&Modification::ChangeHeader {
            index: 1,
            name: "X-A".into(),
            value: "new".into(),
        });
        assert_eq!(names(&e.finish()), ["Received: hidden", "Y: y", "x-a: new"]);
    }

    #[test]
    fn sendmail_indexes_stay_after_delete() {
        let mut e = editor(MtaKind::Sendmail, false);
        e.apply(&Modification::ChangeHeader {
            index: 1,
            name: "X-A".into(),
            value: String::new(),
        });
        e.apply(&Modification::ChangeHeader {
            index: 2,
            name: "X-A".into(),
            value: "new".into(),
        });
        assert_eq!(names(&e.finish()), ["Y: y", "x-a: new"]);
    }

    #[test]
    fn change_past_the_end_adds_and_empty_past_the_end_does_nothing() {
        let mut e = editor(MtaKind::Postfix, false);
        e.apply(&Modification::ChangeHeader {
            index: 5,
            name: "X-A".into(),
            value: String::new(),
        });
        e.apply(&Modification::ChangeHeader {
            index: 3,
            name: "X-A".into(),
            value: "3".into(),
        });
        assert_eq!(names(&e.finish()), ["X-A: 1", "Y: y", "x-a: 2", "X-A: 3"]);
    }

    #[test]
    fn insert_counts_the_hidden_received() {
        let mut e = editor(MtaKind::Postfix, true);
        e.apply(&Modification::InsertHeader {
            index: 0,
            name: "Top".into(),
            value: "t".into(),
        });
        e.apply(&Modification::InsertHeader {
            index: 2,
            name: "Second".into(),
            value: "s".into(),
        });
        e.apply(&Modification::InsertHeader {
            index: 99,
            name: "Last".into(),
            value: "l".into(),
        });
        assert_eq!(
            names(&e.finish()),
            [
                "Top: t",
                "Received: hidden",
                "Second: s",
                "X-A: 1",
                "Y: y",
                "x-a: 2",
                "Last: l"
            ]
        );
    }

    #[test]
    fn recipients_and_sender() {
        let mut e = editor(MtaKind::Postfix, false);
        e.apply(&Modification::DeleteRcpt("b@example.net".into()));
        e.apply(&Modification::AddRcptWithArgs {
            rcpt: "<c@example.org>".into(),
            args: Some("NOTIFY=NEVER ORCPT=rfc822;c@example.org".into()),
        });
        e.apply(&Modification::ChangeFrom {
            sender: "<new@example.com>".into(),
            args: None,
        });
        let d = e.finish();
        assert_eq!(d.recipient_addresses(), ["<c@example.org>"]);
        assert_eq!(d.recipients[0].args.len(), 2);
        assert_eq!(d.sender, "<new@example.com>");
    }

    #[test]
    fn local_part_stays_case_sensitive() {
        assert_eq!(normalize_address("<Bob@EXAMPLE.com>"), "Bob@example.com");
        assert_ne!(
            normalize_address("bob@example.com"),
            normalize_address("Bob@example.com")
        );
    }

    #[test]
    fn renders_crlf() {
        let mut e = editor(MtaKind::Postfix, false);
        e.apply(&Modification::AddHeader {
            name: "Z".into(),
            value: "a\n\tb".into(),
        });
        e.apply(&Modification::ReplaceBody(b"x\ny".to_vec()));
        let bytes = e.finish().to_bytes();
        assert_eq!(
            bytes,
            b"X-A: 1\r\nY: y\r\nx-a: 2\r\nZ: a\r\n\tb\r\n\r\nx\r\ny".to_vec()
        );
    }
}
