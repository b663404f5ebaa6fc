//! Digests of what the store holds, kept current as writes happen, so two
//! replicas can find what differs between them without listing it.
//!
//! The position circle is cut into [`LEAVES`] fixed leaves (the top
//! [`LEAF_BITS`] bits of a position) grouped into [`PARTS`] parts (the top
//! [`PART_BITS`]). Each leaf holds a count, a tombstone count and an
//! order-free hash: the XOR over its entries of [`entry_hash`] (blake3 of
//! key, kind, version and the hash of the value's bytes, so two copies with
//! the same version and different bytes differ). The store updates the
//! leaves on every applied write, delete, purge and drop (XOR out the old
//! entry, XOR in the new), and builds them by one metadata scan when it
//! opens; nothing here scans per comparison except the few leaves a
//! comparison's [`Cover`] cuts through. This module does not compare
//! replicas or move data: the node's anti-entropy does, with these
//! digests.

use std::ops::Range;
use std::sync::{Mutex, MutexGuard, PoisonError};

use mydht_ring::{Position, TokenRange};

use crate::{EntryMeta, Stamp, Store, StoreError};

/// Bits of a position that name its leaf.
pub const LEAF_BITS: u32 = 16;
/// Leaves on the circle.
pub const LEAVES: usize = 1 << LEAF_BITS;
/// Bits of a position that name its part.
pub const PART_BITS: u32 = 8;
/// Parts on the circle, each of [`LEAVES_PER_PART`] leaves.
pub const PARTS: usize = 1 << PART_BITS;
/// Leaves in one part.
pub const LEAVES_PER_PART: usize = LEAVES / PARTS;

/// Entries read per page while digesting a leaf a cover cuts through.
const PAGE: usize = 1024;

/// A hash of a value's bytes (blake3, first 16 bytes); all zeros for a
/// tombstone and for values stored before values were hashed.
pub type ValueHash = [u8; 16];

/// The hash of `bytes` as a whole value.
pub fn value_hash(bytes: &[u8]) -> ValueHash {
    ValueHasher::default().update(bytes).finish()
}

/// A value's hash computed as its bytes stream by.
#[derive(Default)]
pub struct ValueHasher(blake3::Hasher);

impl ValueHasher {
    /// Adds the next bytes of the value.
    pub fn update(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.update(bytes);
        self
    }

    /// The hash of everything added.
    pub fn finish(&self) -> ValueHash {
        let mut out = [0u8; 16];
        out.copy_from_slice(&self.0.finalize().as_bytes()[..16]);
        out
    }
}

/// The hash one entry adds to its leaf.
pub fn entry_hash(key: &[u8], stamp: &Stamp, value: &ValueHash) -> u64 {
    let (kind, v) = match stamp {
        Stamp::Value(v) => (0u8, v),
        Stamp::Tombstone(v) => (1u8, v),
    };
    let node = v.node.as_str().as_bytes();
    let mut h = blake3::Hasher::new();
    h.update(&(key.len() as u64).to_le_bytes());
    h.update(key);
    h.update(&[kind]);
    h.update(&v.timestamp.raw().to_le_bytes());
    h.update(&(node.len() as u64).to_le_bytes());
    h.update(node);
    h.update(value);
    let mut first = [0u8; 8];
    first.copy_from_slice(&h.finalize().as_bytes()[..8]);
    u64::from_le_bytes(first)
}

impl EntryMeta {
    /// The hash this entry adds to its leaf.
    pub fn entry_hash(&self) -> u64 {
        entry_hash(&self.key, &self.stamp, &self.value_hash)
    }
}

/// The first 4 bytes (little-endian) of a hash, as leaf digests carry it.
pub fn hash_prefix(hash: u64) -> [u8; 4] {
    let b = hash.to_le_bytes();
    [b[0], b[1], b[2], b[3]]
}

/// The leaf a position falls in.
pub fn leaf_of(p: Position) -> usize {
    (p.0 >> (64 - LEAF_BITS)) as usize
}

