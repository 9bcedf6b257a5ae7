//! The edit queue: modifications checked when queued and sent at end of message.
//!
//! Flush order (one write, before the verdict): sender change; recipient removals, then
//! additions; header inserts (highest position first, so earlier inserts do not shift later
//! ones); header changes and deletions (highest per-name index first, so a deletion does not
//! shift the index of another change on either MTA); header additions in queue order; the
//! replacement body as one unbroken run of chunks; quarantine.

use super::error::Error;
use super::text::Text;
use crate::proto::{Actions, EncodeError, MAX_BODY_CHUNK, Response, WireStr, encode_replace_body};

/// Most edits one message may queue; a bound on what a misbehaving filter can pile up.
pub const MAX_QUEUED_EDITS: usize = 100_000;

/// A header the filter was shown, by position; stable for the rest of the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HeaderHandle {
    pub(crate) message: u64,
    pub(crate) position: u32,
    /// 1-based index among headers of the same name (case-insensitive).
    pub(crate) name_index: u32,
}

impl HeaderHandle {
    /// 0-based position among all headers the filter was shown.
    #[must_use]
    pub fn position(&self) -> usize {
        self.position as usize
    }

    /// 1-based index among the headers of the same name (what CHGHEADER counts).
    #[must_use]
    pub fn name_index(&self) -> u32 {
        self.name_index
    }
}

/// Where to insert a header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderPosition {
    /// Above every header.
    Top,
    /// Below every header (the same as adding one).
    End,
    /// Just above this header.
    Before(HeaderHandle),
    /// Just below this header.
    After(HeaderHandle),
}

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
    /// `index` is 0-based among the headers the filter saw; the queue position breaks ties.
    InsertHeader {
        index: u32,
        name: Text,
        value: Text,
    },
    ChangeHeader {
        index: u32,
        name: Text,
        value: Text,
    },
    AddHeader {
        name: Text,
        value: Text,
    },
    Quarantine(Text),
}

/// Edits queued for the current message.
#[derive(Debug)]
pub(crate) struct EditQueue {
    allowed: Actions,
    edits: Vec<Edit>,
    body: Option<Vec<u8>>,
}

impl EditQueue {
    pub(crate) fn new(allowed: Actions) -> Self {
        Self {
            allowed,
            edits: Vec::new(),
            body: None,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.edits.is_empty() && self.body.is_none()
    }

    fn require(&self, action: Actions) -> Result<(), Error> {
        if self.allowed.contains(action) {
            Ok(())
        } else {
            Err(Error::NotNegotiated(action))
        }
    }

    fn push(&mut self, edit: Edit) -> Result<(), Error> {
        if self.edits.len() >= MAX_QUEUED_EDITS {
            return Err(Error::InvalidValue(EncodeError::TooLong {
                len: self.edits.len() + 1,
                max: MAX_QUEUED_EDITS,
            }));
        }
        self.edits.push(edit);
        Ok(())
    }

    pub(crate) fn add_header(&mut self, name: &[u8], value: &[u8]) -> Result<(), Error> {
        self.require(Actions::ADD_HEADERS)?;
        let (name, value) = (header_name(name)?, header_value(value)?);
        self.push(Edit::AddHeader { name, value })
    }

    pub(crate) fn insert_header(
        &mut self,
        index: u32,
        name: &[u8],
        value: &[u8],
    ) -> Result<(), Error> {
        self.require(Actions::ADD_HEADERS)?;
        let (name, value) = (header_name(name)?, header_value(value)?);
        self.push(Edit::InsertHeader { index, name, value })
    }

    /// Changes (or with an empty value deletes) the `index`-th header called `name`.
    pub(crate) fn change_header(
        &mut self,
        index: u32,
        name: &[u8],
        value: &[u8],
    ) -> Result<(), Error> {
        self.require(Actions::CHANGE_HEADERS)?;
        let (name, value) = (header_name(name)?, header_value(value)?);
        self.push(Edit::ChangeHeader { index, name, value })
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

    /// Appends every queued edit, in flush order, to `dst`.
    pub(crate) fn encode(&self, dst: &mut Vec<u8>) -> Result<(), EncodeError> {
        fn w(t: &Text) -> WireStr<'_> {
            WireStr::new(t.as_bytes())
        }
        fn opt(t: Option<&Text>) -> Option<WireStr<'_>> {
            t.map(w)
        }
        let mut ordered: Vec<(usize, &Edit)> = self.edits.iter().enumerate().collect();
        ordered.sort_by(|(ai, a), (bi, b)| {
            rank(a).cmp(&rank(b)).then_with(|| match (a, b) {
                (Edit::InsertHeader { index: x, .. }, Edit::InsertHeader { index: y, .. })
                | (Edit::ChangeHeader { index: x, .. }, Edit::ChangeHeader { index: y, .. }) => {
                    y.cmp(x).then(bi.cmp(ai))
                }
                _ => ai.cmp(bi),
            })
        });
        for (_, edit) in &ordered {
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
                Edit::InsertHeader { index, name, value } => Response::InsertHeader {
                    index: *index,
                    name: w(name),
                    value: w(value),
                },
                Edit::ChangeHeader { index, name, value } => Response::ChangeHeader {
                    index: *index,
                    name: w(name),
                    value: w(value),
                },
                Edit::AddHeader { name, value } => Response::AddHeader {
                    name: w(name),
                    value: w(value),
                },
                Edit::Quarantine(_) => continue,
            };
            response.encode(dst)?;
        }
        if let Some(body) = &self.body {
            encode_replace_body(body, MAX_BODY_CHUNK, dst)?;
        }
        for (_, edit) in &ordered {
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

    fn responses(queue: &EditQueue) -> Vec<String> {
        let mut wire = Vec::new();
        queue.encode(&mut wire).unwrap();
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
            queue.change_header(1, b"Subject", b"x"),
            Err(Error::NotNegotiated(a)) if a == Actions::CHANGE_HEADERS
        ));
        assert!(matches!(
            queue.add_rcpt(b"<a@b>", Some(b"NOTIFY=NEVER")),
            Err(Error::NotNegotiated(_))
        ));
        assert!(matches!(
            queue.replace_body(b"x"),
            Err(Error::NotNegotiated(_))
        ));
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
    fn flush_order_is_documented_order() {
        let mut queue = EditQueue::new(Actions::V6);
        queue.quarantine(b"held").unwrap();
        queue.add_header(b"X-Last", b"1").unwrap();
        queue.append_body(b"new").unwrap();
        queue.change_header(1, b"Received", b"").unwrap();
        queue.change_header(2, b"Received", b"").unwrap();
        queue.insert_header(0, b"X-Top", b"1").unwrap();
        queue.insert_header(3, b"X-Three", b"1").unwrap();
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

    #[test]
    fn large_replacement_body_is_split() {
        let mut queue = EditQueue::new(Actions::CHANGE_BODY);
        queue
            .replace_body(&vec![b'x'; MAX_BODY_CHUNK * 2 + 1])
            .unwrap();
        assert_eq!(responses(&queue).len(), 3);
    }
}
