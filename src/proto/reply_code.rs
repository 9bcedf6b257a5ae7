//! Custom SMTP replies (`SMFIR_REPLYCODE`), checked so both MTAs take them as written.

use std::fmt;

/// Longest reply line RFC 5321 allows, without its CRLF.
pub const MAX_REPLY_LINE: usize = 510;

/// Most lines a reply may have (libmilter's limit).
pub const MAX_REPLY_LINES: usize = 32;

/// A custom SMTP reply: a 4xx or 5xx code, an optional enhanced status code of the same
/// class, and one or more lines of text.
///
/// The encoded form doubles `%` (Sendmail reads the text as a format string) and joins lines
/// with CRLF, using `DDD-` on every line but the last.
///
/// ```
/// use async_milter::proto::ReplyCode;
///
/// let reply = ReplyCode::permanent(550, "5.7.1", "100% spam")?.with_line("go away")?;
/// assert_eq!(reply.to_wire(), b"550-5.7.1 100%% spam\r\n550 5.7.1 go away".to_vec());
/// # Ok::<(), async_milter::proto::ReplyCodeError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ReplyCode {
    code: u16,
    enhanced: Option<String>,
    lines: Vec<String>,
}

/// Why a reply code was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplyCodeError {
    /// The code is not 4xx or 5xx with a second digit 0 to 5.
    InvalidCode(u16),
    /// The code's class does not match what was asked for (`permanent` needs 5xx,
    /// `temporary` 4xx).
    WrongClass(u16),
    /// The enhanced status code is not `class.subject.detail` with 1–3 digit parts.
    InvalidEnhancedCode(String),
    /// The enhanced code's class differs from the reply code's first digit.
    ClassMismatch {
        /// The reply code.
        code: u16,
        /// The enhanced status code.
        enhanced: String,
    },
    /// A line holds CR, LF or NUL; use [`ReplyCode::with_line`] for more lines, or
    /// [`ReplyCode::sanitized`] for text from outside.
    InvalidText,
    /// A line would be longer than [`MAX_REPLY_LINE`] ([`ReplyCode::sanitized`] cuts it
    /// instead).
    LineTooLong(usize),
    /// More than [`MAX_REPLY_LINES`] lines.
    TooManyLines,
}

impl fmt::Display for ReplyCodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidCode(code) => write!(f, "reply code {code} is not a 4xx or 5xx code"),
            Self::WrongClass(code) => write!(f, "reply code {code} has the wrong class"),
            Self::InvalidEnhancedCode(code) => {
                write!(f, "enhanced status code {code:?} is malformed")
            }
            Self::ClassMismatch { code, enhanced } => {
                write!(
                    f,
                    "enhanced status code {enhanced} does not match reply code {code}"
                )
            }
            Self::InvalidText => f.write_str("reply text contains CR, LF or NUL"),
            Self::LineTooLong(len) => {
                write!(f, "reply line of {len} bytes exceeds {MAX_REPLY_LINE}")
            }
            Self::TooManyLines => write!(f, "reply has more than {MAX_REPLY_LINES} lines"),
        }
    }
}

impl std::error::Error for ReplyCodeError {}

impl ReplyCode {
    /// A reply with `code` (4xx or 5xx), `enhanced` status (`"5.7.1"`, or `""` for none) and
    /// one line of `text`.
    pub fn new(code: u16, enhanced: &str, text: &str) -> Result<Self, ReplyCodeError> {
        let mut reply = Self::without_lines(code, enhanced)?;
        reply.push_line(text)?;
        Ok(reply)
    }