/// The first and last positions of `leaf`.
fn leaf_bounds(leaf: usize) -> (u64, u64) {
    let lo = (leaf as u64) << (64 - LEAF_BITS);
    (lo, lo | (u64::MAX >> LEAF_BITS))
}

/// What a store holds in some positions, in brief.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RangeDigest {
    /// Entries, values and tombstones.
    pub count: u64,
    /// Tombstones among them.
    pub tombstones: u64,
    /// XOR over the entries of [`entry_hash`].
    pub hash: u64,
}

impl RangeDigest {
    /// Adds one entry.
    pub fn add(&mut self, e: &EntryMeta) {
        self.count += 1;
        self.tombstones += u64::from(e.stamp.is_tombstone());
        self.hash ^= e.entry_hash();
    }

    /// Adds every entry of `other` (disjoint from this one's).
    pub fn merge(&mut self, other: &RangeDigest) {
        self.count += other.count;
        self.tombstones += other.tombstones;
        self.hash ^= other.hash;
    }
}

/// Positions a comparison covers: the ranges two replicas share, as
/// sorted, disjoint inclusive intervals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cover(Vec<(u64, u64)>);

impl Cover {
    /// The positions of `ranges`, merged.
    pub fn of(ranges: impl IntoIterator<Item = TokenRange>) -> Self {
        let mut out = Vec::new();
        for r in ranges {
            let (s, e) = (r.start().0, r.end().0);
            if r.is_full() {
                out.push((0, u64::MAX));
            } else if s < e {
                out.push((s + 1, e));
            } else {
                // Wraps past the top: (s, MAX] and [0, e].
                if s < u64::MAX {
                    out.push((s + 1, u64::MAX));
                }
                out.push((0, e));
            }
        }
        Self::from_intervals(out)
    }

    /// A cover from inclusive intervals in any order (as received from a
    /// peer): empty ones are ignored, overlapping and adjacent ones merged.
    pub fn from_intervals(mut v: Vec<(u64, u64)>) -> Self {
        v.retain(|(lo, hi)| lo <= hi);
        v.sort_unstable();
        let mut out: Vec<(u64, u64)> = Vec::with_capacity(v.len());
        for (lo, hi) in v {
            match out.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                _ => out.push((lo, hi)),
            }
        }
        Self(out)
    }

    /// The intervals, sorted and disjoint.
    pub fn intervals(&self) -> &[(u64, u64)] {
        &self.0
    }

    /// Whether `p` is covered.
    pub fn contains(&self, p: Position) -> bool {
        let i = self.0.partition_point(|(_, hi)| *hi < p.0);
        self.0.get(i).is_some_and(|(lo, _)| *lo <= p.0)
    }

    /// The covered parts of `[lo, hi]`.
    fn clip(&self, lo: u64, hi: u64) -> impl Iterator<Item = (u64, u64)> + '_ {
        let first = self.0.partition_point(|(_, h)| *h < lo);
        self.0[first..]
            .iter()
            .take_while(move |(l, _)| *l <= hi)
            .map(move |(l, h)| ((*l).max(lo), (*h).min(hi)))
    }

    /// Whether every position of `[lo, hi]` is covered.
    fn covers(&self, lo: u64, hi: u64) -> bool {
        let i = self.0.partition_point(|(_, h)| *h < lo);
        self.0.get(i).is_some_and(|(l, h)| *l <= lo && *h >= hi)
    }
}

/// One leaf as the store keeps it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Leaf {
    count: u32,
    tombstones: u32,
    hash: u64,
}

impl Leaf {
    fn digest(self) -> RangeDigest {
        RangeDigest {
            count: u64::from(self.count),
            tombstones: u64::from(self.tombstones),
            hash: self.hash,
        }
    }
}

/// One entry coming into or going out of the store, for the tree.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Change {
    pub leaf: usize,
    pub tombstone: bool,
    pub hash: u64,
    /// In (true) or out (false).
    pub added: bool,
}

