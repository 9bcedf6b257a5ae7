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
    /// A line holds CR, LF or NUL; use [`ReplyCode::with_line`] for more lines.
    InvalidText,
    /// A line would be longer than [`MAX_REPLY_LINE`].
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
        let mut reply = Self {
            code,
            enhanced,
            lines: Vec::new(),
        };
        reply.push_line(text)?;
        Ok(reply)
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

    fn push_line(&mut self, text: &str) -> Result<(), ReplyCodeError> {
        if self.lines.len() == MAX_REPLY_LINES {
            return Err(ReplyCodeError::TooManyLines);
        }
        if text.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
            return Err(ReplyCodeError::InvalidText);
        }
        let escaped = text.len() + text.bytes().filter(|&b| b == b'%').count();
        let prefix = 4 + self.enhanced.as_ref().map_or(0, |e| e.len() + 1);
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
}
