//! The single writer thread: compare-and-set, group commit and reopen.
//!
//! Every write goes through one thread, which makes last-writer-wins a plain
//! read-compare-write with no lock per key. The thread takes all requests
//! queued while it was busy as one group, applies them to one engine batch
//! with the updated counters, commits it, syncs once (under
//! [`SyncPolicy::Always`]) and only then answers every writer of the group.
//! When a commit or sync fails, fjall refuses further writes until reopened;
//! the thread answers the group with the error, drops the engine and reopens
//! it (bounded wait), so the store serves again once the fault is gone.
//! Nothing is acknowledged that was not committed and synced. The digests
//! take a group's changes once it is committed, and are rebuilt from the
//! engine after a reopen.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use fjall::PersistMode;
use mydht_proto::Version;
use tokio::sync::{mpsc, oneshot};

use super::codec::{Meta, Place, encode_stats};
use super::engine::{Engine, TOTALS};
use super::options::SyncPolicy;
use super::{Shared, files};
use crate::digest::Change;
use crate::layout::split_engine_key;
use crate::{Outcome, Purge, Stamp, StoreError, StoreStats, ValueHash};

/// The most requests committed as one group.
const MAX_GROUP: usize = 1024;

/// A group stops taking requests once its inline values reach this many
/// bytes, which bounds the batch the engine copies.
const MAX_GROUP_BYTES: usize = 16 << 20;

/// What a write puts in place of the key's current entry.
pub(crate) enum NewState {
    Inline(Bytes, ValueHash),
    File { id: u64, len: u64, hash: ValueHash },
    Tombstone,
}

pub(crate) enum Op {
    Write {
        ekey: Vec<u8>,
        version: Version,
        state: NewState,
        reply: oneshot::Sender<Result<Outcome, StoreError>>,
    },
    /// Removes the entry if it holds exactly `stamp` (a collected
    /// tombstone, or a key this node no longer owns).
    Purge {
        ekey: Vec<u8>,
        stamp: Stamp,
        reply: oneshot::Sender<Result<Purge, StoreError>>,
    },
    /// A reader found no engine: try to reopen now.
    Reopen,
}

impl Op {
    fn inline_len(&self) -> usize {
        match self {
            Self::Write {
                state: NewState::Inline(b, _),
                ..
            } => b.len(),
            _ => 0,
        }
    }
}

enum Answer {
    Write(oneshot::Sender<Result<Outcome, StoreError>>, Outcome),
    Purge(oneshot::Sender<Result<Purge, StoreError>>, Purge),
}

impl Answer {
    fn ok(self) {
        // A writer that gave up waiting is no reason to stop.
        match self {
            Self::Write(tx, o) => drop(tx.send(Ok(o))),
            Self::Purge(tx, p) => drop(tx.send(Ok(p))),
        }
    }

    fn fail(self, err: &StoreError) {
        match self {
            Self::Write(tx, _) => drop(tx.send(Err(copy_error(err)))),
            Self::Purge(tx, _) => drop(tx.send(Err(copy_error(err)))),
        }
    }
}

