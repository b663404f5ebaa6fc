//! The in-memory engine: the seed's behaviour, for `--memory` and tests.
//!
//! Everything lives in one ordered map under one lock, keyed like the disk
//! engine (position, then key) so listings come out in the same order. It
//! keeps nothing across restarts and holds every value whole in memory,
//! however large. Its digests are updated under the same lock as the map.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use mydht_proto::Version;
use mydht_ring::{NodeId, Position, TokenRange};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::digest::{Change, value_hash};
use crate::entry::check_key;
use crate::layout::{engine_key, plan, split_engine_key};
use crate::{
    DigestTree, EntryMeta, Hint, Lookup, Outcome, Purge, PurgeRequest, ScanCursor, ScanPage, Stamp,
    Store, StoreError, StoreStats, StoredValue, ValueHash, ValueReader,
};

#[derive(Default)]
struct Inner {
    /// Per key: stamp, value, the value's hash and the entry's hash.
    entries: BTreeMap<Vec<u8>, Held>,
    stats: StoreStats,
    /// Hints by (target, key).
    hints: BTreeMap<(NodeId, Vec<u8>), (Version, u64)>,
}

impl Inner {
    fn account(&mut self, entry: &Held, sign_add: bool) {
        let bytes = entry.1.len() as u64;
        let s = &mut self.stats;
        match (&entry.0, sign_add) {
            (Stamp::Value(_), true) => {
                s.live_keys += 1;
                s.value_bytes += bytes;
            }
            (Stamp::Value(_), false) => {
                s.live_keys = s.live_keys.saturating_sub(1);
                s.value_bytes = s.value_bytes.saturating_sub(bytes);
            }
            (Stamp::Tombstone(_), true) => s.tombstones += 1,
            (Stamp::Tombstone(_), false) => s.tombstones = s.tombstones.saturating_sub(1),
        }
    }

    /// Stores the entry if newer (hashed by the caller before it took the
    /// lock, see [`prepare`]).
    fn write(&mut self, tree: &DigestTree, w: Prepared) -> Outcome {
        if let Some(old) = self.entries.get(&w.ekey)
            && old.0.version() >= w.held.0.version()
        {
            return Outcome::Superseded;
        }
        self.account(&w.held, true);
        let mut changes = vec![w.change];
        if let Some(old) = self.entries.insert(w.ekey, w.held) {
            self.account(&old, false);
            changes.push(old_change(w.change, &old));
        }
        tree.apply(&changes);
        Outcome::Applied
    }

    /// Removes the entry, keeping counters and digests current.
    fn remove(&mut self, tree: &DigestTree, ekey: &[u8]) {
        if let Some(old) = self.entries.remove(ekey)
            && let Some((position, _)) = split_engine_key(ekey)
        {
            self.account(&old, false);
            let gone = Change::of(position, old.0.is_tombstone(), old.3, false);
            tree.apply(&[gone]);
        }
    }
}

/// What a key holds: stamp, value, the value's hash and the entry's hash.
type Held = (Stamp, Bytes, ValueHash, u64);

/// A write made ready outside the lock: both hashes computed.
struct Prepared {
    ekey: Vec<u8>,
    held: Held,
    change: Change,
}

fn prepare(key: &[u8], stamp: Stamp, value: Bytes) -> Prepared {
    let vh = if stamp.is_tombstone() {
        ValueHash::default()
    } else {
        value_hash(&value)
    };
    let ekey = engine_key(key);
    let change = Change::new(Position::of_key(key), key, &stamp, &vh, true);
    Prepared {
        ekey,
        held: (stamp, value, vh, change.hash),
        change,
    }
}

/// The change of `old` going out, under the same key as `new`.
fn old_change(new: Change, old: &Held) -> Change {
    Change {
        leaf: new.leaf,
        tombstone: old.0.is_tombstone(),
        hash: old.3,
        added: false,
    }
}

