//! A range of the store in brief: how many entries, how many tombstones,
//! and an order-free hash of every entry's key, version and kind, so two
//! replicas can tell whether a range differs without listing it.
//!
//! Computed by a scan of metadata (values are never read). It is not kept
//! current as writes happen: a bucketed tree maintained on the write path
//! is the later step for large stores.

use mydht_ring::TokenRange;

use crate::{EntryMeta, Stamp, Store, StoreError};

/// Entries read per page while digesting.
const PAGE: usize = 1024;

/// What a store holds in a range, in brief.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RangeDigest {
    /// Entries, values and tombstones.
    pub count: u64,
    /// Tombstones among them.
    pub tombstones: u64,
    /// XOR over the entries of a hash of key, version and kind.
    pub hash: u64,
}

impl RangeDigest {
    /// Adds one entry.
    pub fn add(&mut self, e: &EntryMeta) {
        self.count += 1;
        self.tombstones += u64::from(e.stamp.is_tombstone());
        self.hash ^= entry_hash(e);
    }
}

/// The digest of `range` in `store`, by a metadata scan.
pub(crate) async fn scan_digest<S: Store + ?Sized>(
    store: &S,
    range: TokenRange,
) -> Result<RangeDigest, StoreError> {
    let mut d = RangeDigest::default();
    let mut cursor = None;
    loop {
        let page = store.scan(range, cursor.as_ref(), PAGE).await?;
        for e in &page.entries {
            d.add(e);
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(d),
        }
    }
}

fn entry_hash(e: &EntryMeta) -> u64 {
    use md5::{Digest as _, Md5};
    let (kind, v) = match &e.stamp {
        Stamp::Value(v) => (0u8, v),
        Stamp::Tombstone(v) => (1u8, v),
    };
    let mut h = Md5::new();
    h.update((e.key.len() as u64).to_le_bytes());
    h.update(&e.key);
    h.update([kind]);
    h.update(v.timestamp.raw().to_le_bytes());
    h.update(v.node.as_str().as_bytes());
    let out = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&out[..8]);
    u64::from_le_bytes(first)
}
