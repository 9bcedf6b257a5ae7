//! Splitting an RFC 5322 message into the header fields and body the MTA sends (§2.8, §2.10).

/// The envelope of one message: the sender and recipients with their ESMTP parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Envelope {
    /// The sender as given in MAIL FROM, normally with angle brackets (`<a@b>`, `<>`).
    pub from: String,
    /// ESMTP parameters of MAIL FROM, one per element (`SIZE=10`).
    pub from_args: Vec<String>,
    /// Recipients with their ESMTP parameters, in RCPT order.
    pub rcpts: Vec<(String, Vec<String>)>,
}

impl Envelope {
    /// An envelope without ESMTP parameters.
    #[must_use]
    pub fn new(from: &str, rcpts: &[&str]) -> Self {
        Self {
            from: from.to_owned(),
            from_args: Vec::new(),
            rcpts: rcpts
                .iter()
                .map(|r| ((*r).to_owned(), Vec::new()))
                .collect(),
        }
    }

    /// The envelope a message's own headers suggest: the sender from the first `From:`, the
    /// recipients from every `To:` and `Cc:`, in order, without duplicates, each in angle
    /// brackets. An address is the part in angle brackets of each comma-separated entry, or
    /// the word with `@` in it if it has none (a group name before `:` and comments are
    /// skipped); entries without `@` (group names, `undisclosed
    /// recipients:;`) are left out. A message without a `From:` gets the null sender `<>`.
    ///
    /// ```
    /// use async_milter::client::Envelope;
    ///
    /// let message = b"From: Alice <alice@example.com>\r\nTo: bob@example.net,\r\n \"Smith, C\" <carol@example.org>\r\n\r\nHi\r\n";
    /// let envelope = Envelope::from_message(message);
    /// assert_eq!(envelope.from, "<alice@example.com>");
    /// let rcpts: Vec<&str> = envelope.rcpts.iter().map(|(r, _)| r.as_str()).collect();
    /// assert_eq!(rcpts, ["<bob@example.net>", "<carol@example.org>"]);
    /// ```
    #[must_use]
    pub fn from_message(message: &[u8]) -> Self {
        let parsed = parse_message(message);
        let addresses = |name: &str| {
            parsed
                .headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case(name))
                .flat_map(|h| header_addresses(&h.value))
                .collect::<Vec<_>>()
        };
        let from = addresses("From")
            .into_iter()
            .next()
            .unwrap_or_else(|| "<>".to_owned());
        let mut rcpts: Vec<(String, Vec<String>)> = Vec::new();
        for address in addresses("To").into_iter().chain(addresses("Cc")) {
            if !rcpts.iter().any(|(r, _)| r.eq_ignore_ascii_case(&address)) {
                rcpts.push((address, Vec::new()));
            }
        }
        Self {
            from,
            from_args: Vec::new(),
            rcpts,
        }
    }
}

