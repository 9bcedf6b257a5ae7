//! An in-memory duplex stream between the scripted MTA and the connection under test, with
//! reads and writes cut into pieces of a size the input chooses.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use futures::io::{AsyncRead, AsyncWrite};

/// Both directions of the stream; the MTA side works on it directly, the connection through
/// [`FilterEnd`].
#[derive(Debug, Default)]
pub(super) struct Wire {
    /// MTA to filter: bytes written, and how far the connection has read.
    inbound: Vec<u8>,
    read_at: usize,
    /// Every byte the connection has read so far.
    pub(super) consumed: usize,
    /// The MTA closed its side: reads give end of stream once `inbound` is drained.
    pub(super) eof: bool,
    /// Filter to MTA, not yet taken by the MTA side.
    outbound: Vec<u8>,
    /// Every byte the connection has written so far.
    pub(super) written: usize,
    /// The waker of the connection's last read that found nothing.
    reader: Option<Waker>,
    /// Most bytes one read hands over (a socket's short reads).
    read_chunk: usize,
    /// Most bytes one write takes (a socket's short writes).
    write_chunk: usize,
}

/// The wire, shared between the MTA side and the connection.
pub(super) type SharedWire = Arc<Mutex<Wire>>;

pub(super) fn lock(wire: &Mutex<Wire>) -> MutexGuard<'_, Wire> {
    // Everything runs on one thread; a panic that poisoned the lock ends the run anyway.
    wire.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Wire {
    pub(super) fn new(read_chunk: usize, write_chunk: usize) -> SharedWire {
        Arc::new(Mutex::new(Self {
            read_chunk: read_chunk.max(1),
            write_chunk: write_chunk.max(1),
            ..Self::default()
        }))
    }

    /// The MTA sends `bytes`.
    pub(super) fn send(&mut self, bytes: &[u8]) {
        if self.read_at == self.inbound.len() {
            self.inbound.clear();
            self.read_at = 0;
        }
        self.inbound.extend_from_slice(bytes);
        self.wake_reader();
    }

    /// The MTA closes its side.
    pub(super) fn close(&mut self) {
        self.eof = true;
        self.wake_reader();
    }

    /// Bytes the MTA sent that the connection has not read yet.
    pub(super) fn unread(&self) -> usize {
        self.inbound.len() - self.read_at
    }

    /// What the connection wrote since the last call.
    pub(super) fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.outbound)
    }

    fn wake_reader(&mut self) {
        if let Some(waker) = self.reader.take() {
            waker.wake();
        }
    }
}

/// The connection's end of the stream.
#[derive(Debug)]
pub(super) struct FilterEnd(pub(super) SharedWire);

impl AsyncRead for FilterEnd {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut wire = lock(&self.0);
        let available = wire.unread();
        if available == 0 {
            if wire.eof {
                return Poll::Ready(Ok(0));
            }
            wire.reader = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = available.min(buf.len()).min(wire.read_chunk);
        let start = wire.read_at;
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), wire.inbound.get(start..start + n)) {
            dst.copy_from_slice(src);
        }
        wire.read_at += n;
        wire.consumed += n;
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for FilterEnd {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut wire = lock(&self.0);
        let n = buf.len().min(wire.write_chunk);
        wire.outbound
            .extend_from_slice(buf.get(..n).unwrap_or_default());
        wire.written += n;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