/// A store held in memory only.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    tree: DigestTree,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The map stays consistent across a panic elsewhere: every update is
        // a single insert after its checks.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Store for MemoryStore {
    async fn put(&self, key: &[u8], version: Version, value: Bytes) -> Result<Outcome, StoreError> {
        check_key(key)?;
        // Hashed before the lock: other writers need not wait for it.
        let w = prepare(key, Stamp::Value(version), value);
        Ok(self.lock().write(&self.tree, w))
    }

    async fn put_stream<R>(
        &self,
        key: &[u8],
        version: Version,
        mut body: R,
    ) -> Result<Outcome, StoreError>
    where
        R: AsyncRead + Unpin + Send,
    {
        check_key(key)?;
        if let Some(cur) = self.version_of(key).await?
            && *cur.version() >= version
        {
            return Ok(Outcome::Superseded);
        }
        let mut buf = Vec::new();
        body.read_to_end(&mut buf)
            .await
            .map_err(|e| StoreError::io("reading a value stream", e))?;
        self.put(key, version, Bytes::from(buf)).await
    }

    async fn delete(&self, key: &[u8], version: Version) -> Result<Outcome, StoreError> {
        check_key(key)?;
        let w = prepare(key, Stamp::Tombstone(version), Bytes::new());
        Ok(self.lock().write(&self.tree, w))
    }

    async fn get(&self, key: &[u8]) -> Result<Lookup, StoreError> {
        check_key(key)?;
        let found = self.lock().entries.get(&engine_key(key)).cloned();
        Ok(match found {
            None => Lookup::Absent,
            Some((Stamp::Tombstone(v), ..)) => Lookup::Tombstone(v),
            Some((Stamp::Value(version), bytes, ..)) => Lookup::Value(StoredValue {
                version,
                len: bytes.len() as u64,
                body: ValueReader::memory(bytes),
            }),
        })
    }

    async fn version_of(&self, key: &[u8]) -> Result<Option<Stamp>, StoreError> {
        check_key(key)?;
        Ok(self
            .lock()
            .entries
            .get(&engine_key(key))
            .map(|e| e.0.clone()))
    }

    async fn scan(
        &self,
        range: TokenRange,
        after: Option<&ScanCursor>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        let inner = self.lock();
        let mut entries = Vec::new();
        let mut last = None;
        'runs: for run in plan(range, after.map(|c| c.0.as_slice())) {
            for (ekey, (stamp, bytes, hash, _)) in inner.entries.range(run) {
                if entries.len() == limit {
                    break 'runs;
                }
                let Some((position, key)) = split_engine_key(ekey) else {
                    continue;
                };
                entries.push(EntryMeta {
                    key: Bytes::copy_from_slice(key),
                    position,
                    stamp: stamp.clone(),
                    size: bytes.len() as u64,
                    value_hash: *hash,
                });
                last = Some(ekey.clone());
            }
        }
        let next = if entries.len() == limit && limit > 0 {
            last.map(ScanCursor)
        } else {
            None
        };
        Ok(ScanPage { entries, next })
    }

    fn stats(&self) -> StoreStats {
        self.lock().stats
    }

    fn tree(&self) -> &DigestTree {
        &self.tree
    }

    async fn purge_tombstone(&self, key: &[u8], req: PurgeRequest) -> Result<Purge, StoreError> {
        check_key(key)?;
        if let Some(refused) = req.refusal() {
            return Ok(refused);
        }
        let mut inner = self.lock();
        let ekey = engine_key(key);
        match inner.entries.get(&ekey) {
            Some((Stamp::Tombstone(v), ..)) if *v == req.version => {
                inner.remove(&self.tree, &ekey);
                Ok(Purge::Removed)
            }
            _ => Ok(Purge::Changed),
        }
    }

    async fn drop_entry(&self, key: &[u8], stamp: &Stamp) -> Result<Purge, StoreError> {
        check_key(key)?;
        let mut inner = self.lock();
        let ekey = engine_key(key);
        match inner.entries.get(&ekey) {
            Some((held, ..)) if held == stamp => {
                inner.remove(&self.tree, &ekey);
                Ok(Purge::Removed)
            }
            _ => Ok(Purge::Changed),
        }
    }

    async fn put_hint(&self, hint: Hint) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let slot = inner
            .hints
            .entry((hint.target, hint.key))
            .or_insert((hint.version.clone(), hint.at_ms));
        if hint.version > slot.0 {
            *slot = (hint.version, slot.1);
        }
        Ok(())
    }

    async fn remove_hint(
        &self,
        target: &NodeId,
        key: &[u8],
        version: &Version,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let k = (target.clone(), key.to_vec());
        if inner.hints.get(&k).is_some_and(|(v, _)| v == version) {
            inner.hints.remove(&k);
        }
        Ok(())
    }

    async fn hints(&self) -> Result<Vec<Hint>, StoreError> {
        Ok(self
            .lock()
            .hints
            .iter()
            .map(|((target, key), (version, at_ms))| Hint {
                target: target.clone(),
                key: key.clone(),
                version: version.clone(),
                at_ms: *at_ms,
            })
            .collect())
    }
}
