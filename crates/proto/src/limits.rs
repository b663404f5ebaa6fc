//! Size limits shared by both ends of a connection.
//!
//! Every frame has a hard maximum, checked from its length prefix before any
//! of it is buffered, so a peer cannot make the other side allocate beyond
//! it. Values up to the chunk size travel inline in one frame; larger ones
//! travel as a stream of chunks of at most that size.

use crate::{ErrorReply, Limited};

/// The longest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 1024;
/// Values up to this size travel inline; larger ones as chunks of this size.
pub const DEFAULT_CHUNK_SIZE: usize = 256 * 1024;
/// Chunks a sender may have in flight on one stream beyond what the
/// receiver has acknowledged consuming (see [`Body::Ack`](crate::Body)).
pub const WINDOW: u32 = 8;
/// The most parts one [`Request::ReplicaLeaves`](crate::Request) may name:
/// their leaves' digests then fit well within a frame.
pub const MAX_LEAF_PARTS: usize = 48;
/// The most asks one [`Request::ReplicaEntries`](crate::Request) may carry.
pub const MAX_ASKS: usize = 512;
/// The default hard limit on one frame: a full chunk plus room for a key,
/// versions and member lists.
pub const DEFAULT_MAX_FRAME_LEN: usize = DEFAULT_CHUNK_SIZE + 64 * 1024;

/// The limits one end enforces. Both ends of a cluster should agree; a frame
/// over the receiver's limit is refused and the connection closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest frame accepted or sent, prefix excluded.
    pub max_frame_len: usize,
    /// The largest key accepted.
    pub max_key_len: usize,
    /// The largest inline value and the size of streamed chunks.
    pub chunk_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            max_key_len: MAX_KEY_LEN,
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }
}

impl Limits {
    /// Refuses a key longer than the limit.
    pub fn check_key(&self, key: &[u8]) -> Result<(), ErrorReply> {
        check(Limited::Key, key.len(), self.max_key_len)
    }

    /// Refuses an inline value longer than the chunk size (it should have
    /// been streamed).
    pub fn check_inline_value(&self, value: &[u8]) -> Result<(), ErrorReply> {
        check(Limited::InlineValue, value.len(), self.chunk_size)
    }
}

fn check(what: Limited, size: usize, max: usize) -> Result<(), ErrorReply> {
    if size > max {
        Err(ErrorReply::TooLarge {
            what,
            size: size as u64,
            max: max as u64,
        })
    } else {
        Ok(())
    }
}