    /// Like [`ReplyCode::new`], for text that comes from outside the filter (an attachment's
    /// file name, an address, a header value): instead of being refused, the text is made
    /// safe. CR, LF, NUL and every other ASCII control character but tab (DEL included)
    /// become a space, so the text cannot end the line or the packet early or start a reply
    /// line of its own; then it is cut, at a character boundary, to fit [`MAX_REPLY_LINE`]
    /// once `%` is doubled. Fails only for an invalid `code` or `enhanced` code.
    ///
    /// ```
    /// use async_milter::proto::{MAX_REPLY_LINE, ReplyCode};
    ///
    /// let name = "invoice.pdf\r\n250 2.0.0 Ok: queued\0.exe";
    /// let reply = ReplyCode::sanitized(550, "5.7.1", &format!("attachment {name} refused"))?;
    /// assert_eq!(
    ///     reply.to_wire(),
    ///     b"550 5.7.1 attachment invoice.pdf  250 2.0.0 Ok: queued .exe refused".to_vec()
    /// );
    /// let long = ReplyCode::sanitized(550, "5.7.1", &"%".repeat(2000))?;
    /// assert_eq!(long.to_wire().len(), MAX_REPLY_LINE);
    /// # Ok::<(), async_milter::proto::ReplyCodeError>(())
    /// ```
    pub fn sanitized(code: u16, enhanced: &str, text: &str) -> Result<Self, ReplyCodeError> {
        let mut reply = Self::without_lines(code, enhanced)?;
        reply.push_sanitized_line(text)?;
        Ok(reply)
    }

    /// The code and enhanced code checked, no line yet.
    fn without_lines(code: u16, enhanced: &str) -> Result<Self, ReplyCodeError> {
        let first = code / 100;
        let second = code / 10 % 10;
        if !(first == 4 || first == 5) || second > 5 {
            return Err(ReplyCodeError::InvalidCode(code));
        }
        let enhanced = if enhanced.is_empty() {
            None
        } else {
            check_enhanced(code, enhanced)?;
            Some(enhanced.to_owned())
        };
        Ok(Self {
            code,
            enhanced,
            lines: Vec::new(),
        })
    }

    /// A permanent failure: `code` must be 5xx.
    pub fn permanent(code: u16, enhanced: &str, text: &str) -> Result<Self, ReplyCodeError> {
        if code / 100 != 5 {
            return Err(ReplyCodeError::WrongClass(code));
        }
        Self::new(code, enhanced, text)
    }

    /// A temporary failure: `code` must be 4xx.
    pub fn temporary(code: u16, enhanced: &str, text: &str) -> Result<Self, ReplyCodeError> {
        if code / 100 != 4 {
            return Err(ReplyCodeError::WrongClass(code));
        }
        Self::new(code, enhanced, text)
    }

    /// Adds a line; every line carries the same code and enhanced code.
    pub fn with_line(mut self, text: &str) -> Result<Self, ReplyCodeError> {
        self.push_line(text)?;
        Ok(self)
    }

    /// Adds a line made safe as [`ReplyCode::sanitized`] does; fails only when the reply
    /// already has [`MAX_REPLY_LINES`] lines.
    pub fn with_sanitized_line(mut self, text: &str) -> Result<Self, ReplyCodeError> {
        self.push_sanitized_line(text)?;
        Ok(self)
    }

    fn push_sanitized_line(&mut self, text: &str) -> Result<(), ReplyCodeError> {
        let room = MAX_REPLY_LINE - self.prefix_len();
        let mut line = String::with_capacity(text.len().min(room));
        let mut used = 0;
        for c in text.chars() {
            let c = if c.is_ascii_control() && c != '\t' {
                ' '
            } else {
                c
            };
            let cost = if c == '%' { 2 } else { c.len_utf8() };
            if used + cost > room {
                break;
            }
            used += cost;
            line.push(c);
        }
        self.push_line(&line)
    }

    /// The bytes before the text on every line: `DDD`, the separator, the enhanced code
    /// and its space.
    fn prefix_len(&self) -> usize {
        4 + self.enhanced.as_ref().map_or(0, |e| e.len() + 1)
    }

