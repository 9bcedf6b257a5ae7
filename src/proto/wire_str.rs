//! Borrowed wire strings: bytes first, UTF-8 on request.

use std::fmt;

/// A string as it travels on the wire: bytes without the terminating NUL.
///
/// The milter protocol names no character set, so values stay bytes; [`WireStr::to_str`]
/// gives a `&str` when they happen to be UTF-8. Nothing is ever converted lossily.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct WireStr<'a>(&'a [u8]);

impl<'a> WireStr<'a> {
    /// Wraps bytes. A NUL inside is rejected only when the value is encoded.
    #[must_use]
    pub const fn new(bytes: &'a [u8]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// The value as UTF-8, or an error when it is not.
    pub fn to_str(&self) -> Result<&'a str, std::str::Utf8Error> {
        std::str::from_utf8(self.0)
    }

    /// Whether the value is empty.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Length in bytes.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the bytes equal `other`, ignoring ASCII case.
    #[must_use]
    pub fn eq_ignore_ascii_case(&self, other: &str) -> bool {
        self.0.eq_ignore_ascii_case(other.as_bytes())
    }
}

impl<'a> From<&'a str> for WireStr<'a> {
    fn from(value: &'a str) -> Self {
        Self(value.as_bytes())
    }
}

impl<'a> From<&'a [u8]> for WireStr<'a> {
    fn from(value: &'a [u8]) -> Self {
        Self(value)
    }
}

impl<'a, const N: usize> From<&'a [u8; N]> for WireStr<'a> {
    fn from(value: &'a [u8; N]) -> Self {
        Self(value)
    }
}

impl PartialEq<str> for WireStr<'_> {
    fn eq(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<&str> for WireStr<'_> {
    fn eq(&self, other: &&str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl fmt::Debug for WireStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0.escape_ascii())
    }
}

impl fmt::Display for WireStr<'_> {
    /// Prints printable ASCII as is and escapes everything else, so logs stay one line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.escape_ascii())
    }
}

#[cfg(test)]
mod tests {
    use super::WireStr;

    #[test]
    fn debug_escapes_control_bytes() {
        assert_eq!(format!("{:?}", WireStr::new(b"a\nb\xff")), r#""a\nb\xff""#);
    }

    #[test]
    fn to_str_refuses_invalid_utf8() {
        assert!(WireStr::new(b"\xff").to_str().is_err());
        assert_eq!(WireStr::new("h\u{e9}".as_bytes()).to_str(), Ok("h\u{e9}"));
    }
}
