//! The values the store hands out: stamps, lookups, listings and counters.
//!
//! A [`Stamp`] is what `version_of` returns: a live value's or a tombstone's
//! version. A [`Lookup`] is what `get` returns: absent, a tombstone, or a
//! value whose body is read as a stream ([`ValueReader`]) whether it lives in
//! the engine or in a file beside it. These types carry no engine details.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use mydht_proto::Version;
use mydht_ring::Position;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

use crate::StoreError;

/// The longest key the store accepts, in bytes (the wire protocol's limit).
pub const MAX_KEY_LEN: usize = mydht_proto::MAX_KEY_LEN;

/// The version of what a key holds: a value or a tombstone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stamp {
    /// A live value written with this version.
    Value(Version),
    /// A delete written with this version.
    Tombstone(Version),
}

impl Stamp {
    /// The version, whichever kind of entry carries it.
    pub fn version(&self) -> &Version {
        match self {
            Self::Value(v) | Self::Tombstone(v) => v,
        }
    }

    /// Whether this is a tombstone.
    pub fn is_tombstone(&self) -> bool {
        matches!(self, Self::Tombstone(_))
    }
}

/// What `haskey` prints for a key: seconds since the epoch with a fraction,
/// as the seed printed them (`1300386351.67`), and `0.0` for a key that is
/// missing or deleted.
pub fn haskey_text(stamp: Option<&Stamp>) -> String {
    match stamp {
        Some(Stamp::Value(v)) => {
            let secs = v.timestamp.as_secs_f64();
            if secs.fract() == 0.0 {
                format!("{secs:.1}")
            } else {
                format!("{secs}")
            }
        }
        Some(Stamp::Tombstone(_)) | None => "0.0".to_string(),
    }
}

/// Whether a write changed the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Outcome {
    /// The write was newer than what the key held and is now stored.
    Applied,
    /// The key already held this version or a newer one; nothing changed.
    Superseded,
}

impl Outcome {
    /// Whether the write was applied.
    pub fn applied(self) -> bool {
        self == Self::Applied
    }
}

/// What `get` found for a key.
#[derive(Debug)]
pub enum Lookup {
    /// The key was never written, or its tombstone has been collected.
    Absent,
    /// The key was deleted with this version.
    Tombstone(Version),
    /// The key holds a value.
    Value(StoredValue),
}

impl Lookup {
    /// The stamp of what was found, if anything.
    pub fn stamp(&self) -> Option<Stamp> {
        match self {
            Self::Absent => None,
            Self::Tombstone(v) => Some(Stamp::Tombstone(v.clone())),
            Self::Value(s) => Some(Stamp::Value(s.version.clone())),
        }
    }
}

/// A stored value: its version, its length and a reader for its bytes.
pub struct StoredValue {
    pub(crate) version: Version,
    pub(crate) len: u64,
    pub(crate) body: ValueReader,
}

impl fmt::Debug for StoredValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredValue")
            .field("version", &self.version)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl StoredValue {
    /// The version the value was written with.
    pub fn version(&self) -> &Version {
        &self.version
    }

    /// The value's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value's bytes as a stream; large values are read from their file
    /// chunk by chunk, never held whole in memory.
    pub fn into_reader(self) -> ValueReader {
        self.body
    }

    /// The whole value in memory, refusing values longer than `max` bytes.
    pub async fn into_bytes(self, max: u64) -> Result<Bytes, StoreError> {
        if self.len > max {
            return Err(StoreError::ValueTooLarge { len: self.len, max });
        }
        match self.body.0 {
            ReaderInner::Memory(cursor) => Ok(cursor.into_inner()),
            ReaderInner::File(mut file) => {
                let mut buf = Vec::with_capacity(usize::try_from(self.len).unwrap_or(0));
                file.read_to_end(&mut buf)
                    .await
                    .map_err(|e| StoreError::io("reading a value file", e))?;
                Ok(Bytes::from(buf))
            }
        }
    }
}

