//! Framing: a 4-byte big-endian length, a code byte, a payload.
//!
//! [`FrameDecoder`] follows the usual decoder contract: push bytes in, pull whole frames out,
//! `None` means more bytes are needed, an error means the stream is corrupt and must be closed.

use bytes::{Bytes, BytesMut};

use super::error::{DecodeError, EncodeError};

/// Largest frame (code byte plus payload) accepted by default.
///
/// Postfix sends a header as one packet and allows headers of `header_size_limit` (100 KiB by
/// default), so the 64 KiB that libmilter allows is too small; 512 KiB leaves room for raised
/// limits while bounding what one connection may make us allocate.
pub const DEFAULT_MAX_FRAME_LEN: u32 = 512 * 1024;

/// Largest payload a filter may send unless a larger size was negotiated (`MILTER_MAX_DATA_SIZE`).
pub const MAX_RESPONSE_PAYLOAD: usize = 65_535;

/// Largest body chunk either side sends (`MILTER_CHUNK_SIZE`).
pub const MAX_BODY_CHUNK: usize = 65_535;

/// Bytes before the payload: the length field and the code byte.
pub const FRAME_HEADER_LEN: usize = 5;

/// Smallest free space the decoder makes, so small frames arrive several at a time.
const MIN_READ: usize = 4 * 1024;

/// Free space below this is not lent for another read: new space is made instead.
const MIN_SPARE: usize = 1024;

/// One packet: its code byte and its payload.
///
/// The payload shares the decoder's buffer (a reference count, no copy).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The command or response byte.
    pub kind: u8,
    /// The bytes after the code byte.
    pub payload: Bytes,
}

/// Splits a byte stream into frames.
///
/// Frames share the buffer they were read into. The buffer holds the bytes received but not
/// yet decoded, followed by free space that was zero-filled once when it was added and is
/// lent again by [`FrameDecoder::spare`] until it is used, so a read that finds nothing to
/// read costs no filling. When the free space runs out, the decoder first reclaims its buffer
/// in place, then the buffer before it (frames handed out from it, such as the previous body
/// chunk, have usually been dropped by then); only if both are still shared does it allocate.
#[derive(Debug)]
pub struct FrameDecoder {
    /// `[..filled]`: received bytes; `[filled..]`: free space, already initialised.
    buf: BytesMut,
    filled: usize,
    /// The previous buffer, kept so its storage can be reused once its frames are dropped.
    previous: BytesMut,
    /// The most free space asked for so far: new space is made this large at once, so a
    /// large frame is read in one go once the stream has shown frames of that size.
    hint: usize,
    max_len: u32,
    storage: Storage,
}

