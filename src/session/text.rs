//! Owned wire text: bytes from the MTA with UTF-8 accessors.

use std::fmt;

use bytes::Bytes;

/// Bytes the MTA sent (a host name, an address, a header value), kept as bytes.
///
/// The protocol names no character set; [`Text::to_str`] gives a `&str` when the bytes are
/// UTF-8, and nothing is ever converted lossily. Cloning is cheap (a reference count).
#[derive(Clone, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Text(Bytes);

impl Text {
    /// Wraps bytes.
    #[must_use]
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        Self(bytes.into())
    }

    /// The text from byte `start` on, sharing the same bytes.
    pub(crate) fn slice_from(&self, start: usize) -> Self {
        Self(self.0.slice(start.min(self.0.len())..))
    }

    pub(crate) fn copy_from(bytes: &[u8]) -> Self {
        Self(Bytes::copy_from_slice(bytes))
    }

    /// The raw bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The value as UTF-8, or an error when it is not (named and typed as
    /// [`WireStr::to_str`](crate::proto::WireStr::to_str)).
    pub fn to_str(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.0)
    }

    /// Whether the text is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the bytes equal `other`, ignoring ASCII case.
    #[must_use]
    pub fn eq_ignore_ascii_case(&self, other: &str) -> bool {
        self.0.eq_ignore_ascii_case(other.as_bytes())
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl From<&str> for Text {
    fn from(value: &str) -> Self {
        Self::copy_from(value.as_bytes())
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0.escape_ascii())
    }
}

impl fmt::Display for Text {
    /// Printable ASCII as is, everything else escaped, so a log line stays one line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.escape_ascii())
    }
}
