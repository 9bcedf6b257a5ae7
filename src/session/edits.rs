//! The edit queue: modifications checked when queued and sent at end of message.
//!
//! Flush order (one write, before the verdict): sender change; recipient removals, then
//! additions; header inserts (highest position first, so earlier inserts do not shift later
//! ones); header changes and deletions (highest per-name index first, so a deletion does not
//! shift the index of another change on either MTA; each index raised by the inserts of the
//! same name placed above the target, which both MTAs count); header additions in queue
//! order; the replacement body as one unbroken run of chunks; quarantine.
//!
//! Header positions are sent as the MTA counts them (see [`HeaderLayout`]), so that
//! [`HeaderPosition`] gives the same visible result on Postfix and Sendmail.

use super::error::{Error, Unavailable};
use super::text::Text;
use crate::proto::{
    Actions, EncodeError, MAX_BODY_CHUNK, MAX_RESPONSE_PAYLOAD, Response, WireStr,
    encode_replace_body,
};

/// Most edits one message may queue; a bound on what a misbehaving filter can pile up.
pub const MAX_QUEUED_EDITS: usize = 100_000;

/// A header the filter was shown, by position; stable for the rest of the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HeaderHandle {
    pub(crate) message: u64,
    pub(crate) position: u32,
}

impl HeaderHandle {
    /// 0-based position among all headers the filter was shown.
    #[must_use]
    pub fn position(&self) -> usize {
        self.position as usize
    }
}

/// Where to insert a header. Verified on Postfix 3.7 and Sendmail 8.17 (`scripts/e2e`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderPosition {
    /// Above every header, the MTA's own `Received:` included (where DKIM signatures and
    /// `Authentication-Results:` go).
    Top,
    /// Below every header (the same as adding one).
    End,
    /// Just above this header.
    Before(HeaderHandle),
    /// Just below this header.
    After(HeaderHandle),
}

/// INSHEADER index that appends on both MTAs (Sendmail reads the index as a signed int:
/// `u32::MAX` would be -1, the top).
pub(crate) const END_INDEX: u32 = 0x7fff_fffe;

/// How the MTA numbers INSHEADER positions (found out with `scripts/e2e`, NOTES.md
/// "Header positions").
///
/// Both MTAs count headers the filter never sees above the first one it saw; index 0 is the
/// top of the header block on both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeaderLayout {
    /// Index `n` puts the header below the first `n` headers, Postfix's own `Received:`
    /// counted as the first: just above the filter's header `p` is `p + 1`. ADDHEADER appends.
    Postfix,
    /// Index `n` puts the header below entry `n` (0-based) of Sendmail's header list, which
    /// starts with the nine header templates of a stock `sendmail.cf` (`Return-Path`,
    /// `Received`, `Resent-Date`, `Date`, `Resent-From`, `From`, `Full-Name`,
    /// `Resent-Message-Id`, `Message-Id`; those the message does not use stay invisible):
    /// just above the filter's header `p` is `p + 8`. ADDHEADER puts a header whose name is
    /// already present above the first of that name, so the end is reached with INSHEADER.
    Sendmail {
        /// `H` lines in the site's `sendmail.cf` ([`SENDMAIL_HEADER_TEMPLATES`] when stock).
        templates: u32,
    },
    /// An MTA that is neither (a test harness such as miltertest, which sends no macros of
    /// its own): the libmilter documentation read literally, no hidden headers: just above
    /// the filter's header `p` is `p`; ADDHEADER appends.
    Plain,
}

impl HeaderLayout {
    /// The index that inserts just above the filter's header at `position`.
    fn before_seen(self, position: u32) -> u32 {
        let base = match self {
            Self::Postfix => 1,
            Self::Sendmail { templates } => templates.saturating_sub(1),
            Self::Plain => 0,
        };
        position.saturating_add(base).min(END_INDEX)
    }
}