/// The same failure for each member of a group.
pub(crate) fn copy_error(err: &StoreError) -> StoreError {
    match err {
        StoreError::DiskFull { op } => StoreError::DiskFull { op },
        StoreError::Io { op, source } => StoreError::Io {
            op,
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        StoreError::Engine { op, detail } => StoreError::Engine {
            op,
            detail: detail.clone(),
        },
        StoreError::Corrupt { what } => StoreError::Corrupt { what },
        StoreError::Closed => StoreError::Closed,
        _ => StoreError::Reopening,
    }
}

pub(crate) struct Writer {
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Op>,
    engine: Option<Arc<Engine>>,
    stats: StoreStats,
    /// Files of failed groups: removed after a reopen unless referenced.
    suspects: Vec<u64>,
}

impl Writer {
    pub fn new(
        shared: Arc<Shared>,
        rx: mpsc::Receiver<Op>,
        engine: Arc<Engine>,
        stats: StoreStats,
    ) -> Self {
        Self {
            shared,
            rx,
            engine: Some(engine),
            stats,
            suspects: Vec::new(),
        }
    }

    pub fn run(mut self) {
        while let Some(op) = self.rx.blocking_recv() {
            let mut bytes = op.inline_len();
            let mut ops = vec![op];
            while ops.len() < MAX_GROUP && bytes < MAX_GROUP_BYTES {
                match self.rx.try_recv() {
                    Ok(op) => {
                        bytes += op.inline_len();
                        ops.push(op);
                    }
                    Err(_) => break,
                }
            }
            self.group(ops);
        }
        if let Some(engine) = &self.engine
            && let Err(e) = engine.db.persist(PersistMode::SyncAll)
        {
            tracing::error!(error = ?e, "final sync at shutdown failed");
        }
        self.shared.set_engine(None);
    }

    /// The engine, reopening it if a failure dropped it.
    fn engine(&mut self) -> Result<Arc<Engine>, StoreError> {
        if let Some(e) = &self.engine {
            return Ok(e.clone());
        }
        let engine = Arc::new(Engine::open(&self.shared.dir, &self.shared.opts)?);
        self.stats = engine.load_stats()?;
        // Whether a failed group reached the journal is known only now.
        engine.rebuild_tree(&self.shared.tree)?;
        for id in std::mem::take(&mut self.suspects) {
            if !engine.file_is_referenced(id)?
                && let Err(e) = files::remove(&self.shared.dir, id)
            {
                tracing::warn!(id, error = %e, "could not remove a value file of a failed write");
            }
        }
        self.shared.set_stats(self.stats);
        self.shared.set_engine(Some(engine.clone()));
        self.engine = Some(engine.clone());
        tracing::info!("storage engine reopened");
        Ok(engine)
    }

    /// Answers every op with `err` without applying it.
    fn refuse(&mut self, ops: Vec<Op>, err: &StoreError) {
        for op in ops {
            match op {
                Op::Write { reply, state, .. } => {
                    if let NewState::File { id, .. } = state {
                        self.suspects.push(id);
                    }
                    drop(reply.send(Err(copy_error(err))));
                }
                Op::Purge { reply, .. } => drop(reply.send(Err(copy_error(err)))),
                Op::Reopen => {}
            }
        }
    }

    fn group(&mut self, ops: Vec<Op>) {
        let engine = match self.engine() {
            Ok(e) => e,
            Err(err) => {
                self.refuse(ops, &err);
                return;
            }
        };
        let mut g = Group::new(&engine, self.stats);
        let mut answers = Vec::with_capacity(ops.len());
        let mut failed = None;
        let mut ops = ops.into_iter();
        for op in ops.by_ref() {
            if let Err(e) = g.apply(op, &mut answers) {
                failed = Some(e);
                break;
            }
        }
        if let Some(err) = &failed {
            // The rest of the group is not attempted; it fails with the same
            // cause (the engine is reopened below).
            let rest: Vec<Op> = ops.collect();
            self.refuse(rest, err);
        }
        let result = match failed {
            Some(e) => Err(e),
            None => g.commit(self.shared.opts.sync),
        };
        match result {
            Ok(stats) => {
                self.stats = stats;
                self.shared.set_stats(stats);
                self.shared.tree.apply(&g.changes);
                answers.into_iter().for_each(Answer::ok);
                for id in g.unlink.into_iter().chain(g.unused) {
                    if let Err(e) = files::remove(&self.shared.dir, id) {
                        tracing::warn!(id, error = %e, "could not remove a replaced value file");
                    }
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "write group failed; reopening the engine");
                for a in answers {
                    a.fail(&err);
                }
                // Whether the failed batch reached the journal is known only
                // after the reopen: then whichever of these files no entry
                // names is removed.
                self.suspects.extend(g.new_files);
                self.suspects.extend(g.unused);
                self.suspects.extend(g.unlink);
                self.engine = None;
                self.shared.set_engine(None);
                drop(engine);
                // Reopen right away so readers are served again; if it fails
                // the next request tries again.
                if let Err(e) = self.engine() {
                    tracing::warn!(error = %e, "reopen failed; retrying on the next request");
                }
            }
        }
    }
}

/// The changes of one group, folded per key so the batch holds each key once.
struct Group<'a> {
    engine: &'a Engine,
    stats: StoreStats,
    metas: HashMap<Vec<u8>, Option<Meta>>,
    datas: HashMap<Vec<u8>, Option<Bytes>>,
    index: HashMap<u64, Option<Vec<u8>>>,
    /// Files superseded by this group: removed once it is durable.
    unlink: Vec<u64>,
    /// Files written for writes that did not apply.
    unused: Vec<u64>,
    /// Files this group makes visible.
    new_files: Vec<u64>,
    /// Entries in and out, for the digests once the group is durable.
    changes: Vec<Change>,
}

impl<'a> Group<'a> {
    fn new(engine: &'a Engine, stats: StoreStats) -> Self {
        Self {
            engine,
            stats,
            metas: HashMap::new(),
            datas: HashMap::new(),
            index: HashMap::new(),
            unlink: Vec::new(),
            unused: Vec::new(),
            new_files: Vec::new(),
            changes: Vec::new(),
        }
    }

    fn change(&mut self, ekey: &[u8], meta: &Meta, added: bool) {
        if let Some((position, key)) = split_engine_key(ekey) {
            self.changes
                .push(Change::new(position, key, &meta.stamp, &meta.hash, added));
        }
    }

    fn current(&self, ekey: &[u8]) -> Result<Option<Meta>, StoreError> {
        match self.metas.get(ekey) {
            Some(m) => Ok(m.clone()),
            None => self.engine.read_meta(ekey),
        }
    }

    fn forget(&mut self, ekey: &[u8], old: &Meta) {
        self.change(ekey, old, false);
        let s = &mut self.stats;
        match old.stamp {
            Stamp::Value(_) => {
                s.live_keys = s.live_keys.saturating_sub(1);
                s.value_bytes = s.value_bytes.saturating_sub(old.len);
            }
            Stamp::Tombstone(_) => s.tombstones = s.tombstones.saturating_sub(1),
        }
        if let Some(Place::File(id)) = old.place {
            self.index.insert(id, None);
            self.unlink.push(id);
        }
    }

