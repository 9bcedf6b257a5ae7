//! The framed stream under the client: writes and reads with a time limit.

use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::error::ClientError;
use crate::proto::{CommandKind, Frame, FrameDecoder};

/// A stream plus the decoder of the filter's packets.
///
/// The stream is dropped on [`close`](Self::close): `futures::io::AsyncWriteExt::close` only
/// flushes some sockets (async-std's), so dropping is the only portable way to make the
/// filter see end of stream, as it does when a real MTA closes the connection.
#[derive(Debug)]
pub(crate) struct Framed<S> {
    pub(crate) stream: Option<S>,
    decoder: FrameDecoder,
    /// The last command was sent under a no-reply flag: check for stray answers before the
    /// next write.
    pub(crate) unanswered: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Framed<S> {
    pub(crate) fn new(stream: S) -> Self {
        Self {
            stream: Some(stream),
            decoder: FrameDecoder::new(),
            unanswered: false,
        }
    }

    /// Writes `bytes` and flushes, failing after `limit`.
    pub(crate) async fn write(
        &mut self,
        bytes: &[u8],
        command: CommandKind,
        limit: Duration,
    ) -> Result<(), ClientError> {
        let stream = self.stream.as_mut().ok_or(ClientError::SessionClosed)?;
        let write = async move {
            stream.write_all(bytes).await?;
            stream.flush().await
        };
        match async_std::future::timeout(limit, write).await {
            Ok(result) => result.map_err(ClientError::Io),
            Err(_) => Err(ClientError::Timeout {
                command,
                after: limit,
            }),
        }
    }

    /// Reads the next whole frame, failing at `deadline`.
    pub(crate) async fn read_frame(
        &mut self,
        command: CommandKind,
        deadline: Instant,
        limit: Duration,
    ) -> Result<Frame, ClientError> {
        loop {
            if let Some(frame) = self.decoder.decode()? {
                return Ok(frame);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let stream = self.stream.as_mut().ok_or(ClientError::SessionClosed)?;
            let mut spare = self.decoder.spare();
            let read = stream.read(&mut spare);
            let read = match async_std::future::timeout(left, read).await {
                Ok(read) => read?,
                Err(_) => {
                    return Err(ClientError::Timeout {
                        command,
                        after: limit,
                    });
                }
            };
            if read == 0 {
                return Err(ClientError::Closed { command });
            }
            spare.commit(read);
        }
    }

    /// Fails if the filter has sent anything while no answer is awaited: bytes already
    /// buffered, or bytes that can be read without waiting. End of stream is not an error
    /// here; the next read reports it.
    pub(crate) fn check_idle(&mut self) -> Result<(), ClientError> {
        if let (0, Some(stream)) = (self.decoder.buffered(), self.stream.as_mut()) {
            let mut spare = self.decoder.spare();
            if let Some(Ok(read)) = stream.read(&mut spare).now_or_never() {
                spare.commit(read);
            }
        }
        if self.decoder.buffered() == 0 {
            return Ok(());
        }
        let response = self.decoder.decode().ok().flatten().map(|frame| frame.kind);
        Err(ClientError::Unsolicited { response })
    }

    /// Fails if anything is buffered after a final answer.
    pub(crate) fn check_drained(&mut self) -> Result<(), ClientError> {
        if self.decoder.buffered() == 0 {
            return Ok(());
        }
        let response = self.decoder.decode().ok().flatten().map(|frame| frame.kind);
        Err(ClientError::Unsolicited { response })
    }

    /// Flushes and closes the stream, then drops it, ignoring errors (the peer may be gone).
    pub(crate) async fn close(&mut self, limit: Duration) {
        if let Some(mut stream) = self.stream.take() {
            let _ = async_std::future::timeout(limit, stream.close()).await;
        }
    }
}