/// The addresses in an address-list header value, each in angle brackets: the entries are
/// split at commas outside quotes and angle brackets; comments in parentheses are not
/// interpreted.
fn header_addresses(value: &str) -> Vec<String> {
    let mut entries = Vec::new();
    let (mut quoted, mut angle, mut start) = (false, false, 0);
    for (at, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                entries.push(&value[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    entries.push(&value[start..]);
    entries
        .into_iter()
        .filter_map(|entry| {
            let address = match (entry.rfind('<'), entry.rfind('>')) {
                (Some(open), Some(close)) if open < close => &entry[open + 1..close],
                _ => {
                    let after_group = entry.rsplit(':').next().unwrap_or(entry);
                    after_group.split_whitespace().find(|w| w.contains('@'))?
                }
            };
            let address = address.trim().trim_end_matches(';').trim();
            address.contains('@').then(|| format!("<{address}>"))
        })
        .collect()
}

/// One header field as the MTA holds and delivers it (`name:value`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveredHeader {
    /// The name, case preserved, without the colon.
    pub name: String,
    /// Exactly what follows the colon, untrimmed: the leading space the MTA adds to a
    /// filter's header (or whatever whitespace the filter sent under `HDR_LEADSPC`) is part
    /// of it. Folded lines are joined with a bare LF followed by the continuation line's own
    /// leading whitespace, as on the wire.
    pub value: String,
}

impl DeliveredHeader {
    /// The value without its leading spaces and tabs, for comparisons that do not care
    /// about them; [`value`](Self::value) is what is delivered.
    #[must_use]
    pub fn trimmed_value(&self) -> &str {
        self.value.trim_start_matches([' ', '\t'])
    }

    /// The value as the MTA sends it in a HEADER packet: exactly one leading space removed
    /// unless `HDR_LEADSPC` was negotiated.
    #[must_use]
    pub fn wire_value(&self, leading_space: bool) -> &str {
        if leading_space {
            &self.value
        } else {
            self.value.strip_prefix(' ').unwrap_or(&self.value)
        }
    }
}

/// A message split into header fields and a CRLF body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ParsedMessage {
    pub(crate) headers: Vec<DeliveredHeader>,
    pub(crate) body: Vec<u8>,
}

/// Splits `message` (CRLF or LF line ends) at the first empty line.
///
/// A header line is `name:value` with a name of printable ASCII other than the colon; a line
/// starting with a space or tab continues the previous field. The first line that is neither
/// ends the header section and starts the body (as Postfix does). Every body line ends in
/// CRLF afterwards, including a last line that had no line end. Header bytes that are not
/// UTF-8 are replaced (the client works with `String` header values).
pub(crate) fn parse_message(message: &[u8]) -> ParsedMessage {
    let mut headers: Vec<DeliveredHeader> = Vec::new();
    let mut rest = message;
    loop {
        if rest.is_empty() {
            return ParsedMessage {
                headers,
                body: Vec::new(),
            };
        }
        let (line, next) = split_line(rest);
        if line.is_empty() {
            rest = next;
            break;
        }
        if matches!(line.first(), Some(b' ' | b'\t')) {
            if let Some(last) = headers.last_mut() {
                last.value.push('\n');
                last.value.push_str(&String::from_utf8_lossy(line));
                rest = next;
                continue;
            }
            break;
        }
        match header_name(line) {
            Some((name, value)) => {
                headers.push(DeliveredHeader {
                    name: String::from_utf8_lossy(name).into_owned(),
                    value: String::from_utf8_lossy(value).into_owned(),
                });
                rest = next;
            }
            None => break,
        }
    }
    ParsedMessage {
        headers,
        body: to_crlf(rest, true),
    }
}

/// Splits one line off `input`, without its CRLF or LF.
fn split_line(input: &[u8]) -> (&[u8], &[u8]) {
    match memchr::memchr(b'\n', input) {
        Some(end) => {
            let (line, rest) = input.split_at(end);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            (line, rest.get(1..).unwrap_or_default())
        }
        None => (input, &[]),
    }
}

fn header_name(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = memchr::memchr(b':', line)?;
    let (name, value) = line.split_at(colon);
    let valid = !name.is_empty() && name.iter().all(u8::is_ascii_graphic);
    valid.then(|| (name, value.get(1..).unwrap_or_default()))
}

/// Converts line ends to CRLF (a bare LF becomes CRLF; an existing CRLF stays). With
/// `terminate`, a last line without a line end gets CRLF too.
pub(crate) fn to_crlf(input: &[u8], terminate: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + input.len() / 32 + 2);
    let mut rest = input;
    while let Some(end) = memchr::memchr(b'\n', rest) {
        let (line, tail) = rest.split_at(end);
        out.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
        out.extend_from_slice(b"\r\n");
        rest = tail.get(1..).unwrap_or_default();
    }
    out.extend_from_slice(rest);
    if terminate && !rest.is_empty() {
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_headers_and_body_with_lf() {
        let parsed = parse_message(b"Subject: Hi\nX-A:\tx\n  y\n\nline 1\nline 2");
        assert_eq!(
            parsed.headers,
            vec![
                DeliveredHeader {
                    name: "Subject".into(),
                    value: " Hi".into()
                },
                DeliveredHeader {
                    name: "X-A".into(),
                    value: "\tx\n  y".into()
                },
            ]
        );
        assert_eq!(parsed.body, b"line 1\r\nline 2\r\n");
    }

    #[test]
    fn crlf_message_keeps_crlf_body() {
        let parsed = parse_message(b"A: 1\r\n\r\nbody\r\n\r\n");
        assert_eq!(parsed.headers.len(), 1);
        assert_eq!(parsed.body, b"body\r\n\r\n");
    }

    #[test]
    fn headers_only_and_empty_messages() {
        assert_eq!(parse_message(b"A: 1\r\n").headers.len(), 1);
        assert_eq!(parse_message(b"").headers.len(), 0);
        assert!(parse_message(b"A: 1\r\n\r\n").body.is_empty());
    }

    #[test]
    fn a_non_header_line_starts_the_body() {
        let parsed = parse_message(b"A: 1\nnot a header\nB: 2\n");
        assert_eq!(parsed.headers.len(), 1);
        assert_eq!(parsed.body, b"not a header\r\nB: 2\r\n");
    }

    #[test]
    fn wire_value_strips_one_space_only() {
        let field = DeliveredHeader {
            name: "S".into(),
            value: "  two".into(),
        };
        assert_eq!(field.wire_value(false), " two");
        assert_eq!(field.wire_value(true), "  two");
        let tab = DeliveredHeader {
            name: "S".into(),
            value: "\tx".into(),
        };
        assert_eq!(tab.wire_value(false), "\tx");
    }

    #[test]
    fn envelope_from_message_headers() {
        let envelope = Envelope::from_message(
            b"To: undisclosed-recipients:;\nFrom: a@example.com (Al)\nCc: Team: x@example.com, <y@example.com>;\nTo: <X@example.com>\n\nbody\n",
        );
        assert_eq!(envelope.from, "<a@example.com>");
        let rcpts: Vec<&str> = envelope.rcpts.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(rcpts, ["<X@example.com>", "<y@example.com>"]);
        assert_eq!(Envelope::from_message(b"Subject: x\n\n").from, "<>");
    }
}
