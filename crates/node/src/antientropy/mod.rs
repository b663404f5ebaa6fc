//! Anti-entropy: replicas of a range compare what they hold and exchange
//! only what differs, the newer version winning, tombstones included.
//!
//! A round ([`AntiEntropy::round`]) walks the ranges this node replicates;
//! for each it compares this node's digest (count and an order-free hash of
//! every entry, from the store) with each other replica's, goes key by key
//! (a balance pass) only through the ranges that differ, and in the ranges
//! every replica agrees on collects the tombstones past their grace period
//! without asking again. It runs on demand (`balance`, which answers once
//! the round is done) and by itself in the background every
//! `anti_entropy_interval` ([`Background`]), so a replica that missed
//! writes whose hints were lost is repaired with no command run. The
//! digests are still computed by a metadata scan of each range per round;
//! digests kept current as writes happen (no scan per round) are the next
//! step and belong here.

use std::sync::Arc;

use mydht_cluster::Cluster;
use mydht_store::Store;
use tokio::time::Instant;

use crate::movement::plan::settled;
use crate::movement::queue::{MovementQueue, PassSummary, RangeCount};
use crate::movement::{Pass, Report};
use crate::replication::Replicas;
use crate::tasks::{Worker, WorkerState};

/// Anti-entropy on one node. Cheap to clone.
pub(crate) struct AntiEntropy<S> {
    cluster: Cluster,
    store: Arc<S>,
    replicas: Replicas<S>,
    movement: MovementQueue<S>,
}

impl<S> Clone for AntiEntropy<S> {
    fn clone(&self) -> Self {
        Self {
            cluster: self.cluster.clone(),
            store: self.store.clone(),
            replicas: self.replicas.clone(),
            movement: self.movement.clone(),
        }
    }
}

impl<S: Store> AntiEntropy<S> {
    pub fn new(
        cluster: Cluster,
        store: Arc<S>,
        replicas: Replicas<S>,
        movement: MovementQueue<S>,
    ) -> Self {
        Self {
            cluster,
            store,
            replicas,
            movement,
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
        let (mut differ, mut agree) = (Vec::new(), Vec::new());
        let mut digests = 0u64;
        for replicated in &mine {
            let range = replicated.range();
            let local = match self.store.digest(range).await {
                Ok(d) => d,
                Err(e) => {
                    report.fail(&me, format!("reading the store: {e}"));
                    return report;
                }
            };
            let mut same = true;
            for node in replicated.replicas().iter().filter(|n| **n != me) {
                digests += 1;
                if self.cluster.is_down(node) {
                    report.fail(node, "down");
                    same = false;
                    continue;
                }
                match self.replicas.digest(node, range).await {
                    Ok(theirs) if (theirs.count, theirs.hash) == (local.count, local.hash) => {}
                    Ok(_) => same = false,
                    Err(e) => {
                        report.fail(node, e);
                        same = false;
                    }
                }
            }
            if !same {
                differ.push(range);
            } else if local.tombstones > 0 {
                agree.push(range);
            }
        }
        let differing = differ.len() as u64;
        let mut keyed = self
            .movement
            .start_in(Pass::Balance, differ)
            .finished()
            .await;
        // Digests were compared with the current owners only: while members
        // join or leave, the future owners have not been asked, so no
        // tombstone may go yet.
        if !settled(&ring) {
            agree.clear();
        }
        let collected = self
            .movement
            .start_in(Pass::Collect, agree)
            .finished()
            .await;
        keyed.dropped += collected.dropped;
        keyed.digests = digests;
        for (node, why) in report.failed.into_iter().chain(collected.failed) {
            keyed.failed.entry(node).or_insert(why);
        }
        // One summary for the whole round, in place of its key-by-key part's.
        let mut summary = PassSummary::of(label, &keyed, started.elapsed().as_secs_f64());
        summary.ranges = Some(RangeCount {
            differing,
            owned: mine.len() as u64,
        });
        self.movement.record(summary);
        keyed
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
            "{:.1} s, {} digests, {} keys sent{}",
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
