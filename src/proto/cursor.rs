//! A bounds-checked reader over a packet payload and the matching writer helpers.
//!
//! Every read returns an error instead of indexing, so no peer input can panic the decoder.

use super::error::{DecodeError, EncodeError};
use super::wire_str::WireStr;

/// Reads fields off the front of a payload.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
    packet: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(payload: &'a [u8], packet: &'static str) -> Self {
        Self {
            rest: payload,
            packet,
        }
    }

    fn truncated(&self, field: &'static str) -> DecodeError {
        DecodeError::Truncated {
            packet: self.packet,
            field,
        }
    }

    pub(crate) fn take(
        &mut self,
        len: usize,
        field: &'static str,
    ) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < len {
            return Err(self.truncated(field));
        }
        let (head, tail) = self.rest.split_at(len);
        self.rest = tail;
        Ok(head)
    }

    pub(crate) fn take_u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        let (&first, tail) = self.rest.split_first().ok_or(self.truncated(field))?;
        self.rest = tail;
        Ok(first)
    }

    pub(crate) fn take_u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        let bytes = self.take(2, field)?;
        let word = bytes.try_into().map_err(|_| self.truncated(field))?;
        Ok(u16::from_be_bytes(word))
    }

    pub(crate) fn take_u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        let bytes = self.take(4, field)?;
        let word = bytes.try_into().map_err(|_| self.truncated(field))?;
        Ok(u32::from_be_bytes(word))
    }

    /// Takes a NUL-terminated string, without its NUL.
    pub(crate) fn take_cstr(&mut self, field: &'static str) -> Result<WireStr<'a>, DecodeError> {
        let end = memchr::memchr(0, self.rest).ok_or(self.truncated(field))?;
        let (value, tail) = self.rest.split_at(end);
        self.rest = tail.get(1..).unwrap_or_default();
        Ok(WireStr::new(value))
    }

    /// Takes a NUL-terminated string if any bytes are left.
    pub(crate) fn take_optional_cstr(
        &mut self,
        field: &'static str,
    ) -> Result<Option<WireStr<'a>>, DecodeError> {
        if self.rest.is_empty() {
            Ok(None)
        } else {
            self.take_cstr(field).map(Some)
        }
    }

    /// Takes everything that is left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Checks that every byte was consumed.
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingData {
                packet: self.packet,
            })
        }
    }
}

/// Writes a NUL-terminated string after checking it holds no NUL itself.
pub(crate) fn put_cstr(
    dst: &mut Vec<u8>,
    value: WireStr<'_>,
    field: &'static str,
) -> Result<(), EncodeError> {
    let bytes = value.as_bytes();
    if memchr::memchr(0, bytes).is_some() {
        return Err(EncodeError::InteriorNul { field });
    }
    dst.extend_from_slice(bytes);
    dst.push(0);
    Ok(())
}

/// Writes a NUL-terminated string that must also be non-empty.
pub(crate) fn put_nonempty_cstr(
    dst: &mut Vec<u8>,
    value: WireStr<'_>,
    field: &'static str,
) -> Result<(), EncodeError> {
    if value.is_empty() {
        return Err(EncodeError::Empty { field });
    }
    put_cstr(dst, value, field)
}

/// Checks that `raw` is a run of NUL-terminated strings and counts them.
pub(crate) fn count_cstrs(raw: &[u8]) -> Option<usize> {
    if raw.is_empty() {
        return Some(0);
    }
    if raw.last() != Some(&0) {
        return None;
    }
    Some(memchr::memchr_iter(0, raw).count())
}

/// Iterates over a run of NUL-terminated strings checked by [`count_cstrs`].
#[derive(Clone, Debug)]
pub(crate) struct CStrs<'a> {
    rest: &'a [u8],
}

impl<'a> CStrs<'a> {
    pub(crate) fn new(raw: &'a [u8]) -> Self {
        Self { rest: raw }
    }
}

impl<'a> Iterator for CStrs<'a> {
    type Item = WireStr<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let end = memchr::memchr(0, self.rest)?;
        let (value, tail) = self.rest.split_at(end);
        self.rest = tail.get(1..).unwrap_or_default();
        Some(WireStr::new(value))
    }
}