    fn apply(&mut self, op: Op, answers: &mut Vec<Answer>) -> Result<(), StoreError> {
        match op {
            Op::Reopen => Ok(()),
            Op::Write {
                ekey,
                version,
                state,
                reply,
            } => {
                let cur = match self.current(&ekey) {
                    Ok(c) => c,
                    Err(e) => {
                        if let NewState::File { id, .. } = state {
                            self.unused.push(id);
                        }
                        // A record that does not decode fails its own write
                        // only; an engine failure fails the group.
                        if matches!(e, StoreError::Corrupt { .. }) {
                            drop(reply.send(Err(e)));
                            return Ok(());
                        }
                        answers.push(Answer::Write(reply, Outcome::Superseded));
                        return Err(e);
                    }
                };
                if cur.as_ref().is_some_and(|m| *m.stamp.version() >= version) {
                    if let NewState::File { id, .. } = state {
                        self.unused.push(id);
                    }
                    answers.push(Answer::Write(reply, Outcome::Superseded));
                    return Ok(());
                }
                if let Some(old) = &cur {
                    self.forget(&ekey, old);
                }
                let meta = match state {
                    NewState::Inline(bytes, hash) => {
                        let len = bytes.len() as u64;
                        self.datas.insert(ekey.clone(), Some(bytes));
                        Meta {
                            stamp: Stamp::Value(version),
                            len,
                            place: Some(Place::Inline),
                            hash,
                        }
                    }
                    NewState::File { id, len, hash } => {
                        self.datas.insert(ekey.clone(), None);
                        self.index.insert(id, Some(ekey.clone()));
                        self.new_files.push(id);
                        Meta {
                            stamp: Stamp::Value(version),
                            len,
                            place: Some(Place::File(id)),
                            hash,
                        }
                    }
                    NewState::Tombstone => {
                        self.datas.insert(ekey.clone(), None);
                        Meta {
                            stamp: Stamp::Tombstone(version),
                            len: 0,
                            place: None,
                            hash: ValueHash::default(),
                        }
                    }
                };
                match meta.stamp {
                    Stamp::Value(_) => {
                        // Counters come from disk: never let a bad one panic.
                        self.stats.live_keys = self.stats.live_keys.saturating_add(1);
                        self.stats.value_bytes = self.stats.value_bytes.saturating_add(meta.len);
                    }
                    Stamp::Tombstone(_) => {
                        self.stats.tombstones = self.stats.tombstones.saturating_add(1);
                    }
                }
                self.change(&ekey, &meta, true);
                self.metas.insert(ekey, Some(meta));
                answers.push(Answer::Write(reply, Outcome::Applied));
                Ok(())
            }
            Op::Purge { ekey, stamp, reply } => {
                let cur = match self.current(&ekey) {
                    Ok(c) => c,
                    Err(e) if matches!(e, StoreError::Corrupt { .. }) => {
                        drop(reply.send(Err(e)));
                        return Ok(());
                    }
                    Err(e) => {
                        answers.push(Answer::Purge(reply, Purge::Changed));
                        return Err(e);
                    }
                };
                match cur {
                    Some(m) if m.stamp == stamp => {
                        self.forget(&ekey, &m);
                        // A value written earlier in this group must not
                        // stay behind as an orphan inline row.
                        self.datas.insert(ekey.clone(), None);
                        self.metas.insert(ekey, None);
                        answers.push(Answer::Purge(reply, Purge::Removed));
                    }
                    _ => answers.push(Answer::Purge(reply, Purge::Changed)),
                }
                Ok(())
            }
        }
    }

    /// Commits the group and makes it as durable as the policy asks.
    fn commit(&mut self, policy: SyncPolicy) -> Result<StoreStats, StoreError> {
        if self.metas.is_empty() {
            return Ok(self.stats);
        }
        let e = self.engine;
        let mut batch = e.db.batch();
        for (k, m) in self.metas.drain() {
            match m {
                Some(m) => batch.insert(&e.meta, k, m.encode()),
                None => batch.remove(&e.meta, k),
            }
        }
        for (k, d) in self.datas.drain() {
            match d {
                Some(v) => batch.insert(&e.data, k, v.to_vec()),
                None => batch.remove(&e.data, k),
            }
        }
        for (id, owner) in self.index.drain() {
            match owner {
                Some(k) => batch.insert(&e.files, id.to_be_bytes(), k),
                None => batch.remove(&e.files, id.to_be_bytes()),
            }
        }
        batch.insert(&e.counters, TOTALS, encode_stats(&self.stats));
        batch
            .commit()
            .map_err(|err| StoreError::engine("committing a write", err))?;
        // A replaced file is unlinked only once no durable state can name it.
        let mode = if policy == SyncPolicy::Always || !self.unlink.is_empty() {
            PersistMode::SyncAll
        } else {
            PersistMode::Buffer
        };
        e.db.persist(mode)
            .map_err(|err| StoreError::engine("syncing the journal", err))?;
        Ok(self.stats)
    }
}