/// Header templates (`H` lines) in a `sendmail.cf` built from the stock cf.m4 (proto.m4).
pub const SENDMAIL_HEADER_TEMPLATES: u32 = 9;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Edit {
    ChangeFrom {
        sender: Text,
        args: Option<Text>,
    },
    DeleteRcpt(Text),
    AddRcpt {
        rcpt: Text,
        args: Option<Text>,
    },
    /// `before`: the 0-based position (among the headers the filter saw) of the header the
    /// new one goes above; `None`: the very top. The queue position breaks ties.
    InsertHeader {
        before: Option<u32>,
        name: Text,
        value: Text,
    },
    /// `index`: 1-based among the seen headers called `name`; `position`: 0-based among all
    /// seen headers.
    ChangeHeader {
        index: u32,
        position: u32,
        name: Text,
        value: Text,
    },
    AddHeader {
        name: Text,
        value: Text,
    },
    Quarantine(Text),
}

impl Edit {
    /// The payload bytes of the packet this edit becomes: each text NUL-terminated, plus
    /// the 4-byte index of CHGHEADER and INSHEADER.
    fn payload_len(&self) -> usize {
        let field = |text: &Text| text.as_bytes().len() + 1;
        let optional = |text: &Option<Text>| text.as_ref().map_or(0, field);
        match self {
            Self::ChangeFrom { sender, args } => field(sender) + optional(args),
            Self::AddRcpt { rcpt, args } => field(rcpt) + optional(args),
            Self::DeleteRcpt(text) | Self::Quarantine(text) => field(text),
            Self::AddHeader { name, value } => field(name) + field(value),
            Self::InsertHeader { name, value, .. } | Self::ChangeHeader { name, value, .. } => {
                4 + field(name) + field(value)
            }
        }
    }
}

/// The storage of an emptied edit queue, handed from one message's queue to the next so
/// that steady state does not allocate the list anew.
#[derive(Debug, Default)]
pub(crate) struct EditStorage(Vec<Edit>);

/// Edits queued for the current message.
#[derive(Debug)]
pub(crate) struct EditQueue {
    allowed: Actions,
    /// `HEADER_LEADING_SPACE` was negotiated: the MTA writes header values exactly as sent,
    /// so the space after the colon is the library's to supply.
    leading_space: bool,
    edits: Vec<Edit>,
    body: Option<Vec<u8>>,
}

impl EditQueue {
    pub(crate) fn new(allowed: Actions) -> Self {
        Self::with_storage(allowed, EditStorage::default())
    }

    /// An empty queue in the storage an earlier message's queue left.
    pub(crate) fn with_storage(allowed: Actions, storage: EditStorage) -> Self {
        let EditStorage(mut edits) = storage;
        edits.clear();
        Self {
            allowed,
            leading_space: false,
            edits,
            body: None,
        }
    }

    /// The queue's list storage, emptied, for the next message's queue.
    pub(crate) fn into_storage(self) -> EditStorage {
        let mut edits = self.edits;
        edits.clear();
        EditStorage(edits)
    }

