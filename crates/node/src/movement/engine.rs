//! Running one pass: a paged scan of this node's store in ring order,
//! each entry's [`plan`](super::plan) carried out with the replication
//! client, many keys at once but never more than the node-wide budget of
//! keys and bytes in motion allows.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mydht_cluster::{Cluster, RpcError};
use mydht_proto::Version;
use mydht_ring::{NodeId, Ring, TokenRange};
use mydht_store::{EntryMeta, HybridClock, Purge, Store};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::plan::{Then, plan, settled};
use super::{Pass, Report};
use crate::replication::{ReplicaError, Replicas};

/// Keys in motion at once, node-wide.
const KEYS_IN_MOTION: usize = 32;
/// What one key in motion may hold in memory at most: a stream window of
/// chunks plus the queues around it.
const STREAM_COST: u64 = 4 << 20;
/// Memory all keys in motion may hold together, node-wide.
const BYTES_IN_MOTION: u64 = 8 << 20;
/// Entries read from the store per page.
const PAGE: usize = 256;

/// The node-wide bound on work in motion, shared by every pass.
pub(crate) struct Budget {
    keys: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            keys: Arc::new(Semaphore::new(KEYS_IN_MOTION)),
            bytes: Arc::new(Semaphore::new(to_permits(BYTES_IN_MOTION))),
        }
    }
}

fn to_permits(bytes: u64) -> usize {
    usize::try_from(bytes).unwrap_or(usize::MAX)
}

impl Budget {
    /// Room for one more key that may hold `cost` bytes in memory.
    async fn admit(&self, cost: u64) -> Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)> {
        let key = self.keys.clone().acquire_owned().await.ok()?;
        let n = u32::try_from(cost.clamp(1, STREAM_COST)).unwrap_or(u32::MAX);
        let bytes = self.bytes.clone().acquire_many_owned(n).await.ok()?;
        Some((key, bytes))
    }
}

/// How far a pass has got, readable while it runs and after.
#[derive(Debug)]
pub(crate) struct Progress {
    pub pass: &'static str,
    pub started: Instant,
    /// Entries in the store when the pass began.
    pub total: u64,
    pub scanned: AtomicU64,
    pub sent: AtomicU64,
    pub bytes: AtomicU64,
}

impl Progress {
    pub fn new(pass: &'static str, total: u64) -> Self {
        Self {
            pass,
            started: Instant::now(),
            total,
            scanned: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        }
    }

    /// Entries looked at so far.
    pub fn scanned(&self) -> u64 {
        self.scanned.load(Ordering::Relaxed)
    }
}

/// What one entry's work did.
#[derive(Default)]
struct EntryWork {
    probes: u64,
    sent: u64,
    bytes: u64,
    dropped: bool,
    failed: Vec<(NodeId, String)>,
}

/// What the owners hold of a former owner's old copy.
enum NoOwner {
    /// Some owner holds a version of it: purge as usual.
    Holds,
    /// Every owner answered that it holds nothing, in a settled ring.
    Stale,
    /// Some owner could not be asked, or members are joining or leaving:
    /// keep the copy for a later purge.
    Unsure,
}

/// Everything a pass works with.
pub(crate) struct Engine<S> {
    pub store: Arc<S>,
    pub cluster: Cluster,
    pub replicas: Replicas<S>,
    pub clock: Arc<HybridClock>,
    /// See `NodeConfig::tombstone_grace`.
    pub grace: Duration,
    pub budget: Budget,
}

impl<S: Store> Engine<S> {
    /// Runs `pass` over the entries of this node's store in `ranges`, until
    /// done or `stop`, which also aborts the keys then in motion.
    pub async fn run(
        self: &Arc<Self>,
        pass: &Pass,
        ranges: Vec<TokenRange>,
        progress: &Progress,
        stop: &CancellationToken,
    ) -> Report {
        let me = self.cluster.me().clone();
        let mut report = Report::default();
        let ring = self.cluster.ring();
        let mut work: JoinSet<EntryWork> = JoinSet::new();
        // Whether the scan was cut short, or keys in motion were aborted:
        // only then did the pass not finish.
        let mut stopped = false;
        'ranges: for range in ranges {
            let mut cursor = None;
            loop {
                if stop.is_cancelled() {
                    stopped = true;
                    break 'ranges;
                }
                let page = match self.store.scan(range, cursor.as_ref(), PAGE).await {
                    Ok(p) => p,
                    Err(e) => {
                        report.fail(&me, format!("reading the store: {e}"));
                        break 'ranges;
                    }
                };
                for meta in page.entries {
                    // Bounded by keys and by memory: a large value in motion
                    // holds up to a stream window, small ones far less.
                    let admitted = tokio::select! {
                        () = stop.cancelled() => None,
                        p = self.budget.admit(meta.size) => p,
                    };
                    let Some(permits) = admitted else {
                        if stop.is_cancelled() {
                            stopped = true;
                        } else {
                            report.fail(&me, "the movement budget is closed");
                        }
                        break 'ranges;
                    };
                    while let Some(done) = work.try_join_next() {
                        absorb(&me, &mut report, done, progress);
                    }
                    progress.scanned.fetch_add(1, Ordering::Relaxed);
                    report.scanned += 1;
                    let (engine, ring, pass) = (self.clone(), ring.clone(), pass.clone());
                    work.spawn(async move {
                        let out = engine.entry(&ring, &pass, meta).await;
                        drop(permits);
                        out
                    });
                }
                match page.next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
        }
        // Cancelled (its handle dropped, or the node stopping), before or
        // while the last keys are in motion: those stop too. Nothing partial
        // is ever visible at their targets, and each is sent again by the
        // next pass.
        let mut aborted = false;
        loop {
            let done = tokio::select! {
                () = stop.cancelled(), if !aborted => {
                    aborted = true;
                    work.abort_all();
                    continue;
                }
                done = work.join_next() => done,
            };
            match done {
                None => break,
                Some(Err(e)) if e.is_cancelled() => stopped = true,
                Some(done) => absorb(&me, &mut report, done, progress),
            }
        }
        if stopped {
            report.fail(&me, "the node is stopping");
        }
        report
    }

