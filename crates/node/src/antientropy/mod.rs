//! Anti-entropy: replicas of a range compare what they hold and exchange
//! only what differs, the newer version winning, tombstones included.
//!
//! A round ([`AntiEntropy::round`]) walks the ranges this node replicates;
//! for each it compares this node's digest (count and an order-free hash of
//! every entry, from the store) with each other replica's, goes key by key
//! (a balance pass) only through the ranges that differ, and in the ranges
//! every replica agrees on collects the tombstones past their grace period
//! without asking again. It runs on demand today (`balance`); running it by
//! itself in the background, over digests kept current as writes happen,
//! is the next step and belongs here.

use std::sync::Arc;

use mydht_cluster::Cluster;
use mydht_store::Store;
use tokio::time::Instant;

use crate::movement::plan::settled;
use crate::movement::queue::{MovementQueue, PassSummary, RangeCount};
use crate::movement::{Pass, Report};
use crate::replication::Replicas;

/// Anti-entropy on one node.
pub(crate) struct AntiEntropy<S> {
    cluster: Cluster,
    store: Arc<S>,
    replicas: Replicas<S>,
    movement: MovementQueue<S>,
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

    /// One round over every range this node replicates.
    pub async fn round(&self) -> Report {
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
        let mut summary = PassSummary::of("balance", &keyed, started.elapsed().as_secs_f64());
        summary.ranges = Some(RangeCount {
            differing,
            owned: mine.len() as u64,
        });
        self.movement.record(summary);
        keyed
    }
}
