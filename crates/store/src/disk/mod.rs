//! The durable engine: fjall for metadata and small values, files beside it
//! for large ones.
//!
//! Reads go straight to the engine on tokio's blocking pool; writes go to
//! one writer thread (see `writer`) that commits them in groups and syncs
//! according to the [`SyncPolicy`]. Opening the store recovers fjall's
//! journal and removes value files no entry names. The store does not
//! replicate, stamp versions or expire anything on its own.

mod codec;
mod engine;
mod files;
mod options;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use fjall::{PersistMode, Readable};
use mydht_proto::Version;
use mydht_ring::{NodeId, TokenRange};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, oneshot};

pub use options::{DiskOptions, SyncPolicy, UnknownSyncPolicy};

use self::codec::{Meta, Place};
use self::engine::Engine;
use self::writer::{NewState, Op, Writer};
use crate::digest::value_hash;
use crate::entry::check_key;
use crate::hints::{decode_hint, encode_hint, hint_key, hint_version};
use crate::layout::{engine_key, plan, split_engine_key};
use crate::{
    DigestTree, EntryMeta, Hint, Lookup, Outcome, Purge, PurgeRequest, ScanCursor, ScanPage, Stamp,
    Store, StoreError, StoreStats, StoredValue, ValueReader,
};

/// Requests queued for the writer before callers wait for room.
const QUEUE: usize = 4096;

/// How many times a read retries when a value file was replaced between
/// reading its metadata and opening it.
const FILE_RACE_RETRIES: usize = 8;

/// State shared by the callers, the writer thread and the sync timer.
pub(crate) struct Shared {
    dir: PathBuf,
    opts: DiskOptions,
    engine: RwLock<Option<Arc<Engine>>>,
    stats: Mutex<StoreStats>,
    next_file: AtomicU64,
    /// Kept current by the writer; rebuilt whenever the engine is opened.
    tree: DigestTree,
}

impl Shared {
    fn current(&self) -> Option<Arc<Engine>> {
        self.engine
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_engine(&self, engine: Option<Arc<Engine>>) {
        *self.engine.write().unwrap_or_else(PoisonError::into_inner) = engine;
    }

    fn set_stats(&self, stats: StoreStats) {
        *self.stats.lock().unwrap_or_else(PoisonError::into_inner) = stats;
    }
}

/// A store on disk. Dropping it waits for the writer to finish its current
/// group and syncs what it committed.
pub struct DiskStore {
    shared: Arc<Shared>,
    tx: Option<mpsc::Sender<Op>>,
    writer: Option<JoinHandle<()>>,
    timer: Option<(std::sync::mpsc::Sender<()>, JoinHandle<()>)>,
}

impl std::fmt::Debug for DiskStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskStore")
            .field("dir", &self.shared.dir)
            .finish_non_exhaustive()
    }
}

impl DiskStore {
    /// Opens the store in `dir` (created if missing), recovering the journal
    /// and removing orphan value files. Blocks: call it at startup or from a
    /// blocking task.
    pub fn open(dir: impl AsRef<Path>, opts: DiskOptions) -> Result<Self, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir)
            .map_err(|e| StoreError::io("creating the store directory", e))?;
        let engine = Arc::new(Engine::open(&dir, &opts)?);
        let next_file = files::clean_orphans(&dir, &engine)?;
        let stats = engine.load_stats()?;
        let tree = DigestTree::default();
        engine.rebuild_tree(&tree)?;
        let shared = Arc::new(Shared {
            dir,
            opts,
            engine: RwLock::new(Some(engine.clone())),
            stats: Mutex::new(stats),
            next_file: AtomicU64::new(next_file),
            tree,
        });
        let (tx, rx) = mpsc::channel(QUEUE);
        let w = Writer::new(shared.clone(), rx, engine, stats);
        let writer = std::thread::Builder::new()
            .name("mydht-store-writer".into())
            .spawn(move || w.run())
            .map_err(|e| StoreError::io("starting the writer thread", e))?;
        let timer = match shared.opts.sync {
            SyncPolicy::Periodic(every) => Some(spawn_timer(shared.clone(), every)?),
            _ => None,
        };
        Ok(Self {
            shared,
            tx: Some(tx),
            writer: Some(writer),
            timer,
        })
    }

    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    fn engine(&self) -> Result<Arc<Engine>, StoreError> {
        match self.shared.current() {
            Some(e) => Ok(e),
            None => {
                if let Some(tx) = &self.tx {
                    // A full queue already holds a request that will reopen.
                    let _ = tx.try_send(Op::Reopen);
                }
                Err(StoreError::Reopening)
            }
        }
    }

    /// Queues a write for the writer and waits for its outcome; a value
    /// file is handed over to the writer once the write is queued.
    async fn submit(
        &self,
        ekey: Vec<u8>,
        version: Version,
        state: NewState,
        file: Option<files::PendingFile>,
    ) -> Result<Outcome, StoreError> {
        let tx = self.tx.as_ref().ok_or(StoreError::Closed)?;
        let (reply, rx) = oneshot::channel();
        tx.send(Op::Write {
            ekey,
            version,
            state,
            reply,
        })
        .await
        .map_err(|_| StoreError::Closed)?;
        if let Some(file) = file {
            file.hand_over();
        }
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Engine) -> Result<T, StoreError> + Send + 'static,
    {
        let engine = self.engine()?;
        tokio::task::spawn_blocking(move || f(&engine))
            .await
            .map_err(|_| StoreError::Closed)?
    }

    async fn put_file<R>(
        &self,
        key: &[u8],
        version: Version,
        prefix: &[u8],
        body: &mut R,
    ) -> Result<Outcome, StoreError>
    where
        R: AsyncRead + Unpin + Send,
    {
        let pending = files::PendingFile::new(&self.shared);
        let (len, hash) = files::write(&self.shared, &pending, prefix, body).await?;
        let state = NewState::File {
            id: pending.id(),
            len,
            hash,
        };
        self.submit(engine_key(key), version, state, Some(pending))
            .await
    }
}