/// How much storage the decoder keeps, by how busy the stream has shown itself.
///
/// A connection that sends one packet and falls silent (negotiation, then an idle MTA
/// connection) should hold only what that packet needed; a busy one should read into
/// storage it reuses rather than allocate per read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Storage {
    /// None held: new, or after [`FrameDecoder::release`].
    None,
    /// Exactly what the first push since then needed. Reads still go through
    /// [`FrameDecoder::push`], so a silent connection holds no read space.
    Exact,
    /// The stream is busy: reads go into [`FrameDecoder::spare`], whose storage is reused.
    Reused,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecoder {
    /// A decoder accepting frames up to [`DEFAULT_MAX_FRAME_LEN`].
    #[must_use]
    pub fn new() -> Self {
        Self::with_max_len(DEFAULT_MAX_FRAME_LEN)
    }

    /// A decoder accepting frames (code byte plus payload) up to `max_len` bytes.
    #[must_use]
    pub fn with_max_len(max_len: u32) -> Self {
        Self {
            buf: BytesMut::new(),
            filled: 0,
            previous: BytesMut::new(),
            hint: MIN_READ,
            max_len,
            storage: Storage::None,
        }
    }

    /// The largest frame accepted.
    #[must_use]
    pub fn max_len(&self) -> u32 {
        self.max_len
    }

    /// Bytes received but not yet returned as frames.
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.filled
    }

    /// Whether the decoder holds buffer storage (see [`FrameDecoder::release`]).
    #[must_use]
    pub fn holds_storage(&self) -> bool {
        self.storage != Storage::None
    }

    /// Whether to read into [`FrameDecoder::spare`]: once the stream has sent more than one
    /// packet since it was new or released. Until then read into space of your own and
    /// [`FrameDecoder::push`] what arrived, so no read space is held while the peer is silent.
    #[must_use]
    pub fn lends_spare(&self) -> bool {
        self.storage == Storage::Reused
    }

    /// Lets go of the buffer storage when nothing is buffered, so an idle connection holds
    /// none; the next [`FrameDecoder::push`] or [`FrameDecoder::spare`] allocates anew.
    /// Frames handed out keep their own bytes alive.
    pub fn release(&mut self) {
        if self.filled == 0 {
            self.buf = BytesMut::new();
            self.previous = BytesMut::new();
            self.storage = Storage::None;
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.truncate(self.filled);
        match self.storage {
            Storage::None => {
                self.buf.reserve(bytes.len());
                self.storage = Storage::Exact;
            }
            // A second packet: the stream is busy, make storage that later reads reuse.
            Storage::Exact => self.reserve_room(bytes.len().max(MIN_READ)),
            Storage::Reused => {}
        }
        self.buf.extend_from_slice(bytes);
        self.filled = self.buf.len();
    }

    /// How many more bytes complete the frame at the front (at least one).
    ///
    /// Before the length field is complete this counts only the missing length bytes.
    #[must_use]
    pub fn missing(&self) -> usize {
        match self.announced_len() {
            Some(len) => (len as usize)
                .saturating_add(4)
                .saturating_sub(self.filled)
                .max(1),
            None => 4 - self.filled,
        }
    }

    /// Lends free space at the end of the buffer to read into, sized for the frame at the front.
    ///
    /// Write into the returned guard, then [`Spare::commit`] the number of bytes written;
    /// uncommitted space stays free for the next call, so lending it again costs nothing.
    ///
    /// The space holds at least 1 KiB and at most the rest of the frame at the front, and
    /// grows with the bytes that actually arrive, not with the announced length: room for
    /// as many bytes again as the front frame has brought so far (at least 4 KiB), or for
    /// the largest frame this stream has already sent whole. So a peer that announces a
    /// large frame and sends little cannot make the decoder allocate much, while a stream
    /// of large body chunks is still read a whole chunk at a time.
    pub fn spare(&mut self) -> Spare<'_> {
        let cap = (self.max_len as usize).saturating_add(4);
        let earned = self.filled.max(self.hint).max(MIN_READ);
        let need = self.missing().min(cap).min(earned);
        // What is left of the free space is lent as long as it holds the rest of the front
        // frame and is not tiny; new space is made only then, so it is filled once per
        // buffer's worth of traffic rather than once per read.
        if self.buf.len() - self.filled < need.max(MIN_SPARE) {
            self.hint = self.hint.max(need.max(MIN_READ));
            // Once large frames have been seen, room for one plus the small frames around it
            // (Postfix sends a MACRO packet before each body chunk).
            let room = if self.hint > MIN_READ {
                self.hint + MIN_READ
            } else {
                self.hint
            };
            self.make_room(room);
        }
        // With large frames about, a read stops where a large frame ends and takes at most
        // MIN_READ while the next length is unknown, so a frame cut by the end of the space
        // is short when it has to move to new space.
        let lend = if need > MIN_READ {
            need
        } else if self.hint > MIN_READ && self.announced_len().is_none() {
            MIN_READ
        } else {
            usize::MAX
        };
        let start = self.filled;
        let end = start + (self.buf.len() - start).min(lend);
        Spare {
            buf: &mut self.buf,
            filled: &mut self.filled,
            start,
            end,
        }
    }

    /// Makes `want` bytes of free space after the received bytes, reusing storage when it
    /// can: the buffer itself, else the previous one, and allocating only if both are still
    /// shared with frames handed out.
    fn make_room(&mut self, want: usize) {
        // Old free space is not carried along: it would be copied for nothing.
        self.buf.truncate(self.filled);
        self.reserve_room(want);
        self.buf.resize(self.filled + want, 0);
    }

    /// Makes capacity for `want` bytes after the received ones (see
    /// [`FrameDecoder::make_room`]), without initialising it.
    fn reserve_room(&mut self, want: usize) {
        self.storage = Storage::Reused;
        if !self.buf.try_reclaim(want) {
            let needed = self.filled + want;
            self.previous.clear();
            let next = if self.previous.try_reclaim(needed) {
                std::mem::take(&mut self.previous)
            } else {
                // Slack for a cut frame, so this storage can be reclaimed for the same room.
                BytesMut::with_capacity(needed.max(want + MIN_READ))
            };
            let mut old = std::mem::replace(&mut self.buf, next);
            self.buf.extend_from_slice(&old);
            old.clear();
            // Keep the old storage (still shared with frames) for a later reclaim.
            self.previous = old;
        }
    }

    fn announced_len(&self) -> Option<u32> {
        if self.filled < 4 {
            return None;
        }
        let head: [u8; 4] = self.buf.get(..4)?.try_into().ok()?;
        Some(u32::from_be_bytes(head))
    }

    /// Takes the next whole frame off the buffer.
    ///
    /// `Ok(None)`: more bytes are needed. `Ok(Some(_))`: exactly one frame was removed.
    /// `Err(_)`: the stream is corrupt; close the connection.
    pub fn decode(&mut self) -> Result<Option<Frame>, DecodeError> {
        let Some(len) = self.announced_len() else {
            return Ok(None);
        };
        if len == 0 {
            return Err(DecodeError::EmptyFrame);
        }
        if len > self.max_len {
            return Err(DecodeError::FrameTooLong {
                len,
                max: self.max_len,
            });
        }
        let total = (len as usize).saturating_add(4);
        if self.filled < total {
            return Ok(None);
        }
        let frame = self.buf.split_to(total).freeze();
        self.filled -= total;
        // The stream has shown frames of this size: lend room for a whole one from now on.
        self.hint = self.hint.max(total);
        let Some(&kind) = frame.get(4) else {
            return Err(DecodeError::EmptyFrame);
        };
        Ok(Some(Frame {
            kind,
            payload: frame.slice(FRAME_HEADER_LEN..),
        }))
    }
}