    fn push_line(&mut self, text: &str) -> Result<(), ReplyCodeError> {
        if self.lines.len() == MAX_REPLY_LINES {
            return Err(ReplyCodeError::TooManyLines);
        }
        if text.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
            return Err(ReplyCodeError::InvalidText);
        }
        let escaped = text.len() + text.bytes().filter(|&b| b == b'%').count();
        let prefix = self.prefix_len();
        if prefix + escaped > MAX_REPLY_LINE {
            return Err(ReplyCodeError::LineTooLong(prefix + escaped));
        }
        self.lines.push(text.to_owned());
        Ok(())
    }

    /// The three-digit code.
    #[must_use]
    pub fn code(&self) -> u16 {
        self.code
    }

    /// The enhanced status code, if any.
    #[must_use]
    pub fn enhanced(&self) -> Option<&str> {
        self.enhanced.as_deref()
    }

    /// The lines of text, unescaped.
    #[must_use]
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// Whether this is a 4xx reply.
    #[must_use]
    pub fn is_temporary(&self) -> bool {
        self.code / 100 == 4
    }

    /// The REPLYCODE payload string (without its NUL): lines joined by CRLF, `%` doubled.
    #[must_use]
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b"\r\n");
            }
            let separator = if i == last { ' ' } else { '-' };
            out.extend_from_slice(format!("{}{separator}", self.code).as_bytes());
            if let Some(enhanced) = &self.enhanced {
                out.extend_from_slice(enhanced.as_bytes());
                out.push(b' ');
            }
            for byte in line.bytes() {
                out.push(byte);
                if byte == b'%' {
                    out.push(b'%');
                }
            }
        }
        out
    }
}

fn check_enhanced(code: u16, enhanced: &str) -> Result<(), ReplyCodeError> {
    let invalid = || ReplyCodeError::InvalidEnhancedCode(enhanced.to_owned());
    let parts: Vec<&str> = enhanced.split('.').collect();
    let [class, subject, detail] = parts.as_slice() else {
        return Err(invalid());
    };
    let digits = |part: &str, max_len| {
        !part.is_empty() && part.len() <= max_len && part.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(class, 1) || !digits(subject, 3) || !digits(detail, 3) {
        return Err(invalid());
    }
    if class.parse::<u16>().ok() != Some(code / 100) {
        return Err(ReplyCodeError::ClassMismatch {
            code,
            enhanced: enhanced.to_owned(),
        });
    }
    Ok(())
}

impl fmt::Debug for ReplyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ReplyCode({:?})",
            String::from_utf8_lossy(&self.to_wire())
        )
    }
}

impl fmt::Display for ReplyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, line) in self.lines.iter().enumerate() {
            if i > 0 {
                f.write_str(" / ")?;
            }
            write!(f, "{}", self.code)?;
            if let Some(enhanced) = &self.enhanced {
                write!(f, " {enhanced}")?;
            }
            write!(f, " {line}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line_reply() {
        let reply = ReplyCode::permanent(550, "5.7.1", "go away").unwrap();
        assert_eq!(reply.to_wire(), b"550 5.7.1 go away");
    }

    #[test]
    fn enhanced_code_is_optional() {
        let reply = ReplyCode::temporary(451, "", "later").unwrap();
        assert_eq!(reply.to_wire(), b"451 later");
    }

    #[test]
    fn codes_are_checked() {
        assert_eq!(
            ReplyCode::new(250, "", "x"),
            Err(ReplyCodeError::InvalidCode(250))
        );
        assert_eq!(
            ReplyCode::new(599, "", "x"),
            Err(ReplyCodeError::InvalidCode(599))
        );
        assert_eq!(
            ReplyCode::new(5500, "", "x"),
            Err(ReplyCodeError::InvalidCode(5500))
        );
        assert_eq!(
            ReplyCode::permanent(451, "", "x"),
            Err(ReplyCodeError::WrongClass(451))
        );
        assert_eq!(
            ReplyCode::temporary(550, "", "x"),
            Err(ReplyCodeError::WrongClass(550))
        );
    }