    /// The edits of several filters as one queue, in filter order over the message as the
    /// MTA sent it: every added or inserted header and every recipient added or removed (an
    /// identical recipient edit once); for a header two filters change or delete, for the
    /// sender, the body and the quarantine reason, the last filter that set one decides.
    pub(crate) fn merged<'a>(queues: impl Iterator<Item = &'a EditQueue>) -> Self {
        let mut merged = Self::new(Actions::EMPTY);
        let all: Vec<&EditQueue> = queues.collect();
        for (i, queue) in all.iter().enumerate() {
            merged.allowed |= queue.allowed;
            merged.leading_space |= queue.leading_space;
            let later = all.get(i + 1..).unwrap_or_default();
            let overridden = |edit: &Edit| {
                later
                    .iter()
                    .flat_map(|q| &q.edits)
                    .any(|other| match (edit, other) {
                        (
                            Edit::ChangeHeader { position: a, .. },
                            Edit::ChangeHeader { position: b, .. },
                        ) => a == b,
                        (Edit::ChangeFrom { .. }, Edit::ChangeFrom { .. })
                        | (Edit::Quarantine(_), Edit::Quarantine(_)) => true,
                        _ => false,
                    })
            };
            for edit in &queue.edits {
                let repeated = matches!(edit, Edit::AddRcpt { .. } | Edit::DeleteRcpt(_))
                    && merged.edits.contains(edit);
                if !overridden(edit) && !repeated {
                    merged.edits.push(edit.clone());
                }
            }
            if let Some(body) = &queue.body {
                merged.body = Some(body.clone());
            }
        }
        merged
    }

    /// Permits only `allowed` actions from now on.
    pub(crate) fn restrict(&mut self, allowed: Actions) {
        self.allowed = self.allowed & allowed;
    }

    /// A queue for a connection where `HEADER_LEADING_SPACE` was negotiated (`exact`): header
    /// values get the separator space the MTA otherwise adds itself.
    pub(crate) fn with_leading_space(mut self, exact: bool) -> Self {
        self.leading_space = exact;
        self
    }

    /// Checks a header value and, where the MTA adds no separator, puts the space after the
    /// colon in front, so a value means the same whatever was negotiated.
    fn checked_value(&self, value: &[u8]) -> Result<Text, Error> {
        let value = header_value(value)?;
        if !self.leading_space || value.is_empty() {
            return Ok(value);
        }
        let mut spaced = Vec::with_capacity(value.as_bytes().len() + 1);
        spaced.push(b' ');
        spaced.extend_from_slice(value.as_bytes());
        Ok(Text::new(spaced))
    }

    /// The kind of every queued edit (`add_header`, `replace_body`, …), for metrics.
    pub(crate) fn kinds(&self) -> impl Iterator<Item = &'static str> + '_ {
        let edits = self.edits.iter().map(|edit| match edit {
            Edit::ChangeFrom { .. } => "change_from",
            Edit::DeleteRcpt(_) => "delete_rcpt",
            Edit::AddRcpt { .. } => "add_rcpt",
            Edit::InsertHeader { .. } => "insert_header",
            // An empty value deletes the header.
            Edit::ChangeHeader { value, .. } if value.as_bytes().is_empty() => "delete_header",
            Edit::ChangeHeader { .. } => "change_header",
            Edit::AddHeader { .. } => "add_header",
            Edit::Quarantine(_) => "quarantine",
        });
        edits.chain(self.body.as_ref().map(|_| "replace_body"))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.edits.is_empty() && self.body.is_none()
    }

    fn require(&self, action: Actions) -> Result<(), Error> {
        if self.allowed.contains(action) {
            Ok(())
        } else {
            Err(Error::Unavailable(Unavailable::NotNegotiated(action)))
        }
    }

    /// Queues `edit` if its packet fits the protocol's payload limit (checked now, so the
    /// caller learns of it, rather than at end of message where it would cost every edit).
    fn push(&mut self, edit: Edit) -> Result<(), Error> {
        let len = edit.payload_len();
        if len > MAX_RESPONSE_PAYLOAD {
            return Err(Error::from(EncodeError::TooLong {
                len,
                max: MAX_RESPONSE_PAYLOAD,
            }));
        }
        if self.edits.len() >= MAX_QUEUED_EDITS {
            return Err(Error::from(EncodeError::TooLong {
                len: self.edits.len() + 1,
                max: MAX_QUEUED_EDITS,
            }));
        }
        self.edits.push(edit);
        Ok(())
    }

    pub(crate) fn add_header(&mut self, name: &[u8], value: &[u8]) -> Result<(), Error> {
        self.require(Actions::ADD_HEADERS)?;
        let (name, value) = (header_name(name)?, self.checked_value(value)?);
        self.push(Edit::AddHeader { name, value })
    }

    /// Inserts above the seen header at position `before` (`None`: at the very top).
    pub(crate) fn insert_header(
        &mut self,
        before: Option<u32>,
        name: &[u8],
        value: &[u8],
    ) -> Result<(), Error> {
        self.require(Actions::ADD_HEADERS)?;
        let (name, value) = (header_name(name)?, self.checked_value(value)?);
        self.push(Edit::InsertHeader {
            before,
            name,
            value,
        })
    }

    /// Changes (or with an empty value deletes) the `index`-th header called `name`, the
    /// seen header at `position`.
    pub(crate) fn change_header(
        &mut self,
        index: u32,
        position: u32,
        name: &[u8],
        value: &[u8],
    ) -> Result<(), Error> {
        self.require(Actions::CHANGE_HEADERS)?;
        let (name, value) = (header_name(name)?, self.checked_value(value)?);
        self.push(Edit::ChangeHeader {
            index,
            position,
            name,
            value,
        })
    }

    /// How many inserted headers called `name` land above the seen header at `position`
    /// (both MTAs count them in CHGHEADER indexes).
    fn inserted_above(&self, name: &Text, position: u32) -> u32 {
        let count = self
            .edits
            .iter()
            .filter(|edit| match edit {
                Edit::InsertHeader {
                    before, name: n, ..
                } => {
                    n.as_bytes().eq_ignore_ascii_case(name.as_bytes())
                        && before.is_none_or(|b| b <= position)
                }
                _ => false,
            })
            .count();
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    pub(crate) fn change_from(&mut self, sender: &[u8], args: Option<&[u8]>) -> Result<(), Error> {
        self.require(Actions::CHANGE_FROM)?;
        let sender = wire_text(sender, "sender", false)?;
        let args = args
            .map(|a| wire_text(a, "ESMTP arguments", false))
            .transpose()?;
        self.push(Edit::ChangeFrom { sender, args })
    }

    pub(crate) fn add_rcpt(&mut self, rcpt: &[u8], args: Option<&[u8]>) -> Result<(), Error> {
        self.require(if args.is_some() {
            Actions::ADD_RCPT_WITH_ARGS
        } else {
            Actions::ADD_RCPT
        })?;
        let rcpt = wire_text(rcpt, "recipient", true)?;
        let args = args
            .map(|a| wire_text(a, "ESMTP arguments", false))
            .transpose()?;
        self.push(Edit::AddRcpt { rcpt, args })
    }

    pub(crate) fn delete_rcpt(&mut self, rcpt: &[u8]) -> Result<(), Error> {
        self.require(Actions::DELETE_RCPT)?;
        let rcpt = wire_text(rcpt, "recipient", true)?;
        self.push(Edit::DeleteRcpt(rcpt))
    }

    pub(crate) fn quarantine(&mut self, reason: &[u8]) -> Result<(), Error> {
        self.require(Actions::QUARANTINE)?;
        let reason = wire_text(reason, "quarantine reason", true)?;
        self.push(Edit::Quarantine(reason))
    }

    /// Starts a replacement body, dropping any earlier one.
    pub(crate) fn replace_body(&mut self, body: &[u8]) -> Result<(), Error> {
        self.require(Actions::CHANGE_BODY)?;
        let buffer = self.body.get_or_insert_with(Vec::new);
        buffer.clear();
        buffer.extend_from_slice(body);
        Ok(())
    }

    /// Appends to the replacement body, starting one if there is none.
    pub(crate) fn append_body(&mut self, piece: &[u8]) -> Result<(), Error> {
        self.require(Actions::CHANGE_BODY)?;
        self.body
            .get_or_insert_with(Vec::new)
            .extend_from_slice(piece);
        Ok(())
    }

    /// Appends every queued edit, in flush order, to `dst`, with header positions as the
    /// MTA of `layout` counts them.
    pub(crate) fn encode(
        &self,
        dst: &mut Vec<u8>,
        layout: HeaderLayout,
    ) -> Result<(), EncodeError> {
        fn w(t: &Text) -> WireStr<'_> {
            WireStr::new(t.as_bytes())
        }
        fn opt(t: Option<&Text>) -> Option<WireStr<'_>> {
            t.map(w)
        }
        let insert_index = |before: Option<u32>| before.map_or(0, |p| layout.before_seen(p));
        // A single edit (a tagger's header, say) needs no ordering, nor its allocation.
        let mut ordered: Vec<(usize, &Edit)> = match self.edits.as_slice() {
            [] | [_] => Vec::new(),
            edits => edits.iter().enumerate().collect(),
        };
        ordered.sort_by(|(ai, a), (bi, b)| {
            rank(a).cmp(&rank(b)).then_with(|| match (a, b) {
                (Edit::InsertHeader { before: x, .. }, Edit::InsertHeader { before: y, .. }) => {
                    insert_index(*y).cmp(&insert_index(*x)).then(bi.cmp(ai))
                }
                // Highest index first, so a delete does not renumber those still to come;
                // edits of one header keep queue order, so the last one queued wins.
                (Edit::ChangeHeader { index: x, .. }, Edit::ChangeHeader { index: y, .. }) => {
                    y.cmp(x).then(ai.cmp(bi))
                }
                _ => ai.cmp(bi),
            })
        });
        // The single edit left out of `ordered`, if that is what there is.
        let single = match self.edits.as_slice() {
            [only] => Some(only),
            _ => None,
        };
        let in_order = || {
            single
                .into_iter()
                .chain(ordered.iter().map(|(_, edit)| *edit))
        };
        for edit in in_order() {
            if matches!(edit, Edit::Quarantine(_)) {
                continue;
            }
            let response = match edit {
                Edit::ChangeFrom { sender, args } => Response::ChangeFrom {
                    sender: w(sender),
                    args: opt(args.as_ref()),
                },
                Edit::DeleteRcpt(rcpt) => Response::DeleteRcpt(w(rcpt)),
                Edit::AddRcpt { rcpt, args: None } => Response::AddRcpt(w(rcpt)),
                Edit::AddRcpt { rcpt, args } => Response::AddRcptWithArgs {
                    rcpt: w(rcpt),
                    args: opt(args.as_ref()),
                },
                Edit::InsertHeader {
                    before,
                    name,
                    value,
                } => Response::InsertHeader {
                    index: insert_index(*before),
                    name: w(name),
                    value: w(value),
                },
                Edit::ChangeHeader {
                    index,
                    position,
                    name,
                    value,
                } => Response::ChangeHeader {
                    index: index.saturating_add(self.inserted_above(name, *position)),
                    name: w(name),
                    value: w(value),
                },
                Edit::AddHeader { name, value } => match layout {
                    HeaderLayout::Postfix | HeaderLayout::Plain => Response::AddHeader {
                        name: w(name),
                        value: w(value),
                    },
                    HeaderLayout::Sendmail { .. } => Response::InsertHeader {
                        index: END_INDEX,
                        name: w(name),
                        value: w(value),
                    },
                },
                Edit::Quarantine(_) => continue,
            };
            response.encode(dst)?;
        }
        if let Some(body) = &self.body {
            encode_replace_body(body, MAX_BODY_CHUNK, dst)?;
        }
        for edit in in_order() {
            if let Edit::Quarantine(reason) = edit {
                Response::Quarantine(w(reason)).encode(dst)?;
            }
        }
        Ok(())
    }
}

