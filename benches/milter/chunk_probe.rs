//! Heap allocations per body chunk, measured on their own.
//!
//! On one connection, the same 2 KiB body is sent first as one chunk, then as 16 chunks of
//! 128 bytes; the difference in allocations per message, over the 15 extra chunks, is the
//! cost of a chunk. Same connection, same bytes, same process: nothing else differs. (The
//! difference between W3 and W1 does not isolate it: those differ in connection count, body
//! size and timing as well, and could come out negative.)

use super::{Message, Result, Server, Snapshot, message, open_session};

/// Chunks per message in the second run.
const CHUNKS: usize = 16;
/// Bytes per message in both runs.
const BODY: usize = 2048;

/// Allocations per body chunk: the server process's, and the library's own where it tells.
#[derive(Clone, Copy, Debug)]
pub(super) struct PerChunk {
    pub(super) total: f64,
    pub(super) library: Option<f64>,
}

/// Measures `messages` of each kind after a warm-up; `None` for a server without heap
/// counters.
pub(super) async fn measure(server: &mut Server, messages: usize) -> Result<Option<PerChunk>> {
    if !server.counts_allocs {
        return Ok(None);
    }
    let messages = messages.max(10);
    let whole = Message::new(BODY, BODY);
    let chunked = Message::new(BODY, BODY / CHUNKS);
    let mut client = open_session(server.addr).await?;
    for _ in 0..10 {
        message(&mut client, &whole).await?;
        message(&mut client, &chunked).await?;
    }
    let start = server.snapshot();
    for _ in 0..messages {
        message(&mut client, &whole).await?;
    }
    let middle = server.snapshot();
    for _ in 0..messages {
        message(&mut client, &chunked).await?;
    }
    let end = server.snapshot();
    client.quit().await?;

    let per_chunk = |count: fn(&Snapshot) -> Option<u64>| {
        let one = count(&middle)?.checked_sub(count(&start)?)?;
        let many = count(&end)?.checked_sub(count(&middle)?)?;
        let extra = many as f64 - one as f64;
        // Never below zero: a chunk cannot free what the message would have allocated.
        Some((extra / messages as f64 / (CHUNKS - 1) as f64).max(0.0))
    };
    Ok(per_chunk(|s| s.allocs).map(|total| PerChunk {
        total,
        library: per_chunk(|s| s.library_allocs),
    }))
}