    #[test]
    fn enhanced_codes_are_checked() {
        for bad in ["5.7", "5.7.1.1", "5..1", "x.7.1", "5.1000.1", "55.7.1"] {
            assert!(
                matches!(
                    ReplyCode::new(550, bad, "x"),
                    Err(ReplyCodeError::InvalidEnhancedCode(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            ReplyCode::new(550, "4.7.1", "x"),
            Err(ReplyCodeError::ClassMismatch { .. })
        ));
    }

    #[test]
    fn text_must_be_one_line() {
        assert_eq!(
            ReplyCode::new(550, "", "a\r\nb"),
            Err(ReplyCodeError::InvalidText)
        );
        assert_eq!(
            ReplyCode::new(550, "", "a\0"),
            Err(ReplyCodeError::InvalidText)
        );
    }

    #[test]
    fn line_length_counts_escapes() {
        let max = MAX_REPLY_LINE - "550 5.7.1 ".len();
        assert!(ReplyCode::new(550, "5.7.1", &"a".repeat(max)).is_ok());
        assert_eq!(
            ReplyCode::new(550, "5.7.1", &"%".repeat(max / 2 + 1)),
            Err(ReplyCodeError::LineTooLong(MAX_REPLY_LINE + 2))
        );
    }

    #[test]
    fn line_count_is_limited() {
        let mut reply = ReplyCode::new(421, "4.7.0", "0").unwrap();
        for i in 1..MAX_REPLY_LINES {
            reply = reply.with_line(&i.to_string()).unwrap();
        }
        assert_eq!(
            reply.with_line("one too many"),
            Err(ReplyCodeError::TooManyLines)
        );
    }

    #[test]
    fn multi_line_uses_the_same_code_on_every_line() {
        let reply = ReplyCode::new(421, "4.7.0", "one")
            .unwrap()
            .with_line("two")
            .unwrap()
            .with_line("three")
            .unwrap();
        assert_eq!(
            reply.to_wire(),
            b"421-4.7.0 one\r\n421-4.7.0 two\r\n421 4.7.0 three".to_vec()
        );
    }

    /// Sends `reply` through the REPLYCODE encoder and frame decoder and checks what an MTA
    /// would check, strictly: one NUL-terminated string; lines joined by CRLF, none at the
    /// end; each `DDD-` but the last `DDD `, with the enhanced code; no CR, LF or NUL inside a
    /// line; at most [`MAX_REPLY_LINE`] bytes; `%` only doubled. Returns the text read back.
    fn check_on_the_wire(reply: &ReplyCode) -> Vec<u8> {
        use crate::proto::{FrameDecoder, Response, WireStr};

        let wire = reply.to_wire();
        let mut frame = Vec::new();
        Response::ReplyCode(WireStr::from(wire.as_slice()))
            .encode(&mut frame)
            .unwrap();
        let mut decoder = FrameDecoder::new();
        decoder.push(&frame);
        let packet = decoder.decode().unwrap().unwrap();
        assert!(decoder.decode().unwrap().is_none(), "one packet");
        let Response::ReplyCode(text) = Response::decode_frame(&packet).unwrap() else {
            panic!("not a REPLYCODE");
        };
        let text = text.as_bytes().to_vec();
        assert_eq!(text, wire, "reads back as sent");

        let lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
        assert_eq!(lines.len(), reply.lines().len());
        let code = reply.code().to_string();
        for (i, line) in lines.iter().enumerate() {
            let last = i + 1 == lines.len();
            let line = if last {
                *line
            } else {
                line.strip_suffix(b"\r").expect("CRLF between lines")
            };
            assert!(line.len() <= MAX_REPLY_LINE, "{} bytes", line.len());
            assert!(!line.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)));
            let separator = if last { b' ' } else { b'-' };
            let mut prefix = code.as_bytes().to_vec();
            prefix.push(separator);
            if let Some(enhanced) = reply.enhanced() {
                prefix.extend_from_slice(enhanced.as_bytes());
                prefix.push(b' ');
            }
            let rest = line.strip_prefix(prefix.as_slice()).expect("code prefix");
            // `%` comes in pairs only, and undoubling gives the line as the filter wrote it.
            let mut undoubled = Vec::new();
            let mut bytes = rest.iter();
            while let Some(&b) = bytes.next() {
                if b == b'%' {
                    assert_eq!(bytes.next(), Some(&b'%'), "lone % in {line:?}");
                }
                undoubled.push(b);
            }
            assert_eq!(undoubled, reply.lines()[i].as_bytes());
        }
        text
    }

    #[test]
    fn sanitized_text_cannot_inject_a_line() {
        let hostile = "x.pdf\r\n250 2.0.0 Ok: queued as ABC\r\n";
        let reply = ReplyCode::sanitized(550, "5.7.1", hostile).unwrap();
        assert_eq!(reply.lines(), ["x.pdf  250 2.0.0 Ok: queued as ABC  "]);
        let wire = check_on_the_wire(&reply);
        assert!(!wire.windows(2).any(|w| w == b"\r\n"));
        // Bare CR, bare LF and the other controls, tab kept.
        let reply = ReplyCode::sanitized(451, "4.7.1", "a\rb\nc\x1bd\x7fe\tf").unwrap();
        assert_eq!(reply.lines(), ["a b c d e\tf"]);
        check_on_the_wire(&reply);
    }

    #[test]
    fn sanitized_text_cannot_end_the_packet_early() {
        let reply = ReplyCode::sanitized(550, "", "before\0after\0").unwrap();
        assert_eq!(reply.lines(), ["before after "]);
        check_on_the_wire(&reply);
    }

    #[test]
    fn sanitized_text_is_cut_to_the_line_limit() {
        for enhanced in ["", "5.7.1", "5.100.100"] {
            let prefix = 4 + if enhanced.is_empty() {
                0
            } else {
                enhanced.len() + 1
            };
            let reply = ReplyCode::sanitized(554, enhanced, &"n".repeat(100_000)).unwrap();
            assert_eq!(reply.to_wire().len(), MAX_REPLY_LINE, "{enhanced:?}");
            assert_eq!(reply.lines()[0].len(), MAX_REPLY_LINE - prefix);
            check_on_the_wire(&reply);
        }
        // Text that fits is kept whole.
        let fits = "f".repeat(MAX_REPLY_LINE - "550 5.7.1 ".len());
        let reply = ReplyCode::sanitized(550, "5.7.1", &fits).unwrap();
        assert_eq!(reply.lines(), [fits]);
    }

    #[test]
    fn sanitized_cut_counts_doubled_percent_and_never_splits_one() {
        // 500 bytes of room after "550 5.7.1 ": 250 `%` fit exactly, doubled.
        let reply = ReplyCode::sanitized(550, "5.7.1", &"%".repeat(1000)).unwrap();
        assert_eq!(reply.lines()[0], "%".repeat(250));
        assert_eq!(reply.to_wire().len(), MAX_REPLY_LINE);
        check_on_the_wire(&reply);
        // One byte short of a doubled `%`: it is left out rather than sent alone.
        let text = format!("{}%", "a".repeat(499));
        let reply = ReplyCode::sanitized(550, "5.7.1", &text).unwrap();
        assert_eq!(reply.lines()[0], "a".repeat(499));
        check_on_the_wire(&reply);
        let reply = ReplyCode::sanitized(550, "5.7.1", "100% sure").unwrap();
        assert_eq!(reply.to_wire(), b"550 5.7.1 100%% sure");
    }

    #[test]
    fn sanitized_cut_keeps_characters_whole() {
        // Two-byte characters over an odd room: the cut falls before the one that would split.
        let room = MAX_REPLY_LINE - "550 5.7.1 ".len();
        let reply = ReplyCode::sanitized(550, "5.7.1", &format!("a{}", "é".repeat(room))).unwrap();
        let line = &reply.lines()[0];
        assert_eq!(line.len(), room - 1);
        assert!(line.ends_with('é'));
        check_on_the_wire(&reply);
    }

    #[test]
    fn sanitized_lines_add_up_to_a_valid_multi_line_reply() {
        let mut reply = ReplyCode::sanitized(550, "5.7.1", "first\r\nline").unwrap();
        for i in 1..MAX_REPLY_LINES {
            reply = reply
                .with_sanitized_line(&format!("{i}%\0\n{}", "z".repeat(600)))
                .unwrap();
        }
        check_on_the_wire(&reply);
        assert_eq!(
            reply.with_sanitized_line("one too many"),
            Err(ReplyCodeError::TooManyLines)
        );
    }

    #[test]
    fn sanitized_still_checks_the_codes() {
        assert_eq!(
            ReplyCode::sanitized(250, "", "x"),
            Err(ReplyCodeError::InvalidCode(250))
        );
        assert!(matches!(
            ReplyCode::sanitized(550, "4.7.1", "x"),
            Err(ReplyCodeError::ClassMismatch { .. })
        ));
    }
}
