//! The fjall database behind a [`DiskStore`](crate::DiskStore) and its five
//! keyspaces.
//!
//! `meta` maps an engine key (position ‖ key) to its metadata record, `data`
//! holds small values under the same key, `files` maps a value file's number
//! to the engine key that owns it (so orphans are found without scanning
//! every key), `counters` holds the running totals, and `hints` the
//! versions other members missed (see `hints`). An `Engine` is
//! replaced whole when fjall must be reopened after a failed write.

use std::path::Path;
use std::time::{Duration, Instant};

use fjall::{Database, Keyspace, KeyspaceCreateOptions};

use super::codec::{Meta, decode_stats};
use super::options::DiskOptions;
use crate::digest::{Change, Rebuild};
use crate::layout::split_engine_key;
use crate::{DigestTree, StoreError, StoreStats};

/// The key of the running totals in `counters`.
pub(crate) const TOTALS: &[u8] = b"totals";

/// How long a reopen waits for the old handle's lock to be released.
const LOCK_WAIT: Duration = Duration::from_secs(5);

pub(crate) struct Engine {
    pub db: Database,
    pub meta: Keyspace,
    pub data: Keyspace,
    pub files: Keyspace,
    pub counters: Keyspace,
    pub hints: Keyspace,
    /// Makes each hint's read-then-write one step (hints bypass the
    /// writer thread).
    pub hint_lock: std::sync::Mutex<()>,
}

impl Engine {
    /// Opens (or creates) the engine in the store directory `root`, waiting
    /// a bounded time for a previous handle in this process to let go of the
    /// lock.
    pub fn open(root: &Path, opts: &DiskOptions) -> Result<Self, StoreError> {
        let dir = root.join("engine");
        let deadline = Instant::now() + LOCK_WAIT;
        let mut pause = Duration::from_millis(1);
        let db =
            loop {
                let open = || {
                    Database::builder(&dir)
                        .cache_size(opts.cache_bytes)
                        .manual_journal_persist(true)
                        // fjall refuses a journal limit under 64 MiB.
                        .max_journaling_size(opts.max_journal_bytes.max(64 << 20))
                        .open()
                };
                // fjall 3.1 debug builds assert on some torn journal tails left by
                // a power cut; a failed open must be an error, not a crash.
                let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(open))
                    .map_err(|_| StoreError::Engine {
                        op: "recovering the journal",
                        detail: "the engine panicked while reading its journal".into(),
                    })?;
                match attempt {
                    Ok(db) => break db,
                    Err(fjall::Error::Locked) if Instant::now() < deadline => {
                        std::thread::sleep(pause);
                        pause = (pause * 2).min(Duration::from_millis(50));
                    }
                    Err(e) => return Err(StoreError::engine("opening the engine", e)),
                }
            };
        let memtable = opts.max_memtable_bytes.max(1 << 20);
        let ks = |name: &str| {
            db.keyspace(name, || {
                KeyspaceCreateOptions::default().max_memtable_size(memtable)
            })
            .map_err(|e| StoreError::engine("opening a keyspace", e))
        };
        Ok(Self {
            meta: ks("meta")?,
            data: ks("data")?,
            files: ks("files")?,
            counters: ks("counters")?,
            hints: ks("hints")?,
            hint_lock: std::sync::Mutex::new(()),
            db,
        })
    }

    pub fn read_meta(&self, ekey: &[u8]) -> Result<Option<Meta>, StoreError> {
        self.meta
            .get(ekey)
            .map_err(|e| StoreError::engine("reading metadata", e))?
            .map(|b| Meta::decode(&b))
            .transpose()
    }

    /// Builds `tree` from every metadata record (one scan, values never
    /// read). A record that does not decode is left out and logged: it
    /// fails only its own key's reads, as it did before.
    pub fn rebuild_tree(&self, tree: &DigestTree) -> Result<(), StoreError> {
        let mut fresh = Rebuild::new();
        let mut corrupt = 0u64;
        for guard in self.meta.iter() {
            let (k, v) = guard
                .into_inner()
                .map_err(|e| StoreError::engine("digesting the store", e))?;
            let (Some((position, key)), Ok(meta)) = (split_engine_key(&k), Meta::decode(&v)) else {
                corrupt += 1;
                continue;
            };
            fresh.add(&Change::new(position, key, &meta.stamp, &meta.hash, true));
        }
        if corrupt > 0 {
            tracing::warn!(
                corrupt,
                "metadata records that do not decode are left out of the digests"
            );
        }
        tree.replace(fresh);
        Ok(())
    }

    pub fn load_stats(&self) -> Result<StoreStats, StoreError> {
        match self
            .counters
            .get(TOTALS)
            .map_err(|e| StoreError::engine("reading counters", e))?
        {
            Some(b) => decode_stats(&b),
            None => Ok(StoreStats::default()),
        }
    }

    pub fn file_is_referenced(&self, id: u64) -> Result<bool, StoreError> {
        self.files
            .contains_key(id.to_be_bytes())
            .map_err(|e| StoreError::engine("reading the file index", e))
    }

    /// The highest value file number the index knows.
    pub fn max_file_id(&self) -> Result<Option<u64>, StoreError> {
        match self.files.last_key_value() {
            None => Ok(None),
            Some(guard) => {
                let key = guard
                    .key()
                    .map_err(|e| StoreError::engine("reading the file index", e))?;
                let raw: [u8; 8] = key.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                    what: "file index key",
                })?;
                Ok(Some(u64::from_be_bytes(raw)))
            }
        }
    }
}
