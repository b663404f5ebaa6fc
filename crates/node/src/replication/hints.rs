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
        let mut n = 0;
        for h in hints {
            if self.index(&h.target, &h.key, &h.version, h.at_ms) {
                n += 1;
            } else {
                // Past the bound (counted as dropped): gone from the store
                // too, or every restart would count it again.
                self.0
                    .store
                    .remove_hint(&h.target, &h.key, &h.version)
                    .await?;
            }
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
            // The newer version replaces it, keeping when it was first kept.
            q.bytes = q.bytes.saturating_sub(size(key, target, held)) + size(key, target, version);
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

    /// Drops every hint kept longer than `max_age_ms`, whatever its
    /// target's state (a member down for good keeps nothing past the age
    /// bound).
    async fn drop_older_than(&self, max_age_ms: u64) {
        let now = wall_clock_ms();
        let old: Vec<(NodeId, Vec<u8>, Version)> = self
            .queues()
            .iter()
            .flat_map(|(t, q)| {
                q.keys
                    .iter()
                    .filter(|(_, (_, at))| now.saturating_sub(*at) > max_age_ms)
                    .map(|(k, (v, _))| (t.clone(), k.clone(), v.clone()))
            })
            .collect();
        for (target, key, version) in old {
            self.0.dropped.fetch_add(1, Ordering::Relaxed);
            self.forget(&target, &key, &version).await;
        }
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
    /// The tombstone grace: no hint outlives half of it, so a hint can
    /// never carry a delete's key back after its tombstone was collected.
    pub tombstone_grace: Duration,
    /// Rounds since the last sweep of hints past their age.
    pub since_sweep: u32,
}

/// What a delivery did.
enum Delivery {
    /// The version (or a newer one) was copied to the target, or it held
    /// it already.
    Copied,
    /// Nothing to bring: the target no longer replicates the key, or no
    /// replica holds the version any more.
    Nothing,
    /// No source found now, but an owner that may hold it was not asked
    /// (down, or failed): the hint waits.
    Later,
}

/// Rounds between sweeps of hints past their age (about a minute).
const SWEEP_EVERY: u32 = 60;

/// Whether a failed delivery says the target cannot be reached now (try it
/// again next round) rather than that it refused this one hint.
fn unreachable(e: &ReplicaError) -> bool {
    !matches!(e, ReplicaError::Rpc(mydht_cluster::RpcError::Remote { .. }))
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
    ) -> Result<Delivery, ReplicaError> {
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
            return Ok(Delivery::Nothing);
        }
        let me = self.cluster.me().clone();
        let key = bytes::Bytes::copy_from_slice(key);
        let mine = self.store.version_of(&key).await?;
        let source = if mine.is_some_and(|s| s.version() >= version) {
            Some(me.clone())
        } else {
            let mut found = None;
            let mut unasked = 0;
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
                    // Another owner may still serve as the source.
                    Err(_) => unasked += 1,
                }
            }
            if found.is_none() && (unasked > 0 || owners.iter().any(|n| self.cluster.is_down(n))) {
                // A holder may be among those not asked: try again later
                // rather than decide there is nothing to bring.
                return Ok(Delivery::Later);
            }
            found
        };
        let Some(source) = source else {
            // The write reached no replica that still holds it (it failed,
            // or was overwritten and collected): nothing to bring.
            return Ok(Delivery::Nothing);
        };
        self.replicas.copy(&source, target, key).await?;
        Ok(Delivery::Copied)
    }

    /// One round over the targets that answer; whether any work is left
    /// for a target that answers.
    async fn round(&mut self) -> bool {
        let pause = Duration::from_secs(1) / self.hints.0.cfg.per_second.max(1);
        let max_age = self.hints.0.cfg.max_age.min(self.tombstone_grace / 2);
        let max_age_ms = u64::try_from(max_age.as_millis()).unwrap_or(u64::MAX);
        self.since_sweep += 1;
        if self.since_sweep >= SWEEP_EVERY {
            self.since_sweep = 0;
            self.hints.drop_older_than(max_age_ms).await;
        }
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
            let full = batch.len() == BATCH;
            let mut failed = false;
            for (key, version, at_ms) in batch {
                if wall_clock_ms().saturating_sub(at_ms) > max_age_ms {
                    self.hints.0.dropped.fetch_add(1, Ordering::Relaxed);
                    self.hints.forget(&target, &key, &version).await;
                    continue;
                }
                let delivered = self.deliver(&target, &key, &version).await;
                tokio::time::sleep(pause).await;
                match delivered {
                    Ok(Delivery::Later) => failed = true,
                    Ok(d) => {
                        if matches!(d, Delivery::Copied) {
                            self.hints.0.delivered.fetch_add(1, Ordering::Relaxed);
                        }
                        self.hints.forget(&target, &key, &version).await;
                    }
                    Err(e) => {
                        tracing::debug!(%target, error = %e, "hint not delivered; trying later");
                        failed = true;
                        // Unreachable: the rest would fail too. Refused:
                        // this hint waits, the others go on.
                        if unreachable(&e) {
                            break;
                        }
                    }
                }
            }
            // More work at once only after a full batch that went through;
            // a failure waits for the next round, so a target that keeps
            // failing is tried once a round, not in a loop.
            more |= full && !failed;
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
