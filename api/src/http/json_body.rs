//! A response's JSON written into chunks of a fixed size and sent as they are.
//!
//! Written into one `Vec`, a 90 KB answer grew by doubling: ten reallocations, each
//! copying all that was written so far, and, at the last, the old 64 KB buffer and the new
//! 128 KB one alive at once, for every request in flight. In chunks, nothing written is
//! copied again, and no buffer outgrows the chunk size (BENCHMARKS.md, "Responses written
//! in chunks"). The body's length is known once it is written, so it still goes out with a
//! `Content-Length`.

use std::{
    collections::VecDeque,
    io,
    mem::MaybeUninit,
    pin::Pin,
    task::{Context, Poll},
};

use axum::body::Bytes;
use http_body::{Frame, SizeHint};
use sonic_rs::writer::WriteExt;

/// The size of a chunk: small enough for the allocator to keep reusing its pages, large
/// enough that a large answer takes few.
const CHUNK_BYTES: usize = 16 * 1024;

/// `value` as JSON, in chunks.
pub(super) fn to_body(value: &impl serde::Serialize) -> sonic_rs::Result<JsonBody> {
    let mut chunks = Chunks { full: VecDeque::new(), current: Vec::new() };
    sonic_rs::to_writer(&mut chunks, value)?;
    let Chunks { mut full, current } = chunks;
    if !current.is_empty() {
        full.push_back(Bytes::from(current));
    }
    let length = full.iter().map(|chunk| chunk.len() as u64).sum();
    Ok(JsonBody { chunks: full, length })
}

/// The chunks written so far and the one being written.
struct Chunks {
    full: VecDeque<Bytes>,
    current: Vec<u8>,
}

impl Chunks {
    /// Room for `additional` more bytes in the current chunk. Called for every token the
    /// serialiser writes, so the check is inlined and the new chunk is not.
    #[inline(always)]
    fn reserve(&mut self, additional: usize) {
        if self.current.capacity() - self.current.len() < additional {
            self.next_chunk(additional);
        }
    }

    /// Seals the current chunk and starts one with room for `additional` bytes (more than
    /// the chunk size only for a single write that is).
    #[cold]
    fn next_chunk(&mut self, additional: usize) {
        let next = Vec::with_capacity(additional.max(CHUNK_BYTES));
        let full = std::mem::replace(&mut self.current, next);
        if !full.is_empty() {
            self.full.push_back(Bytes::from(full));
        }
    }
}

impl io::Write for Chunks {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.reserve(bytes.len());
        self.current.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl WriteExt for Chunks {
    #[inline(always)]
    fn reserve_with(&mut self, additional: usize) -> io::Result<&mut [MaybeUninit<u8>]> {
        self.reserve(additional);
        Ok(&mut self.current.spare_capacity_mut()[..additional])
    }

    #[inline(always)]
    unsafe fn flush_len(&mut self, additional: usize) -> io::Result<()> {
        // SAFETY: the serialiser has initialised `additional` bytes of the spare capacity
        // `reserve_with` returned, and nothing has touched `current` since.
        unsafe { self.current.set_len(self.current.len() + additional) };
        Ok(())
    }
}

/// A written JSON body: its chunks, sent in order, and its length.
pub(super) struct JsonBody {
    chunks: VecDeque<Bytes>,
    /// Bytes not yet sent.
    length: u64,
}

impl http_body::Body for JsonBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let chunk = self.chunks.pop_front();
        if let Some(chunk) = &chunk {
            self.length -= chunk.len() as u64;
        }
        Poll::Ready(chunk.map(|chunk| Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sent(body: JsonBody) -> Bytes {
        axum::body::to_bytes(axum::body::Body::new(body), usize::MAX).await.expect("infallible")
    }

    #[tokio::test]
    async fn a_body_of_many_chunks_is_the_json_of_its_value_and_says_its_length() {
        let value = serde_json::json!({
            "items": (0..5000).map(|i| format!("item \"{i}\" of five thousand")).collect::<Vec<_>>()
        });

        let body = to_body(&value).expect("a value serialises");

        assert!(body.chunks.len() > 5, "{} chunks", body.chunks.len());
        assert!(body.chunks.iter().all(|chunk| chunk.len() <= CHUNK_BYTES));
        let expected = serde_json::to_vec(&value).expect("a value serialises");
        assert_eq!(http_body::Body::size_hint(&body).exact(), Some(expected.len() as u64));
        assert_eq!(sent(body).await, expected);
    }

    #[tokio::test]
    async fn a_small_body_is_one_chunk() {
        let body = to_body(&serde_json::json!({ "data": { "id": 1 } })).expect("a value serialises");

        assert_eq!(body.chunks.len(), 1);
        assert_eq!(sent(body).await, r#"{"data":{"id":1}}"#);
    }
}