impl Change {
    /// An entry whose hash is known.
    pub fn of(position: Position, tombstone: bool, hash: u64, added: bool) -> Self {
        Self {
            leaf: leaf_of(position),
            tombstone,
            hash,
            added,
        }
    }

    pub fn new(
        position: Position,
        key: &[u8],
        stamp: &Stamp,
        value: &ValueHash,
        added: bool,
    ) -> Self {
        Self {
            leaf: leaf_of(position),
            tombstone: stamp.is_tombstone(),
            hash: entry_hash(key, stamp, value),
            added,
        }
    }
}

/// The leaves of one store, updated by its writer as writes apply.
pub struct DigestTree {
    leaves: Mutex<Vec<Leaf>>,
}

impl Default for DigestTree {
    fn default() -> Self {
        Self {
            leaves: Mutex::new(vec![Leaf::default(); LEAVES]),
        }
    }
}

impl std::fmt::Debug for DigestTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestTree").finish_non_exhaustive()
    }
}

impl DigestTree {
    fn lock(&self) -> MutexGuard<'_, Vec<Leaf>> {
        // Each update is a few plain field writes: a panic cannot leave a
        // leaf half done in a way the next rebuild does not mend.
        self.leaves.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn apply(&self, changes: &[Change]) {
        if changes.is_empty() {
            return;
        }
        let mut leaves = self.lock();
        for c in changes {
            apply_one(&mut leaves, c);
        }
    }

    /// Replaces every leaf with what `rebuilt` adds up to.
    pub(crate) fn replace(&self, rebuilt: Rebuild) {
        *self.lock() = rebuilt.0;
    }

    fn snapshot(&self, leaves: Range<usize>) -> Vec<Leaf> {
        self.lock()[leaves].to_vec()
    }
}

/// Leaves built up from every entry of a store, to replace a tree's.
pub(crate) struct Rebuild(Vec<Leaf>);

impl Rebuild {
    pub fn new() -> Self {
        Self(vec![Leaf::default(); LEAVES])
    }

    pub fn add(&mut self, c: &Change) {
        apply_one(&mut self.0, c);
    }
}

fn apply_one(leaves: &mut [Leaf], c: &Change) {
    let Some(l) = leaves.get_mut(c.leaf) else {
        return;
    };
    l.hash ^= c.hash;
    // Counts come from disk at open: saturate rather than panic.
    if c.added {
        l.count = l.count.saturating_add(1);
        l.tombstones = l.tombstones.saturating_add(u32::from(c.tombstone));
    } else {
        l.count = l.count.saturating_sub(1);
        l.tombstones = l.tombstones.saturating_sub(u32::from(c.tombstone));
    }
}

/// The digests of `leaves` clipped to `cover`: kept leaves where the cover
/// holds them whole, a scan of the covered part where it cuts through.
pub async fn leaf_digests<S: Store + ?Sized>(
    store: &S,
    cover: &Cover,
    leaves: Range<usize>,
) -> Result<Vec<RangeDigest>, StoreError> {
    let leaves = leaves.start.min(LEAVES)..leaves.end.min(LEAVES);
    let kept = store.tree().snapshot(leaves.clone());
    let mut out = Vec::with_capacity(kept.len());
    for (leaf, kept) in leaves.zip(kept) {
        let (lo, hi) = leaf_bounds(leaf);
        if cover.covers(lo, hi) {
            out.push(kept.digest());
            continue;
        }
        let mut d = RangeDigest::default();
        for (a, b) in cover.clip(lo, hi) {
            scan_interval(store, a, b, |e| d.add(e)).await?;
        }
        out.push(d);
    }
    Ok(out)
}

/// The digests of the [`PARTS`] parts of the circle, clipped to `cover`.
pub async fn part_digests<S: Store + ?Sized>(
    store: &S,
    cover: &Cover,
) -> Result<Vec<RangeDigest>, StoreError> {
    Ok(parts_of(&leaf_digests(store, cover, 0..LEAVES).await?))
}