fn rank(edit: &Edit) -> u8 {
    match edit {
        Edit::ChangeFrom { .. } => 0,
        Edit::DeleteRcpt(_) => 1,
        Edit::AddRcpt { .. } => 2,
        Edit::InsertHeader { .. } => 3,
        Edit::ChangeHeader { .. } => 4,
        Edit::AddHeader { .. } => 5,
        Edit::Quarantine(_) => 6,
    }
}

fn wire_text(bytes: &[u8], field: &'static str, non_empty: bool) -> Result<Text, Error> {
    if non_empty && bytes.is_empty() {
        return Err(EncodeError::Empty { field }.into());
    }
    if bytes.contains(&0) {
        return Err(EncodeError::InteriorNul { field }.into());
    }
    Ok(Text::copy_from(bytes))
}

/// A header name: printable ASCII without colon or space, as RFC 5322 requires.
fn header_name(name: &[u8]) -> Result<Text, Error> {
    if name.is_empty() {
        return Err(EncodeError::Empty {
            field: "header name",
        }
        .into());
    }
    if !name.iter().all(|&b| (33..=126).contains(&b) && b != b':') {
        return Err(EncodeError::InvalidByte {
            field: "header name",
        }
        .into());
    }
    Ok(Text::copy_from(name))
}

/// A header value: CRLF line breaks become LF (the MTA adds CR on output), and every line
/// break must be followed by a space or tab, so a value can never start a new header.
fn header_value(value: &[u8]) -> Result<Text, Error> {
    let invalid = || {
        Error::from(EncodeError::InvalidByte {
            field: "header value",
        })
    };
    let mut out = Vec::with_capacity(value.len());
    let mut bytes = value.iter().copied().peekable();
    while let Some(byte) = bytes.next() {
        match byte {
            0 => {
                return Err(EncodeError::InteriorNul {
                    field: "header value",
                }
                .into());
            }
            b'\r' if bytes.peek() == Some(&b'\n') => {}
            b'\r' => return Err(invalid()),
            b'\n' => {
                if !matches!(bytes.peek(), Some(b' ' | b'\t')) {
                    return Err(invalid());
                }
                out.push(b'\n');
            }
            other => out.push(other),
        }
    }
    Ok(Text::new(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{FrameDecoder, Response};
    use crate::session::error::Misuse;

    fn responses(queue: &EditQueue) -> Vec<String> {
        responses_for(queue, HeaderLayout::Postfix)
    }

    fn responses_for(queue: &EditQueue, layout: HeaderLayout) -> Vec<String> {
        let mut wire = Vec::new();
        queue.encode(&mut wire, layout).unwrap();
        let mut decoder = FrameDecoder::new();
        decoder.push(&wire);
        let mut out = Vec::new();
        while let Some(frame) = decoder.decode().unwrap() {
            out.push(format!("{:?}", Response::decode_frame(&frame).unwrap()));
        }
        out
    }

    #[test]
    fn edits_need_their_action() {
        let mut queue = EditQueue::new(Actions::ADD_HEADERS);
        assert!(queue.add_header(b"X-A", b"1").is_ok());
        assert!(matches!(
            queue.change_header(1, 0, b"Subject", b"x"),
            Err(Error::Unavailable(Unavailable::NotNegotiated(a))) if a == Actions::CHANGE_HEADERS
        ));
        assert!(matches!(
            queue.add_rcpt(b"<a@b>", Some(b"NOTIFY=NEVER")),
            Err(Error::Unavailable(Unavailable::NotNegotiated(_)))
        ));
        assert!(matches!(
            queue.replace_body(b"x"),
            Err(Error::Unavailable(Unavailable::NotNegotiated(_)))
        ));
    }

    #[test]
    fn an_edit_too_large_for_one_packet_is_refused_when_queued() {
        let mut queue = EditQueue::new(Actions::V6).with_leading_space(true);
        // CHGHEADER carries a 4-byte index, the name and the value (with the leading space
        // the queue adds), each NUL-terminated: 65,535 bytes at most.
        let fits = vec![b'x'; 65_535 - 4 - 8 - 2];
        queue.change_header(1, 0, b"Subject", &fits).unwrap();
        let mut over = fits.clone();
        over.push(b'x');
        assert!(matches!(
            queue.change_header(1, 0, b"Subject", &over),
            Err(Error::Misuse(Misuse::InvalidValue(EncodeError::TooLong {
                len: 65_536,
                max: 65_535
            })))
        ));
        assert!(queue.add_header(b"X-Big", &vec![b'x'; 70_000]).is_err());
        assert!(queue.quarantine(&vec![b'q'; 70_000]).is_err());
        // What was refused left the rest queued, and what was queued encodes.
        assert_eq!(responses(&queue).len(), 1);
    }

    #[test]
    fn a_single_edit_of_any_kind_is_sent() {
        let mut queue = EditQueue::new(Actions::V6);
        queue.quarantine(b"held").unwrap();
        assert_eq!(responses(&queue), vec![r#"Quarantine("held")"#]);
        let mut queue = EditQueue::new(Actions::V6);
        queue.add_header(b"X-A", b"1").unwrap();
        assert_eq!(
            responses(&queue),
            vec![r#"AddHeader { name: "X-A", value: "1" }"#]
        );
    }

    #[test]
    fn edits_of_one_header_go_out_in_queue_order() {
        let mut queue = EditQueue::new(Actions::V6);
        queue.change_header(1, 0, b"Subject", b"a").unwrap();
        queue.change_header(1, 0, b"Subject", b"b").unwrap();
        queue.change_header(1, 0, b"Subject", b"").unwrap();
        queue.change_header(2, 3, b"Subject", b"c").unwrap();
        assert_eq!(
            responses(&queue),
            vec![
                r#"ChangeHeader { index: 2, name: "Subject", value: "c" }"#,
                r#"ChangeHeader { index: 1, name: "Subject", value: "a" }"#,
                r#"ChangeHeader { index: 1, name: "Subject", value: "b" }"#,
                r#"ChangeHeader { index: 1, name: "Subject", value: "" }"#,
            ]
        );
    }

    #[test]
    fn header_values_are_checked_and_crlf_becomes_lf() {
        let mut queue = EditQueue::new(Actions::V6);
        assert!(queue.add_header(b"X-Bad", b"a\r\nX-Injected: 1").is_err());
        assert!(queue.add_header(b"X-Bad", b"a\rb").is_err());
        assert!(queue.add_header(b"Bad Name", b"x").is_err());
        assert!(queue.add_header(b"", b"x").is_err());
        queue.add_header(b"X-Folded", b"a\r\n\tb").unwrap();
        assert_eq!(
            responses(&queue),
            vec![r#"AddHeader { name: "X-Folded", value: "a\n\tb" }"#]
        );
    }

    #[test]
    fn with_leading_space_the_separator_is_supplied() {
        let mut queue = EditQueue::new(Actions::V6).with_leading_space(true);
        queue.add_header(b"X-A", b"3").unwrap();
        queue.change_header(1, 0, b"X-B", b"").unwrap();
        assert_eq!(
            responses(&queue),
            vec![
                r#"ChangeHeader { index: 1, name: "X-B", value: "" }"#,
                r#"AddHeader { name: "X-A", value: " 3" }"#,
            ]
        );
    }

    #[test]
    fn flush_order_is_documented_order() {
        let mut queue = EditQueue::new(Actions::V6);
        queue.quarantine(b"held").unwrap();
        queue.add_header(b"X-Last", b"1").unwrap();
        queue.append_body(b"new").unwrap();
        queue.change_header(1, 0, b"Received", b"").unwrap();
        queue.change_header(2, 1, b"Received", b"").unwrap();
        queue.insert_header(None, b"X-Top", b"1").unwrap();
        queue.insert_header(Some(2), b"X-Three", b"1").unwrap();
        queue.add_rcpt(b"<new@example.com>", None).unwrap();
        queue.delete_rcpt(b"<old@example.com>").unwrap();
        queue
            .change_from(b"<s@example.com>", Some(b"RET=HDRS"))
            .unwrap();
        let kinds: Vec<String> = responses(&queue)
            .iter()
            .map(|r| r.split([' ', '(']).next().unwrap().to_owned())
            .collect();
        assert_eq!(
            kinds,
            [
                "ChangeFrom",
                "DeleteRcpt",
                "AddRcpt",
                "InsertHeader",
                "InsertHeader",
                "ChangeHeader",
                "ChangeHeader",
                "AddHeader",
                "ReplaceBody",
                "Quarantine"
            ]
        );
        let all = responses(&queue);
        assert!(all[3].contains("index: 3") && all[4].contains("index: 0"));
        assert!(all[5].contains("index: 2") && all[6].contains("index: 1"));
    }

    /// Indexes of the InsertHeader/ChangeHeader responses, by header name, in wire order.
    fn indexes(queue: &EditQueue, layout: HeaderLayout) -> Vec<(String, String)> {
        responses_for(queue, layout)
            .iter()
            .filter_map(|r| {
                let index = r.split("index: ").nth(1)?.split(',').next()?.to_owned();
                let name = r.split("name: \"").nth(1)?.split('"').next()?.to_owned();
                Some((name, index))
            })
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    /// Positions as observed on the real MTAs (scripts/e2e.d/NOTES.md, "Header positions"):
    /// Top is 0 on both; just above seen header p is p + 1 on Postfix (its own Received is
    /// counted) and p + 8 on Sendmail (nine header templates head its list).
    #[test]
    fn insert_positions_follow_the_mta_layout() {
        let mut queue = EditQueue::new(Actions::V6);
        queue.insert_header(None, b"X-Top", b"1").unwrap();
        queue.insert_header(Some(2), b"X-Before-2", b"1").unwrap();
        queue.insert_header(Some(3), b"X-After-2", b"1").unwrap();
        queue.insert_header(Some(0), b"X-Before-0", b"1").unwrap();
        assert_eq!(
            indexes(&queue, HeaderLayout::Postfix),
            pairs(&[
                ("X-After-2", "4"),
                ("X-Before-2", "3"),
                ("X-Before-0", "1"),
                ("X-Top", "0")
            ])
        );
        assert_eq!(
            indexes(
                &queue,
                HeaderLayout::Sendmail {
                    templates: SENDMAIL_HEADER_TEMPLATES
                }
            ),
            pairs(&[
                ("X-After-2", "11"),
                ("X-Before-2", "10"),
                ("X-Before-0", "8"),
                ("X-Top", "0")
            ])
        );
        // A site whose sendmail.cf has two more `H` lines.
        assert_eq!(
            indexes(&queue, HeaderLayout::Sendmail { templates: 11 }),
            pairs(&[
                ("X-After-2", "13"),
                ("X-Before-2", "12"),
                ("X-Before-0", "10"),
                ("X-Top", "0")
            ])
        );
        assert_eq!(
            indexes(&queue, HeaderLayout::Plain),
            pairs(&[
                ("X-After-2", "3"),
                ("X-Before-2", "2"),
                ("X-Before-0", "0"),
                ("X-Top", "0")
            ])
        );
    }

    /// Two inserts at one place keep their queue order, top to bottom.
    #[test]
    fn inserts_at_one_place_keep_queue_order() {
        let mut queue = EditQueue::new(Actions::V6);
        queue.insert_header(Some(1), b"X-First", b"1").unwrap();
        queue.insert_header(Some(1), b"X-Second", b"1").unwrap();
        // Each lands just below the same entry, so the one sent last ends up first.
        assert_eq!(
            indexes(&queue, HeaderLayout::Postfix),
            pairs(&[("X-Second", "2"), ("X-First", "2")])
        );
    }

    /// Both MTAs count inserted headers in CHGHEADER indexes (seen on both): a header of the
    /// same name inserted above the target raises the target's index.
    #[test]
    fn change_index_counts_same_name_inserts_above() {
        let mut queue = EditQueue::new(Actions::V6);
        // seen: 0 From, 1 X-Mark, 2 X-Mark
        queue
            .insert_header(Some(1), b"x-mark", b"above first")
            .unwrap();
        queue
            .insert_header(Some(3), b"X-Mark", b"below second")
            .unwrap();
        queue.insert_header(None, b"X-Other", b"top").unwrap();
        queue.change_header(1, 1, b"X-Mark", b"changed").unwrap();
        queue.change_header(2, 2, b"X-Mark", b"").unwrap();
        let changes: Vec<_> = indexes(
            &queue,
            HeaderLayout::Sendmail {
                templates: SENDMAIL_HEADER_TEMPLATES,
            },
        )
        .into_iter()
        .skip(3)
        .collect();
        assert_eq!(changes, pairs(&[("X-Mark", "3"), ("X-Mark", "2")]));
    }

    /// Adding appends on both: ADDHEADER on Postfix, INSHEADER past the end on Sendmail
    /// (whose ADDHEADER puts a header above the first one of the same name).
    #[test]
    fn end_is_addheader_on_postfix_and_insheader_on_sendmail() {
        let mut queue = EditQueue::new(Actions::V6);
        queue.add_header(b"X-End", b"1").unwrap();
        assert!(responses_for(&queue, HeaderLayout::Postfix)[0].starts_with("AddHeader"));
        assert!(responses_for(&queue, HeaderLayout::Plain)[0].starts_with("AddHeader"));
        assert_eq!(
            indexes(
                &queue,
                HeaderLayout::Sendmail {
                    templates: SENDMAIL_HEADER_TEMPLATES
                }
            ),
            pairs(&[("X-End", &END_INDEX.to_string())])
        );
    }

    #[test]
    fn large_replacement_body_is_split() {
        let mut queue = EditQueue::new(Actions::CHANGE_BODY);
        queue
            .replace_body(&vec![b'x'; MAX_BODY_CHUNK * 2 + 1])
            .unwrap();
        assert_eq!(responses(&queue).len(), 3);
    }
}
