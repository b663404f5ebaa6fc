//! Hinted handoff: a coordinator remembers which replica missed which
//! version of a key, and brings that version to it once it answers again.
//!
//! A hint is kept when a replica call fails or times out, or the replica
//! was skipped as down; it is persisted in the store (it survives a
//! restart) and holds no value: at replay the value is copied from this
//! node or from another replica holding that version or a newer one (the
//! write reached W of them). Hints are bounded per target, in bytes and in
//! age; past either bound a hint is dropped and counted, and anti-entropy
//! repairs what it would have. Hints never count toward W: they are kept
//! after the quorum is counted, by the calls themselves. Replay is one
//! key at a time per target, paced to a rate, and stops at a target's
//! first failure (it is likely down again) until the next round.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mydht_cluster::{Cluster, LivenessEvent, events, wall_clock_ms};
use mydht_proto::Version;
use mydht_ring::{MemberState, NodeId, Position};
use mydht_store::{Hint, Store, StoreError};

use super::{ReplicaError, Replicas};
use crate::tasks::{Worker, WorkerState};

/// How hints are bounded and replayed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HintConfig {
    /// The most bytes of hints kept per target (keys and versions; a hint
    /// holds no value); a hint past it is dropped.
    pub max_bytes: u64,
    /// How long a hint is kept before it is dropped undelivered.
    pub max_age: Duration,
    /// Hints delivered per second at most, over all targets.
    pub per_second: u32,
}

impl Default for HintConfig {
    fn default() -> Self {
        Self {
            max_bytes: 64 << 20,
            max_age: Duration::from_secs(3 * 3600),
            per_second: 1000,
        }
    }
}

/// The hints kept for one target.
#[derive(Default)]
struct Queue {
    keys: BTreeMap<Vec<u8>, (Version, u64)>,
    bytes: u64,
}

/// Hint counts, for the status page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct HintCounts {
    pub pending: u64,
    pub delivered: u64,
    pub dropped: u64,
}

struct Inner<S> {
    store: Arc<S>,
    cfg: HintConfig,
    queues: Mutex<HashMap<NodeId, Queue>>,
    delivered: AtomicU64,
    dropped: AtomicU64,
}

/// This node's hints. Cheap to clone.
pub(crate) struct Hints<S>(Arc<Inner<S>>);

impl<S> Clone for Hints<S> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

fn size(key: &[u8], target: &NodeId, version: &Version) -> u64 {
    Hint {
        target: target.clone(),
        key: Vec::new(),
        version: version.clone(),
        at_ms: 0,
    }
    .size()
        + key.len() as u64
}

impl<S: Store> Hints<S> {
    pub fn new(store: Arc<S>, cfg: HintConfig) -> Self {
        Self(Arc::new(Inner {
            store,
            cfg,
            queues: Mutex::new(HashMap::new()),
            delivered: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }))
    }

    fn queues(&self) -> std::sync::MutexGuard<'_, HashMap<NodeId, Queue>> {
        self.0.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes in the hints the store kept from before a restart.
    pub async fn load(&self) -> Result<usize, StoreError> {
        let hints = self.0.store.hints().await?;
        let n = hints.len();
        for h in hints {
            self.index(&h.target, &h.key, &h.version, h.at_ms);
        }
        Ok(n)
    }

