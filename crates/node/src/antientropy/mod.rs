//! Anti-entropy: replicas of a range compare what they hold and exchange
//! only what differs, the newer version winning, tombstones included.
//!
//! A round ([`AntiEntropy::round`]) takes, for each other member this node
//! shares ranges with, the positions they share (a [`Cover`]) and runs one
//! [`exchange`](exchange::exchange) with it: a top-down walk of the digests
//! the stores keep current as writes happen (parts, then leaves, then the
//! entries of the leaves that differ; no scan of the store per round),
//! taking from the peer what this node lacks or holds older. In an in-sync
//! pair a round is one small call. Then it collects the tombstones past
//! their grace period, leaf by leaf (see `collect`). It runs on demand
//! (`balance`, which answers once the round is done on every member, so
//! every replica has taken what it lacked) and by itself in the background
//! every `anti_entropy_interval` ([`Background`]), so a replica that missed
//! writes whose hints were lost is repaired with no command run.

mod collect;
mod exchange;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use mydht_cluster::Cluster;
use mydht_ring::{NodeId, TokenRange};
use mydht_store::{Cover, HybridClock, PART_BITS, Store};
use tokio::time::Instant;

use crate::movement::Report;
use crate::movement::queue::{MovementQueue, PassSummary, RangeCount};
use crate::replication::Replicas;
use crate::tasks::{Worker, WorkerState};

/// Anti-entropy on one node. Cheap to clone.
pub(crate) struct AntiEntropy<S> {
    cluster: Cluster,
    store: Arc<S>,
    replicas: Replicas<S>,
    movement: MovementQueue<S>,
    clock: Arc<HybridClock>,
    grace: Duration,
}

impl<S> Clone for AntiEntropy<S> {
    fn clone(&self) -> Self {
        Self {
            cluster: self.cluster.clone(),
            store: self.store.clone(),
            replicas: self.replicas.clone(),
            movement: self.movement.clone(),
            clock: self.clock.clone(),
            grace: self.grace,
        }
    }
}

/// Whether any position of `range` lies in one of `parts`.
fn touches(range: TokenRange, parts: &[u8]) -> bool {
    let shift = 64 - PART_BITS;
    Cover::of([range]).intervals().iter().any(|&(lo, hi)| {
        parts.iter().any(|&p| {
            let first = u64::from(p) << shift;
            let last = first | (u64::MAX >> PART_BITS);
            lo <= last && first <= hi
        })
    })
}

impl<S: Store> AntiEntropy<S> {
    pub fn new(
        cluster: Cluster,
        store: Arc<S>,
        replicas: Replicas<S>,
        movement: MovementQueue<S>,
        clock: Arc<HybridClock>,
        grace: Duration,
    ) -> Self {
        Self {
            cluster,
            store,
            replicas,
            movement,
            clock,
            grace,
        }
    }

    /// One round over every range this node replicates, recorded in the
    /// movement history as `label`.
    pub async fn round(&self, label: &str) -> Report {
        let started = Instant::now();
        let me = self.cluster.me().clone();
        let ring = self.cluster.ring();
        let mut report = Report::default();
        let mine: Vec<_> = ring
            .ranges()
            .into_iter()
            .filter(|r| r.replicas().contains(&me))
            .collect();
        let mut shared: BTreeMap<NodeId, Vec<TokenRange>> = BTreeMap::new();
        for r in &mine {
            for n in r.replicas().iter().filter(|n| **n != me) {
                shared.entry(n.clone()).or_default().push(r.range());
            }
        }
        let ctx = exchange::Ctx {
            store: &self.store,
            replicas: &self.replicas,
            me: &me,
            clock: &self.clock,
            grace: self.grace,
        };
        // Who could not be compared, and where each peer differed.
        let mut unsure = HashSet::new();
        let mut differed: HashMap<NodeId, Vec<u8>> = HashMap::new();
        let mut leaves = BTreeSet::new();
        for (node, ranges) in shared {
            if self.cluster.is_down(&node) {
                report.fail(&node, "down");
                unsure.insert(node);
                continue;
            }
            match exchange::exchange(&ctx, &node, &Cover::of(ranges)).await {
                Ok(x) => {
                    report.digests += x.calls;
                    report.sent += x.pulled;
                    report.bytes += x.bytes;
                    report.conflicts += x.conflicts;
                    leaves.extend(x.leaves);
                    if !x.differing.is_empty() {
                        differed.insert(node, x.differing);
                    }
                }
                Err(why) => {
                    report.fail(&node, why);
                    unsure.insert(node);
                }
            }
        }
        let differing = mine
            .iter()
            .filter(|r| {
                r.replicas().iter().filter(|n| **n != me).any(|n| {
                    unsure.contains(n) || differed.get(n).is_some_and(|p| touches(r.range(), p))
                })
            })
            .count() as u64;
        let seen = collect::Compared {
            mine: &mine,
            differed: &leaves,
            unsure: &unsure,
        };
        self.collect(&ring, &seen, &mut report).await;
        // One summary for the whole round.
        let mut summary = PassSummary::of(label, &report, started.elapsed().as_secs_f64());
        summary.ranges = Some(RangeCount {
            differing,
            owned: mine.len() as u64,
        });
        self.movement.record(summary);
        report
    }
}

/// Runs a round by itself every `interval` (the first one interval after
/// start, so a node that just started does not scan at once).
pub(crate) struct Background<S> {
    pub antientropy: AntiEntropy<S>,
    pub interval: std::time::Duration,
    pub rounds: u64,
    pub last: Option<String>,
}

impl<S: Store> Worker for Background<S> {
    type Error = std::convert::Infallible;

    fn name(&self) -> String {
        "anti-entropy".into()
    }

    fn status(&self) -> String {
        match &self.last {
            Some(last) => format!("{} rounds; last: {last}", self.rounds),
            None => format!("every {:?}; no round yet", self.interval),
        }
    }

    async fn work(&mut self) -> Result<WorkerState, Self::Error> {
        let started = Instant::now();
        let report = self.antientropy.round("anti-entropy").await;
        self.rounds += 1;
        self.last = Some(format!(
            "{:.1} s, {} digest calls, {} versions taken{}",
            started.elapsed().as_secs_f64(),
            report.digests,
            report.sent,
            report
                .failures()
                .map(|f| format!(", failed: {f}"))
                .unwrap_or_default()
        ));
        Ok(WorkerState::Idle)
    }

    async fn wait_for_work(&mut self) -> WorkerState {
        tokio::time::sleep(self.interval).await;
        WorkerState::Busy
    }
}