    async fn entry(&self, ring: &Ring, pass: &Pass, meta: EntryMeta) -> EntryWork {
        let me = self.cluster.me();
        let plan = plan(pass, ring, me, meta.position, |n| self.cluster.is_down(n));
        let mut out = EntryWork::default();
        if plan.is_empty() {
            return out;
        }
        if matches!(pass, Pass::Purge)
            && !meta.stamp.is_tombstone()
            && self.past_grace(meta.stamp.version())
        {
            match self
                .held_by_no_owner(ring, &plan.ensure, &meta, &mut out)
                .await
            {
                NoOwner::Holds => {}
                // This former owner's copy may be a key deleted while it no
                // longer owned it, whose tombstone was collected: pushing
                // it back would bring the delete back, so it is dropped.
                NoOwner::Stale => {
                    if let Ok(Purge::Removed) = self.store.drop_entry(&meta.key, &meta.stamp).await
                    {
                        tracing::info!(key = %String::from_utf8_lossy(&meta.key), "dropped a copy no owner holds, older than the tombstone grace (deleted while this node did not own it)");
                        out.dropped = true;
                    }
                    return out;
                }
                NoOwner::Unsure => return out,
            }
        }
        if let Some(sender) = &plan.check_sender {
            out.probes += 1;
            match self.replicas.probe(sender, meta.key.clone()).await {
                Ok(Some(held)) if held >= *meta.stamp.version() => return out,
                Ok(_) => {}
                Err(e) => out.failed.push((sender.clone(), e.to_string())),
            }
        }
        let mut all_hold = true;
        for node in &plan.ensure {
            if let Err(e) = self.ensure(node, &meta, &mut out).await {
                all_hold = false;
                out.failed.push((node.clone(), e.to_string()));
            }
        }
        match plan.then {
            Then::Keep => {}
            Then::Drop if all_hold => match self.store.drop_entry(&meta.key, &meta.stamp).await {
                Ok(Purge::Removed) => out.dropped = true,
                Ok(_) => {}
                Err(e) => out.failed.push((me.clone(), e.to_string())),
            },
            Then::Drop => {}
        }
        out
    }

    /// Whether any owner holds this entry (a value a former owner still
    /// holds, older than the tombstone grace). Every owner holding nothing,
    /// in a ring where nobody joins or leaves, means the key was deleted
    /// and its tombstone collected after this node stopped owning it (or
    /// every owner lost it, a loss beyond what replication tolerates).
    async fn held_by_no_owner(
        &self,
        ring: &Ring,
        owners: &[NodeId],
        meta: &EntryMeta,
        out: &mut EntryWork,
    ) -> NoOwner {
        let mut unsure = !settled(ring);
        for node in owners {
            if self.cluster.is_down(node) {
                unsure = true;
                continue;
            }
            out.probes += 1;
            match self.replicas.probe(node, meta.key.clone()).await {
                Ok(Some(_)) => return NoOwner::Holds,
                Ok(None) => {}
                Err(e) => {
                    unsure = true;
                    out.failed.push((node.clone(), e.to_string()));
                }
            }
        }
        if unsure {
            NoOwner::Unsure
        } else {
            NoOwner::Stale
        }
    }

    /// Makes sure `node` holds this entry's version or a newer one, sending
    /// it when it does not.
    async fn ensure(
        &self,
        node: &NodeId,
        meta: &EntryMeta,
        out: &mut EntryWork,
    ) -> Result<(), ReplicaError> {
        if self.cluster.is_down(node) {
            return Err(RpcError::Down { node: node.clone() }.into());
        }
        let mine = meta.stamp.version();
        out.probes += 1;
        match self.replicas.probe(node, meta.key.clone()).await? {
            Some(held) if held >= *mine => return Ok(()),
            // A member holding nothing has nothing a tombstone must cover.
            // Past the grace period, nothing may also mean it already
            // collected this tombstone: sending it back would undo that,
            // forever.
            None if meta.stamp.is_tombstone() && self.past_grace(mine) => return Ok(()),
            _ => {}
        }
        // Streams large values in bounded memory; a key gone from this
        // store since the scan (a purge raced it) sends nothing.
        self.replicas
            .copy(self.cluster.me(), node, meta.key.clone())
            .await?;
        out.sent += 1;
        out.bytes += if meta.stamp.is_tombstone() {
            0
        } else {
            meta.size
        };
        Ok(())
    }

    fn past_grace(&self, version: &Version) -> bool {
        mydht_store::past_grace(self.clock.now(), version, self.grace)
    }
}

fn absorb(
    me: &NodeId,
    report: &mut Report,
    done: Result<EntryWork, tokio::task::JoinError>,
    progress: &Progress,
) {
    match done {
        Ok(o) => {
            report.sent += o.sent;
            report.probes += o.probes;
            report.bytes += o.bytes;
            report.dropped += u64::from(o.dropped);
            progress.sent.fetch_add(o.sent, Ordering::Relaxed);
            progress.bytes.fetch_add(o.bytes, Ordering::Relaxed);
            for (node, why) in o.failed {
                report.fail(&node, why);
            }
        }
        Err(e) => report.fail(me, format!("a movement task failed: {e}")),
    }
}
