//! The `Store` trait: what a node asks of its local storage.
//!
//! Every write carries the version its coordinator stamped; the store keeps
//! the newest per key (last-writer-wins, compare-and-set under one lock or
//! one writer, so two racing writes always leave the newer) and says whether
//! a write applied. It does not stamp, replicate or know the ring's members.

use std::future::Future;

use bytes::Bytes;
use mydht_proto::Version;
use mydht_ring::{NodeId, TokenRange};
use tokio::io::AsyncRead;

use crate::{
    DigestTree, Hint, Lookup, Outcome, Purge, PurgeRequest, RangeDigest, ScanCursor, ScanPage,
    Stamp, StoreError, StoreStats,
};

/// A node's local storage engine.
pub trait Store: Send + Sync + 'static {
    /// Stores `value` under `key` if `version` is newer than what the key
    /// holds (value or tombstone). Acknowledged only once durable under the
    /// engine's sync policy.
    fn put(
        &self,
        key: &[u8],
        version: Version,
        value: Bytes,
    ) -> impl Future<Output = Result<Outcome, StoreError>> + Send;

    /// Like [`put`](Self::put), reading the value from `body` as it arrives
    /// (to its end). Large values go to disk chunk by chunk; until the whole
    /// value is stored and synced, readers see the previous version. If the
    /// key already holds this version or a newer one, `body` is not read.
    fn put_stream<R>(
        &self,
        key: &[u8],
        version: Version,
        body: R,
    ) -> impl Future<Output = Result<Outcome, StoreError>> + Send
    where
        R: AsyncRead + Unpin + Send;

    /// Writes a tombstone with `version` if it is newer than what the key
    /// holds.
    fn delete(
        &self,
        key: &[u8],
        version: Version,
    ) -> impl Future<Output = Result<Outcome, StoreError>> + Send;

    /// What the key holds: a value (streamed), a tombstone, or nothing.
    fn get(&self, key: &[u8]) -> impl Future<Output = Result<Lookup, StoreError>> + Send;

    /// The key's stamp, reading metadata only (never the value).
    fn version_of(
        &self,
        key: &[u8],
    ) -> impl Future<Output = Result<Option<Stamp>, StoreError>> + Send;

    /// Up to `limit` entries whose key position lies in `range`, in ring
    /// order from the range's start, continuing after `after` if given.
    fn scan(
        &self,
        range: TokenRange,
        after: Option<&ScanCursor>,
        limit: usize,
    ) -> impl Future<Output = Result<ScanPage, StoreError>> + Send;

    /// One page of all keys (tombstones included) in position order, for the
    /// status page.
    fn list_keys(
        &self,
        after: Option<&ScanCursor>,
        page_size: usize,
    ) -> impl Future<Output = Result<ScanPage, StoreError>> + Send {
        self.scan(crate::layout::whole_ring(), after, page_size)
    }

    /// A digest of the entries whose position lies in `range`, values and
    /// tombstones alike, from the kept leaves (a scan only of the two a
    /// range's ends cut through).
    fn digest(
        &self,
        range: TokenRange,
    ) -> impl Future<Output = Result<RangeDigest, StoreError>> + Send {
        crate::digest::range_digest(self, range)
    }

    /// The per-leaf digests this store keeps current as writes apply.
    fn tree(&self) -> &DigestTree;

    /// Key count and bytes, kept current on every write (no scan).
    fn stats(&self) -> StoreStats;

    /// Removes the key's tombstone if it is still exactly `req.version`, the
    /// caller confirms every replica holds it and the grace period has
    /// passed. Age alone never collects a tombstone.
    fn purge_tombstone(
        &self,
        key: &[u8],
        req: PurgeRequest,
    ) -> impl Future<Output = Result<Purge, StoreError>> + Send;

    /// Removes the key (value or tombstone) if it still holds exactly
    /// `stamp`: for a node that no longer owns the key, once the caller has
    /// seen its owners hold the same or a newer version. Answers
    /// [`Purge::Changed`] when a newer write came in the meantime.
    fn drop_entry(
        &self,
        key: &[u8],
        stamp: &Stamp,
    ) -> impl Future<Output = Result<Purge, StoreError>> + Send;

    /// Keeps `hint` (a member missed a version of a key), unless a hint
    /// for that member and key with a newer version is already kept.
    fn put_hint(&self, hint: Hint) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Forgets the hint for `target` and `key` if it still holds exactly
    /// `version` (a newer one kept meanwhile stays).
    fn remove_hint(
        &self,
        target: &NodeId,
        key: &[u8],
        version: &Version,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every hint kept, to load at start.
    fn hints(&self) -> impl Future<Output = Result<Vec<Hint>, StoreError>> + Send;
}