/// A value's bytes as an [`AsyncRead`].
pub struct ValueReader(ReaderInner);

enum ReaderInner {
    Memory(io::Cursor<Bytes>),
    File(tokio::io::Take<tokio::fs::File>),
}

impl ValueReader {
    pub(crate) fn memory(bytes: Bytes) -> Self {
        Self(ReaderInner::Memory(io::Cursor::new(bytes)))
    }

    pub(crate) fn file(file: tokio::fs::File, len: u64) -> Self {
        Self(ReaderInner::File(file.take(len)))
    }
}

impl AsyncRead for ValueReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            ReaderInner::Memory(c) => Pin::new(c).poll_read(cx, buf),
            ReaderInner::File(f) => Pin::new(f).poll_read(cx, buf),
        }
    }
}

/// One entry in a listing: metadata only, never the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryMeta {
    /// The key.
    pub key: Bytes,
    /// The key's position on the ring.
    pub position: Position,
    /// Value or tombstone, with its version.
    pub stamp: Stamp,
    /// The value's length (0 for a tombstone).
    pub size: u64,
    /// The hash of the value's bytes (zeros for a tombstone).
    pub value_hash: crate::ValueHash,
}

/// Where a paged listing stopped; pass it back to continue after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanCursor(pub(crate) Vec<u8>);

impl ScanCursor {
    /// The cursor as bytes, to put in a link or a message.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// A cursor from bytes given out by [`ScanCursor::as_bytes`]. Any bytes
    /// are accepted: a cursor is only a point to continue after.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }
}

/// One page of a listing.
#[derive(Clone, Debug, Default)]
pub struct ScanPage {
    /// Entries in ring order from the range's start.
    pub entries: Vec<EntryMeta>,
    /// Where to continue, or `None` when the range is exhausted.
    pub next: Option<ScanCursor>,
}

/// Counters kept up to date on every write, so reading them costs nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Keys holding a live value.
    pub live_keys: u64,
    /// Keys holding a tombstone.
    pub tombstones: u64,
    /// Total length of all live values.
    pub value_bytes: u64,
}

/// Why a tombstone was not collected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purge {
    /// The tombstone is gone.
    Removed,
    /// The caller has not confirmed that every replica holds the tombstone.
    NotHeldEverywhere,
    /// The grace period since the delete has not passed yet.
    TooRecent,
    /// The key no longer holds exactly that tombstone (a newer write came).
    Changed,
}

/// What the caller knows when it asks for a tombstone to be collected.
#[derive(Clone, Debug)]
pub struct PurgeRequest {
    /// The tombstone's version, as read from this store.
    pub version: Version,
    /// Whether every replica of the key confirmed holding this tombstone.
    pub held_by_all_replicas: bool,
    /// The caller's clock now.
    pub now: mydht_proto::Timestamp,
    /// How long after the delete a tombstone must be kept regardless.
    pub grace: std::time::Duration,
}

impl PurgeRequest {
    /// Why the request does not allow collection, if it does not.
    pub(crate) fn refusal(&self) -> Option<Purge> {
        if !self.held_by_all_replicas {
            return Some(Purge::NotHeldEverywhere);
        }
        (!past_grace(self.now, &self.version, self.grace)).then_some(Purge::TooRecent)
    }
}

/// Whether `grace` has passed, at `now`, since `version` was stamped.
pub fn past_grace(
    now: mydht_proto::Timestamp,
    version: &Version,
    grace: std::time::Duration,
) -> bool {
    let grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
    now.millis().saturating_sub(version.timestamp.millis()) >= grace_ms
}

/// Checks a key against the store's limit.
pub(crate) fn check_key(key: &[u8]) -> Result<(), StoreError> {
    if key.len() > MAX_KEY_LEN {
        return Err(StoreError::KeyTooLong {
            len: key.len(),
            max: MAX_KEY_LEN,
        });
    }
    Ok(())
}