    /// Adds a hint to the index; `false` when it is not to be kept (an as
    /// new or newer one is, or the target's bound is reached).
    fn index(&self, target: &NodeId, key: &[u8], version: &Version, at_ms: u64) -> bool {
        let mut queues = self.queues();
        let q = queues.entry(target.clone()).or_default();
        if let Some((held, _)) = q.keys.get_mut(key) {
            if *held >= *version {
                return false;
            }
            // Same key, same size: the newer version replaces it.
            *held = version.clone();
            return true;
        }
        let bytes = size(key, target, version);
        if q.bytes + bytes > self.0.cfg.max_bytes {
            self.0.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        q.bytes += bytes;
        q.keys.insert(key.to_vec(), (version.clone(), at_ms));
        true
    }

    /// Keeps a hint that `target` missed `version` of `key`.
    pub async fn keep(&self, target: &NodeId, key: &[u8], version: &Version) {
        let at_ms = wall_clock_ms();
        if !self.index(target, key, version, at_ms) {
            return;
        }
        let hint = Hint {
            target: target.clone(),
            key: key.to_vec(),
            version: version.clone(),
            at_ms,
        };
        if let Err(e) = self.0.store.put_hint(hint).await {
            tracing::warn!(%target, error = %e, "a hint was not persisted (it is kept in memory)");
        }
    }

    /// Forgets `target`'s hint for `key` if it is still `version`.
    async fn forget(&self, target: &NodeId, key: &[u8], version: &Version) {
        {
            let mut queues = self.queues();
            if let Some(q) = queues.get_mut(target) {
                if q.keys.get(key).is_some_and(|(v, _)| v == version) {
                    q.keys.remove(key);
                    q.bytes = q.bytes.saturating_sub(size(key, target, version));
                }
                if q.keys.is_empty() {
                    queues.remove(target);
                }
            }
        }
        if let Err(e) = self.0.store.remove_hint(target, key, version).await {
            tracing::warn!(%target, error = %e, "a delivered hint was not removed from the store");
        }
    }

    /// The targets with hints.
    fn targets(&self) -> Vec<NodeId> {
        self.queues().keys().cloned().collect()
    }

    /// Up to `limit` of `target`'s hints, in key order.
    fn batch(&self, target: &NodeId, limit: usize) -> Vec<(Vec<u8>, Version, u64)> {
        self.queues().get(target).map_or_else(Vec::new, |q| {
            q.keys
                .iter()
                .take(limit)
                .map(|(k, (v, at))| (k.clone(), v.clone(), *at))
                .collect()
        })
    }

    /// Hints pending, delivered and dropped since start.
    pub fn counts(&self) -> HintCounts {
        HintCounts {
            pending: self.queues().values().map(|q| q.keys.len() as u64).sum(),
            delivered: self.0.delivered.load(Ordering::Relaxed),
            dropped: self.0.dropped.load(Ordering::Relaxed),
        }
    }

    /// Hints pending per target, for the status line.
    fn per_target(&self) -> Vec<(NodeId, usize)> {
        let mut all: Vec<_> = self
            .queues()
            .iter()
            .map(|(n, q)| (n.clone(), q.keys.len()))
            .collect();
        all.sort();
        all
    }
}

/// Hints delivered per step for one target before the others get a turn.
const BATCH: usize = 64;

/// Delivers hints to targets that answer again.
pub(crate) struct HintReplay<S> {
    pub hints: Hints<S>,
    pub cluster: Cluster,
    pub replicas: Replicas<S>,
    pub store: Arc<S>,
}

impl<S: Store> HintReplay<S> {
    /// Brings `version` of `key` (or a newer one) to `target`. `Ok(())`
    /// also when there is nothing left to bring: the target holds it, no
    /// longer replicates the key, or no replica holds that version.
    async fn deliver(
        &self,
        target: &NodeId,
        key: &[u8],
        version: &Version,
    ) -> Result<(), ReplicaError> {
        let ring = self.cluster.ring();
        let (now, next) = ring.owner_sets(Position::of_key(key));
        let mut owners: Vec<NodeId> = now.iter().cloned().collect();
        if let Some(next) = &next {
            owners.extend(
                next.iter()
                    .filter(|n| !owners.contains(n))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
        }
        if !owners.contains(target) {
            // Moving keys to new owners is the movement engine's job.
            return Ok(());
        }
        let me = self.cluster.me().clone();
        let key = bytes::Bytes::copy_from_slice(key);
        let mine = self.store.version_of(&key).await?;
        let source = if mine.is_some_and(|s| s.version() >= version) {
            Some(me.clone())
        } else {
            let mut found = None;
            let others = owners
                .iter()
                .filter(|n| *n != target && **n != me && !self.cluster.is_down(n));
            for n in others {
                match self.replicas.probe(n, key.clone()).await {
                    Ok(Some(v)) if v >= *version => {
                        found = Some(n.clone());
                        break;
                    }
                    Ok(_) => {}
                    Err(e) => return Err(e),
                }
            }
            found
        };
        let Some(source) = source else {
            // The write reached no replica that still holds it (it failed,
            // or was overwritten and collected): nothing to bring.
            return Ok(());
        };
        self.replicas.copy(&source, target, key).await.map(|_| ())
    }

    /// One round over the targets that answer; whether any work is left
    /// for a target that answers.
    async fn round(&self) -> bool {
        let pause = Duration::from_secs(1) / self.hints.0.cfg.per_second.max(1);
        let max_age_ms = u64::try_from(self.hints.0.cfg.max_age.as_millis()).unwrap_or(u64::MAX);
        let mut more = false;
        for target in self.hints.targets() {
            let state = self.cluster.ring().member(&target).map(|m| m.state());
            if matches!(state, None | Some(MemberState::Removed)) {
                // Removed: its keys were restored elsewhere.
                for (key, version, _) in self.hints.batch(&target, usize::MAX) {
                    self.hints.0.dropped.fetch_add(1, Ordering::Relaxed);
                    self.hints.forget(&target, &key, &version).await;
                }
                continue;
            }
            if self.cluster.is_down(&target) {
                continue;
            }
            let batch = self.hints.batch(&target, BATCH);
            more |= batch.len() == BATCH;
            for (key, version, at_ms) in batch {
                if wall_clock_ms().saturating_sub(at_ms) > max_age_ms {
                    self.hints.0.dropped.fetch_add(1, Ordering::Relaxed);
                    self.hints.forget(&target, &key, &version).await;
                    continue;
                }
                match self.deliver(&target, &key, &version).await {
                    Ok(()) => {
                        self.hints.0.delivered.fetch_add(1, Ordering::Relaxed);
                        self.hints.forget(&target, &key, &version).await;
                    }
                    Err(e) => {
                        tracing::debug!(%target, error = %e, "hint not delivered; trying later");
                        break;
                    }
                }
                tokio::time::sleep(pause).await;
            }
        }
        more
    }
}

impl<S: Store> Worker for HintReplay<S> {
    type Error = std::convert::Infallible;

