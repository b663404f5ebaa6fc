//! Keeping this node's ring in step with the cluster's: a gossip round
//! with one member every interval ([`Gossip`]), and stopping at once when
//! the ring says another member removed this one ([`watch_removal`]).
//!
//! The rules of the merge are the cluster plane's (`View::merge`); this is
//! only the node's schedule for them and its reaction to the outcome.

use std::time::Duration;

use crate::tasks::{Tasks, Worker, WorkerState};
use mydht_cluster::Cluster;
use mydht_ring::MemberState;

/// Compares ring versions with the next member in turn, every `interval`,
/// and exchanges views when they differ.
pub(crate) struct Gossip {
    pub cluster: Cluster,
    pub interval: Duration,
    pub rounds: u64,
    pub changes: u64,
    pub failures: u64,
}

impl Worker for Gossip {
    type Error = std::convert::Infallible;

    fn name(&self) -> String {
        "gossip".into()
    }

    fn status(&self) -> String {
        format!(
            "{} rounds, {} brought changes, {} failed; ring {}",
            self.rounds,
            self.changes,
            self.failures,
            self.cluster.ring().version()
        )
    }

    async fn work(&mut self) -> Result<WorkerState, Self::Error> {
        if let Some((_, outcome)) = self.cluster.gossip_round().await {
            self.rounds += 1;
            match outcome {
                Ok(true) => self.changes += 1,
                Ok(false) => {}
                Err(_) => self.failures += 1,
            }
        }
        Ok(WorkerState::Idle)
    }

    async fn wait_for_work(&mut self) -> WorkerState {
        tokio::time::sleep(self.interval).await;
        WorkerState::Busy
    }
}

/// Whether another member removed this node: the ring lists it removed and
/// this node did not leave by itself (`leaving` says whether a leave of its
/// own is under way).
pub(crate) fn removed_by_others(cluster: &Cluster, leaving: bool) -> bool {
    !leaving && cluster.my_state() == Some(MemberState::Removed)
}

/// Waits until the ring says another member removed this node (a removed
/// member must stop acknowledging writes at once: the cluster has already
/// re-replicated its keys without it), then shuts the node down. Returns,
/// doing nothing, once the node begins to stop for another reason.
pub(crate) async fn watch_removal(cluster: Cluster, leaving: impl Fn() -> bool, tasks: Tasks) {
    let done = tasks.background.token().clone();
    let mut ring = cluster.watch_ring();
    loop {
        if removed_by_others(&cluster, leaving()) {
            tracing::error!(
                epoch = cluster.ring().epoch(),
                "another member removed this node from the ring; stopping (wipe the data directory to join again)"
            );
            // Not on a tracked phase: shutdown waits for those phases,
            // this task among them.
            tokio::spawn(async move { tasks.shutdown().await });
            return;
        }
        tokio::select! {
            changed = ring.changed() => if changed.is_err() { return },
            () = done.cancelled() => return,
        }
    }
}