/// The part digests that every leaf's digest (in order) adds up to.
pub fn parts_of(leaves: &[RangeDigest]) -> Vec<RangeDigest> {
    leaves
        .chunks(LEAVES_PER_PART)
        .map(|part| {
            let mut d = RangeDigest::default();
            part.iter().for_each(|l| d.merge(l));
            d
        })
        .collect()
}

/// The entries of `leaf` that `cover` covers, in position order.
pub async fn leaf_entries<S: Store + ?Sized>(
    store: &S,
    cover: &Cover,
    leaf: usize,
) -> Result<Vec<EntryMeta>, StoreError> {
    let mut out = Vec::new();
    if leaf >= LEAVES {
        return Ok(out);
    }
    let (lo, hi) = leaf_bounds(leaf);
    for (a, b) in cover.clip(lo, hi) {
        scan_interval(store, a, b, |e| out.push(e.clone())).await?;
    }
    Ok(out)
}

/// The digest of `range`, from the kept leaves.
pub(crate) async fn range_digest<S: Store + ?Sized>(
    store: &S,
    range: TokenRange,
) -> Result<RangeDigest, StoreError> {
    let cover = Cover::of([range]);
    // The leaves the range touches, each once: a range that wraps round
    // can start and end in one leaf.
    let mut spans: Vec<Range<usize>> = cover
        .intervals()
        .iter()
        .map(|&(lo, hi)| leaf_of(Position(lo))..leaf_of(Position(hi)) + 1)
        .collect();
    spans.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<usize>> = Vec::with_capacity(spans.len());
    for r in spans {
        match merged.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    let mut d = RangeDigest::default();
    for leaves in merged {
        for l in leaf_digests(store, &cover, leaves).await? {
            d.merge(&l);
        }
    }
    Ok(d)
}

/// Calls `f` on every entry whose position lies in `[lo, hi]`.
async fn scan_interval<S: Store + ?Sized>(
    store: &S,
    lo: u64,
    hi: u64,
    mut f: impl FnMut(&EntryMeta),
) -> Result<(), StoreError> {
    // (lo - 1, hi] is [lo, hi]; from 0 to the top it is the whole circle,
    // which a range from a point to itself means.
    let range = TokenRange::new(Position(lo.wrapping_sub(1)), Position(hi));
    let mut cursor = None;
    loop {
        let page = store.scan(range, cursor.as_ref(), PAGE).await?;
        page.entries.iter().for_each(&mut f);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: u64, e: u64) -> TokenRange {
        TokenRange::new(Position(s), Position(e))
    }

    #[test]
    fn covers_merge_wrap_and_clip() {
        let c = Cover::of([r(10, 20), r(20, 30), r(u64::MAX - 5, 3)]);
        assert_eq!(c.intervals(), &[(0, 3), (11, 30), (u64::MAX - 4, u64::MAX)]);
        assert!(c.contains(Position(0)) && c.contains(Position(30)));
        assert!(!c.contains(Position(10)) && !c.contains(Position(31)));
        assert!(c.covers(11, 30) && !c.covers(10, 30));
        assert_eq!(c.clip(2, 12).collect::<Vec<_>>(), vec![(2, 3), (11, 12)]);
        assert_eq!(Cover::of([r(7, 7)]).intervals(), &[(0, u64::MAX)]);
        assert_eq!(
            Cover::from_intervals(vec![(5, 1), (3, 4), (0, 2)]).intervals(),
            &[(0, 4)]
        );
    }

    #[test]
    fn leaves_split_the_circle_evenly() {
        assert_eq!(leaf_of(Position(0)), 0);
        assert_eq!(leaf_of(Position(u64::MAX)), LEAVES - 1);
        let (lo, hi) = leaf_bounds(1);
        assert_eq!((leaf_of(Position(lo)), leaf_of(Position(hi))), (1, 1));
        assert_eq!(leaf_of(Position(hi + 1)), 2);
    }
}