    fn name(&self) -> String {
        "hint replay".into()
    }

    fn status(&self) -> String {
        let c = self.hints.counts();
        let per: Vec<String> = self
            .hints
            .per_target()
            .into_iter()
            .map(|(n, k)| format!("{n}: {k}"))
            .collect();
        format!(
            "{} pending{}{}, {} delivered, {} dropped",
            c.pending,
            if per.is_empty() { "" } else { " (" },
            if per.is_empty() {
                String::new()
            } else {
                per.join(", ") + ")"
            },
            c.delivered,
            c.dropped
        )
    }

    async fn work(&mut self) -> Result<WorkerState, Self::Error> {
        Ok(if self.round().await {
            WorkerState::Busy
        } else {
            WorkerState::Idle
        })
    }

    async fn wait_for_work(&mut self) -> WorkerState {
        // A round a second, or at once when a member answers again.
        let mut down = self.cluster.liveness().watch();
        let mut before = down.borrow_and_update().clone();
        let woken = async {
            while down.changed().await.is_ok() {
                let now = down.borrow_and_update().clone();
                if events(&before, &now)
                    .iter()
                    .any(|e| matches!(e, LivenessEvent::Up(_)))
                {
                    return;
                }
                before = now;
            }
            std::future::pending::<()>().await;
        };
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = woken => {}
        }
        WorkerState::Busy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mydht_proto::Timestamp;
    use mydht_store::MemoryStore;

    fn v(t: u64) -> Version {
        Version {
            timestamp: Timestamp::from_parts(t, 0),
            node: NodeId::new("a:1").expect("name"),
        }
    }

    #[tokio::test]
    async fn hints_are_bounded_per_target_and_keep_the_newest_version() {
        let store = Arc::new(MemoryStore::new());
        let b = NodeId::new("b:1").expect("name");
        let c = NodeId::new("c:1").expect("name");
        let one = size(b"k1", &b, &v(1));
        let cfg = HintConfig {
            max_bytes: 2 * one,
            ..HintConfig::default()
        };
        let hints = Hints::new(store.clone(), cfg.clone());
        hints.keep(&b, b"k1", &v(1)).await;
        hints.keep(&b, b"k2", &v(1)).await;
        // Past the bound: dropped and counted; another target has its own.
        hints.keep(&b, b"k3", &v(1)).await;
        hints.keep(&c, b"k3", &v(1)).await;
        // A newer version of a kept key replaces it in place; an older one
        // changes nothing.
        hints.keep(&b, b"k1", &v(5)).await;
        hints.keep(&b, b"k1", &v(3)).await;
        assert_eq!(
            hints.counts(),
            HintCounts {
                pending: 3,
                delivered: 0,
                dropped: 1
            }
        );
        assert_eq!(hints.batch(&b, 10)[0].1, v(5));
        // What the store kept comes back after a restart.
        let again = Hints::new(store.clone(), cfg);
        assert_eq!(again.load().await.expect("load"), 3);
        assert_eq!(again.batch(&b, 10), hints.batch(&b, 10));
        // Forgetting an older version than the one kept forgets nothing.
        again.forget(&b, b"k1", &v(1)).await;
        assert_eq!(again.counts().pending, 3);
        again.forget(&b, b"k1", &v(5)).await;
        again.forget(&b, b"k2", &v(1)).await;
        assert_eq!(again.per_target(), vec![(c.clone(), 1)]);
        assert_eq!(store.hints().await.expect("hints").len(), 1);
    }
}