fn spawn_timer(
    shared: Arc<Shared>,
    every: Duration,
) -> Result<(std::sync::mpsc::Sender<()>, JoinHandle<()>), StoreError> {
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let handle = std::thread::Builder::new()
        .name("mydht-store-sync".into())
        .spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every)
            {
                if let Some(engine) = shared.current() {
                    // A failure poisons fjall; the writer's next commit sees it
                    // and reopens.
                    if let Err(e) = engine.db.persist(PersistMode::SyncAll) {
                        tracing::error!(error = ?e, "periodic sync failed");
                    }
                }
            }
        })
        .map_err(|e| StoreError::io("starting the sync timer", e))?;
    Ok((stop, handle))
}

impl Drop for DiskStore {
    fn drop(&mut self) {
        self.tx = None;
        if let Some((stop, handle)) = self.timer.take() {
            drop(stop);
            let _ = handle.join();
        }
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

fn read_lookup(engine: &Engine, root: &Path, ekey: &[u8]) -> Result<Lookup, StoreError> {
    let mut missing = None;
    for _ in 0..FILE_RACE_RETRIES {
        // Metadata and inline value from one snapshot: a write committed in
        // between cannot pair one version's metadata with another's bytes.
        let snap = engine.db.snapshot();
        let Some(meta) = snap
            .get(&engine.meta, ekey)
            .map_err(|e| StoreError::engine("reading metadata", e))?
            .map(|b| Meta::decode(&b))
            .transpose()?
        else {
            return Ok(Lookup::Absent);
        };
        let version = meta.stamp.version().clone();
        match meta.place {
            None => return Ok(Lookup::Tombstone(version)),
            Some(Place::Inline) => {
                let bytes = snap
                    .get(&engine.data, ekey)
                    .map_err(|e| StoreError::engine("reading a value", e))?
                    .ok_or(StoreError::Corrupt {
                        what: "missing inline value",
                    })?;
                let bytes = Bytes::from(bytes.to_vec());
                return Ok(Lookup::Value(StoredValue {
                    version,
                    len: meta.len,
                    body: ValueReader::memory(bytes),
                }));
            }
            Some(Place::File(id)) => {
                if let Some(file) = files::open(root, id)? {
                    return Ok(Lookup::Value(StoredValue {
                        version,
                        len: meta.len,
                        body: ValueReader::file(tokio::fs::File::from_std(file), meta.len),
                    }));
                }
                // Replaced and unlinked since the metadata was read: look again.
                missing = Some(id);
            }
        }
    }
    Err(StoreError::MissingValueFile {
        id: missing.unwrap_or_default(),
    })
}

fn entry_meta(ekey: &[u8], raw: &[u8]) -> Result<Option<EntryMeta>, StoreError> {
    let Some((position, key)) = split_engine_key(ekey) else {
        return Ok(None);
    };
    let meta = Meta::decode(raw)?;
    Ok(Some(EntryMeta {
        key: Bytes::copy_from_slice(key),
        position,
        stamp: meta.stamp,
        size: meta.len,
        value_hash: meta.hash,
    }))
}

impl Store for DiskStore {
    async fn put(&self, key: &[u8], version: Version, value: Bytes) -> Result<Outcome, StoreError> {
        check_key(key)?;
        if value.len() > self.shared.opts.large_value_threshold {
            return self
                .put_file(key, version, &value, &mut tokio::io::empty())
                .await;
        }
        let hash = value_hash(&value);
        self.submit(
            engine_key(key),
            version,
            NewState::Inline(value, hash),
            None,
        )
        .await
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
        // Read up to one byte past the threshold to learn where it goes.
        let limit = self.shared.opts.large_value_threshold;
        let mut head = Vec::new();
        (&mut body)
            .take(limit as u64 + 1)
            .read_to_end(&mut head)
            .await
            .map_err(|e| StoreError::io("reading a value stream", e))?;
        if head.len() <= limit {
            let hash = value_hash(&head);
            return self
                .submit(
                    engine_key(key),
                    version,
                    NewState::Inline(Bytes::from(head), hash),
                    None,
                )
                .await;
        }
        self.put_file(key, version, &head, &mut body).await
    }

    async fn delete(&self, key: &[u8], version: Version) -> Result<Outcome, StoreError> {
        check_key(key)?;
        self.submit(engine_key(key), version, NewState::Tombstone, None)
            .await
    }

    async fn get(&self, key: &[u8]) -> Result<Lookup, StoreError> {
        check_key(key)?;
        let ekey = engine_key(key);
        let root = self.shared.dir.clone();
        self.blocking(move |e| read_lookup(e, &root, &ekey)).await
    }

    async fn version_of(&self, key: &[u8]) -> Result<Option<Stamp>, StoreError> {
        check_key(key)?;
        let ekey = engine_key(key);
        self.blocking(move |e| Ok(e.read_meta(&ekey)?.map(|m| m.stamp)))
            .await
    }

    async fn scan(
        &self,
        range: TokenRange,
        after: Option<&ScanCursor>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        let runs = plan(range, after.map(|c| c.0.as_slice()));
        self.blocking(move |e| {
            let mut entries = Vec::new();
            let mut last = None;
            'runs: for run in runs {
                for guard in e.meta.range(run) {
                    if entries.len() == limit {
                        break 'runs;
                    }
                    let (k, v) = guard
                        .into_inner()
                        .map_err(|err| StoreError::engine("listing", err))?;
                    if let Some(m) = entry_meta(&k, &v)? {
                        entries.push(m);
                        last = Some(k.to_vec());
                    }
                }
            }
            let next = if limit > 0 && entries.len() == limit {
                last.map(ScanCursor)
            } else {
                None
            };
            Ok(ScanPage { entries, next })
        })
        .await
    }

    fn tree(&self) -> &DigestTree {
        &self.shared.tree
    }

    fn stats(&self) -> StoreStats {
        *self
            .shared
            .stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    async fn purge_tombstone(&self, key: &[u8], req: PurgeRequest) -> Result<Purge, StoreError> {
        check_key(key)?;
        if let Some(refused) = req.refusal() {
            return Ok(refused);
        }
        let tx = self.tx.as_ref().ok_or(StoreError::Closed)?;
        let (reply, rx) = oneshot::channel();
        tx.send(Op::Purge {
            ekey: engine_key(key),
            stamp: Stamp::Tombstone(req.version),
            reply,
        })
        .await
        .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn drop_entry(&self, key: &[u8], stamp: &Stamp) -> Result<Purge, StoreError> {
        check_key(key)?;
        let tx = self.tx.as_ref().ok_or(StoreError::Closed)?;
        let (reply, rx) = oneshot::channel();
        tx.send(Op::Purge {
            ekey: engine_key(key),
            stamp: stamp.clone(),
            reply,
        })
        .await
        .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    // Hints go to their keyspace directly, not through the writer: they
    // are a best-effort record (anti-entropy repairs what a lost hint
    // would have), persisted with the journal at the writer's next sync or
    // the store's close.
    async fn put_hint(&self, hint: Hint) -> Result<(), StoreError> {
        self.blocking(move |e| {
            let _one_at_a_time = e.hint_lock.lock().unwrap_or_else(PoisonError::into_inner);
            let k = hint_key(&hint.target, &hint.key);
            let held = e
                .hints
                .get(&k)
                .map_err(|err| StoreError::engine("reading a hint", err))?;
            let at_ms = match held {
                Some(v) => {
                    let old = decode_hint(&k, &v)?;
                    if old.version >= hint.version {
                        return Ok(());
                    }
                    old.at_ms
                }
                None => hint.at_ms,
            };
            e.hints
                .insert(&k, encode_hint(&hint.version, at_ms))
                .map_err(|err| StoreError::engine("keeping a hint", err))
        })
        .await
    }

    async fn remove_hint(
        &self,
        target: &NodeId,
        key: &[u8],
        version: &Version,
    ) -> Result<(), StoreError> {
        let k = hint_key(target, key);
        let version = version.clone();
        self.blocking(move |e| {
            let _one_at_a_time = e.hint_lock.lock().unwrap_or_else(PoisonError::into_inner);
            let held = e
                .hints
                .get(&k)
                .map_err(|err| StoreError::engine("reading a hint", err))?;
            match held {
                Some(v) if hint_version(&k, &v)? == version => e
                    .hints
                    .remove(&k)
                    .map_err(|err| StoreError::engine("removing a hint", err)),
                _ => Ok(()),
            }
        })
        .await
    }

    async fn hints(&self) -> Result<Vec<Hint>, StoreError> {
        self.blocking(|e| {
            let mut out = Vec::new();
            for guard in e.hints.iter() {
                let (k, v) = guard
                    .into_inner()
                    .map_err(|err| StoreError::engine("listing hints", err))?;
                out.push(decode_hint(&k, &v)?);
            }
            Ok(out)
        })
        .await
    }
}