/// Free space lent by [`FrameDecoder::spare`].
#[derive(Debug)]
pub struct Spare<'a> {
    buf: &'a mut BytesMut,
    filled: &'a mut usize,
    start: usize,
    end: usize,
}

impl Spare<'_> {
    /// Keeps the first `written` bytes of the space (clamped to its size); the rest stays
    /// free for the next read.
    pub fn commit(&mut self, written: usize) {
        *self.filled = self.start + written.min(self.end - self.start);
    }
}

impl std::ops::Deref for Spare<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or_default()
    }
}

impl std::ops::DerefMut for Spare<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        let (start, end) = (self.start, self.end);
        self.buf.get_mut(start..end).unwrap_or_default()
    }
}

/// Appends one frame to `dst`: the length, `kind`, then what `payload` writes.
///
/// On error `dst` is left as it was.
pub(crate) fn write_frame(
    dst: &mut Vec<u8>,
    kind: u8,
    max_payload: usize,
    payload: impl FnOnce(&mut Vec<u8>) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    let start = dst.len();
    dst.extend_from_slice(&[0, 0, 0, 0, kind]);
    let result = payload(dst).and_then(|()| {
        let len = dst.len() - start - FRAME_HEADER_LEN;
        if len > max_payload {
            return Err(EncodeError::TooLong {
                len,
                max: max_payload,
            });
        }
        let announced = u32::try_from(len + 1).map_err(|_| EncodeError::TooLong {
            len,
            max: max_payload,
        })?;
        if let Some(head) = dst.get_mut(start..start + 4) {
            head.copy_from_slice(&announced.to_be_bytes());
        }
        Ok(())
    });
    if result.is_err() {
        dst.truncate(start);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_two_frames_from_one_push() {
        let mut decoder = FrameDecoder::new();
        decoder.push(&[0, 0, 0, 1, b'A', 0, 0, 0, 3, b'H', b'x', 0]);
        let first = decoder.decode().unwrap().unwrap();
        assert_eq!((first.kind, &first.payload[..]), (b'A', &b""[..]));
        let second = decoder.decode().unwrap().unwrap();
        assert_eq!((second.kind, &second.payload[..]), (b'H', &b"x\0"[..]));
        assert_eq!(decoder.decode().unwrap(), None);
        assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn zero_length_is_an_error() {
        let mut decoder = FrameDecoder::new();
        decoder.push(&[0, 0, 0, 0, b'A']);
        assert_eq!(decoder.decode(), Err(DecodeError::EmptyFrame));
    }

    #[test]
    fn oversize_is_refused_before_the_payload_arrives() {
        let mut decoder = FrameDecoder::with_max_len(10);
        decoder.push(&[0, 0, 0, 11]);
        assert_eq!(
            decoder.decode(),
            Err(DecodeError::FrameTooLong { len: 11, max: 10 })
        );
        let mut huge = FrameDecoder::new();
        huge.push(&[0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(
            huge.decode(),
            Err(DecodeError::FrameTooLong { .. })
        ));
    }

    #[test]
    fn spare_gives_back_what_was_not_committed() {
        let mut decoder = FrameDecoder::new();
        {
            let mut spare = decoder.spare();
            assert!(spare.len() >= 4);
            spare[..5].copy_from_slice(&[0, 0, 0, 1, b'Q']);
            spare.commit(5);
        }
        assert_eq!(decoder.buffered(), 5);
        assert_eq!(decoder.decode().unwrap().unwrap().kind, b'Q');
    }

    #[test]
    fn spare_is_not_sized_from_an_oversize_length() {
        // A peer announcing 16 MiB to a decoder that accepts 1 KiB must not make `spare`
        // allocate 16 MiB: `decode` refuses the frame, so the length is not to be trusted.
        let mut decoder = FrameDecoder::with_max_len(1024);
        decoder.push(&[0x00, 0xff, 0xff, 0xff]);
        assert_eq!(decoder.spare().len(), MIN_READ);
        assert!(matches!(
            decoder.decode(),
            Err(DecodeError::FrameTooLong {
                len: 0x00ff_ffff,
                max: 1024
            })
        ));
        let mut roomy = FrameDecoder::with_max_len(64 * 1024);
        roomy.push(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(roomy.spare().len(), MIN_READ);
    }

    #[test]
    fn space_grows_with_the_bytes_received_not_the_length_announced() {
        // Five bytes announcing a 512 KiB frame buy 4 KiB of space, not 512 KiB.
        let mut decoder = FrameDecoder::new();
        decoder.push(&[0x00, 0x08, 0x00, 0x00, b'O']);
        assert_eq!(decoder.spare().len(), MIN_READ);
        // Space doubles as the frame's bytes arrive...
        let mut lent = Vec::new();
        while decoder.buffered() < 0x8_0004 {
            let received = decoder.buffered();
            let mut spare = decoder.spare();
            let len = spare.len();
            assert!(len <= received.max(MIN_READ), "{len} after {received}");
            lent.push(len);
            spare.commit(len);
        }
        assert!(lent.len() > 5 && lent.len() < 20, "{lent:?}");
        assert_eq!(decoder.decode().unwrap().unwrap().payload.len(), 0x7_ffff);
        // ...and once a frame that large came whole, the next one is read in one go.
        decoder.push(&[0x00, 0x08, 0x00, 0x00]);
        assert_eq!(decoder.spare().len(), 0x8_0000);
    }

    #[test]
    fn free_space_survives_a_read_that_brought_nothing() {
        let mut decoder = FrameDecoder::new();
        let first = decoder.spare().len();
        // A read that found nothing (WouldBlock) commits nothing; the next call lends the
        // same space without filling it again.
        assert_eq!(decoder.spare().len(), first);
        assert_eq!(decoder.buffered(), 0);
        {
            let mut spare = decoder.spare();
            spare[..5].copy_from_slice(&[0, 0, 0, 1, b'Q']);
            spare.commit(5);
        }
        assert_eq!(decoder.decode().unwrap().unwrap().kind, b'Q');
        assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn small_reads_use_up_the_free_space_before_new_space_is_made() {
        let mut decoder = FrameDecoder::new();
        let mut lent = Vec::new();
        for _ in 0..3 {
            let mut spare = decoder.spare();
            lent.push(spare.len());
            spare[..6].copy_from_slice(&[0, 0, 0, 2, b'H', b'x']);
            spare.commit(6);
            assert_eq!(decoder.decode().unwrap().unwrap().kind, b'H');
        }
        // The same space, six bytes further on each time: nothing was made (or filled) anew.
        assert_eq!(lent, [MIN_READ, MIN_READ - 6, MIN_READ - 12]);
    }

    #[test]
    fn missing_counts_the_rest_of_the_front_frame() {
        let mut decoder = FrameDecoder::new();
        assert_eq!(decoder.missing(), 4);
        decoder.push(&[0, 0]);
        assert_eq!(decoder.missing(), 2);
        decoder.push(&[0, 9, b'B']);
        assert_eq!(decoder.missing(), 8);
    }

    #[test]
    fn a_second_packet_makes_storage_that_later_reads_reuse() {
        // A connection's first packet gets storage of its exact size, and reads stay pushes, so
        // a connection that then falls silent holds no read space; the second packet shows a
        // busy stream: its storage is lent by `spare` from then on, not made anew per read.
        let mut decoder = FrameDecoder::new();
        assert!(!decoder.holds_storage());
        decoder.push(&[0, 0, 0, 2, b'O', b'x']);
        assert!(
            decoder.buf.capacity() < 64,
            "sized for the packet, not for later reads"
        );
        assert_eq!(decoder.decode().unwrap().unwrap().kind, b'O');
        assert!(decoder.holds_storage() && !decoder.lends_spare());
        decoder.push(&[0, 0, 0, 2, b'H', b'x']);
        assert!(decoder.lends_spare());
        let frame = decoder.decode().unwrap().unwrap();
        let storage = frame.payload.as_ptr().wrapping_sub(FRAME_HEADER_LEN);
        drop(frame);
        // The rest of that storage is lent, right after the packet it took.
        let spare = decoder.spare();
        assert_eq!(spare.as_ptr(), storage.wrapping_add(6));
        assert_eq!(spare.len(), MIN_READ);
    }

    #[test]
    fn release_lets_go_of_storage_only_when_nothing_is_buffered() {
        let mut decoder = FrameDecoder::new();
        decoder.push(&[0, 0, 0, 2, b'H']);
        decoder.release();
        assert!(decoder.holds_storage(), "a partial frame is kept");
        decoder.push(b"x");
        assert_eq!(decoder.decode().unwrap().unwrap().payload.as_ref(), b"x");
        decoder.release();
        assert!(!decoder.holds_storage());
        decoder.push(&[0, 0, 0, 1, b'Q']);
        assert_eq!(decoder.decode().unwrap().unwrap().kind, b'Q');
    }
}
