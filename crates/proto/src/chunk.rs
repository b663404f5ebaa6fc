//! Streamed values: splitting a value into chunks, and checking a stream of
//! chunks as it arrives.
//!
//! The [`ChunkAssembler`] does not buffer: it checks each chunk (order, size,
//! announced length, a cap on the whole value) and hands it back for the
//! caller to write on, so memory stays bounded by one chunk however large the
//! value.

use bytes::Bytes;
use thiserror::Error;

use crate::Chunk;

/// Splits an in-memory value into chunks of at most `chunk_size` bytes,
/// without copying. An empty value is one empty, final chunk.
pub fn split_chunks(data: Bytes, chunk_size: usize) -> impl Iterator<Item = Chunk> {
    let size = chunk_size.max(1);
    let count = data.len().div_ceil(size).max(1);
    (0..count).map(move |i| {
        let start = i * size;
        let end = (start + size).min(data.len());
        Chunk {
            seq: u32::try_from(i).unwrap_or(u32::MAX),
            data: data.slice(start..end),
            last: i + 1 == count,
        }
    })
}

/// Why a stream of chunks is invalid.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum StreamError {
    /// A chunk arrived after the final one.
    #[error("chunk after the end of the stream")]
    AfterEnd,
    /// A chunk arrived out of order.
    #[error("chunk {got} arrived where {expected} was expected")]
    OutOfOrder {
        /// The sequence number expected.
        expected: u32,
        /// The one received.
        got: u32,
    },
    /// One chunk is bigger than the chunk size.
    #[error("chunk of {len} bytes exceeds the chunk size {max}")]
    ChunkTooLarge {
        /// Its size.
        len: usize,
        /// The chunk size.
        max: usize,
    },
    /// The value grew beyond its announced length or the size cap.
    #[error("stream of {received} bytes exceeds its limit of {max}")]
    TooLong {
        /// Bytes received so far.
        received: u64,
        /// The announced length or the cap.
        max: u64,
    },
    /// The stream ended short of its announced length.
    #[error("stream ended after {received} of {expected} bytes")]
    TooShort {
        /// Bytes received.
        received: u64,
        /// Bytes announced.
        expected: u64,
    },
}

/// Checks the chunks of one streamed value as they arrive.
#[derive(Clone, Debug)]
pub struct ChunkAssembler {
    expected: Option<u64>,
    cap: u64,
    chunk_size: usize,
    next_seq: u32,
    received: u64,
    done: bool,
}

impl ChunkAssembler {
    /// Expects a value of `expected` bytes if known, at most `cap` bytes in
    /// any case, in chunks of at most `chunk_size`.
    pub fn new(expected: Option<u64>, cap: u64, chunk_size: usize) -> Result<Self, StreamError> {
        if let Some(len) = expected
            && len > cap
        {
            return Err(StreamError::TooLong {
                received: len,
                max: cap,
            });
        }
        Ok(Self {
            expected,
            cap: expected.unwrap_or(cap),
            chunk_size,
            next_seq: 0,
            received: 0,
            done: false,
        })
    }

    /// Checks the next chunk; on success the caller writes its data on.
    pub fn push(&mut self, chunk: &Chunk) -> Result<(), StreamError> {
        if self.done {
            return Err(StreamError::AfterEnd);
        }
        if chunk.seq != self.next_seq {
            return Err(StreamError::OutOfOrder {
                expected: self.next_seq,
                got: chunk.seq,
            });
        }
        if chunk.data.len() > self.chunk_size {
            return Err(StreamError::ChunkTooLarge {
                len: chunk.data.len(),
                max: self.chunk_size,
            });
        }
        let received = self.received + chunk.data.len() as u64;
        if received > self.cap {
            return Err(StreamError::TooLong {
                received,
                max: self.cap,
            });
        }
        if chunk.last
            && let Some(expected) = self.expected
            && received != expected
        {
            return Err(StreamError::TooShort { received, expected });
        }
        self.received = received;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.done = chunk.last;
        Ok(())
    }

    /// Whether the final chunk has arrived.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Bytes accepted so far.
    pub fn received(&self) -> u64 {
        self.received
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_without_losing_bytes() {
        let data = Bytes::from((0..=255u8).cycle().take(1000).collect::<Vec<_>>());
        let chunks: Vec<_> = split_chunks(data.clone(), 300).collect();
        assert_eq!(chunks.len(), 4);
        assert_eq!(
            chunks.iter().map(|c| c.data.len()).collect::<Vec<_>>(),
            [300, 300, 300, 100]
        );
        assert!(chunks[3].last && !chunks[2].last);
        let joined: Vec<u8> = chunks.iter().flat_map(|c| c.data.iter().copied()).collect();
        assert_eq!(joined, data);
        let empty: Vec<_> = split_chunks(Bytes::new(), 300).collect();
        assert_eq!(empty.len(), 1);
        assert!(empty[0].last && empty[0].data.is_empty());
    }

    #[test]
    fn assembler_accepts_a_whole_stream() {
        let data = Bytes::from(vec![7u8; 1000]);
        let mut a = ChunkAssembler::new(Some(1000), 10_000, 300).expect("fits");
        for c in split_chunks(data, 300) {
            a.push(&c).expect("valid chunk");
        }
        assert!(a.is_done());
        assert_eq!(a.received(), 1000);
    }

    #[test]
    fn assembler_refuses_bad_streams() {
        let chunk = |seq, len, last| Chunk {
            seq,
            data: Bytes::from(vec![0u8; len]),
            last,
        };
        let mut a = ChunkAssembler::new(None, 500, 300).expect("fits");
        assert_eq!(
            a.push(&chunk(1, 10, false)),
            Err(StreamError::OutOfOrder {
                expected: 0,
                got: 1
            })
        );
        assert_eq!(
            a.push(&chunk(0, 301, false)),
            Err(StreamError::ChunkTooLarge { len: 301, max: 300 })
        );
        a.push(&chunk(0, 300, false)).expect("valid");
        assert_eq!(
            a.push(&chunk(1, 201, true)),
            Err(StreamError::TooLong {
                received: 501,
                max: 500
            })
        );
        a.push(&chunk(1, 200, true)).expect("valid");
        assert_eq!(a.push(&chunk(2, 0, true)), Err(StreamError::AfterEnd));

        let mut short = ChunkAssembler::new(Some(100), 500, 300).expect("fits");
        assert_eq!(
            short.push(&chunk(0, 50, true)),
            Err(StreamError::TooShort {
                received: 50,
                expected: 100
            })
        );
        assert!(ChunkAssembler::new(Some(501), 500, 300).is_err());
    }
}
