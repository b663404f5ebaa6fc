//! `--remove-after`: a member that has not been alive for that long is
//! removed exactly as `mydht client -c remove` does (marked removed, every
//! member restores N copies of what it held). Off unless configured.
//!
//! Every member keeps the clock, but only one acts: the member with the
//! lowest name among those this node sees alive (itself included), so a
//! healthy cluster removes a dead member once. Two members that disagree
//! about who is lowest may both remove it; removal is idempotent (the same
//! versioned entry, and passes that send only what is missing).
//!
//! The clock runs on the failure detector's verdict only, never on this
//! node's failed calls: one bad link to a member that the rest of the
//! cluster reaches must not get it removed.
//!
//! And only a member that sees a strict majority of the ring alive acts: in
//! a partition longer than `--remove-after`, each side would otherwise
//! remove the other, and once the partition heals every member would learn
//! it was removed and stop. Only the majority side removes; the minority
//! waits.

use std::collections::HashMap;
use std::time::Duration;

use mydht_proto::Response;
use mydht_ring::{MemberState, NodeId};
use mydht_store::Store;
use tokio::time::Instant;

use crate::handlers::{Reply, admin};
use crate::node::Node;
use crate::tasks::{Worker, WorkerState};

/// How often the clocks are checked.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Removes members not alive for `after`.
pub(crate) struct AutoRemove<S> {
    pub node: Node<S>,
    pub after: Duration,
    /// When each member not alive was first seen so.
    pub down_since: HashMap<NodeId, Instant>,
    pub removed: u64,
}

impl<S: Store> AutoRemove<S> {
    pub fn new(node: Node<S>, after: Duration) -> Self {
        Self {
            node,
            after,
            down_since: HashMap::new(),
            removed: 0,
        }
    }

    /// Whether this node is the one that acts: it sees a strict majority
    /// of the ring alive, and has the lowest name among those.
    fn elected(&self) -> bool {
        let ring = self.node.cluster.ring();
        let me = self.node.cluster.me();
        let members: Vec<&NodeId> = ring
            .members()
            .iter()
            .filter(|m| m.state() != MemberState::Removed)
            .map(|m| m.id())
            .collect();
        let alive: Vec<&NodeId> = members
            .iter()
            .copied()
            .filter(|n| *n == me || !self.node.cluster.is_down(n))
            .collect();
        alive.len() * 2 > members.len() && alive.iter().min() == Some(&me)
    }
}

impl<S: Store> Worker for AutoRemove<S> {
    type Error = std::convert::Infallible;

    fn name(&self) -> String {
        "remove-after".into()
    }

    fn status(&self) -> String {
        format!(
            "after {:?}; {} members not alive, {} removed",
            self.after,
            self.down_since.len(),
            self.removed
        )
    }

    async fn work(&mut self) -> Result<WorkerState, Self::Error> {
        let now = Instant::now();
        let ring = self.node.cluster.ring();
        let me = self.node.cluster.me().clone();
        let down: Vec<NodeId> = ring
            .members()
            .iter()
            .filter(|m| m.state() != MemberState::Removed && m.id() != &me)
            .filter(|m| self.node.cluster.liveness().detected_down(m.id()))
            .map(|m| m.id().clone())
            .collect();
        self.down_since.retain(|n, _| down.contains(n));
        for n in &down {
            self.down_since.entry(n.clone()).or_insert(now);
        }
        let due: Vec<NodeId> = self
            .down_since
            .iter()
            .filter(|(_, since)| now.duration_since(**since) >= self.after)
            .map(|(n, _)| n.clone())
            .collect();
        if due.is_empty() || !self.elected() {
            return Ok(WorkerState::Idle);
        }
        for target in due {
            tracing::warn!(node = %target, after = ?self.after, "not alive for --remove-after: removing it");
            match admin::remove(&self.node, target.clone(), None).await {
                Reply::Plain(Response::Done) => {
                    self.removed += 1;
                    self.down_since.remove(&target);
                    tracing::info!(node = %target, "removed; N copies of its keys restored");
                }
                _ => {
                    tracing::warn!(node = %target, "removal did not finish everywhere; a later check retries");
                }
            }
        }
        Ok(WorkerState::Idle)
    }

    async fn wait_for_work(&mut self) -> WorkerState {
        tokio::time::sleep(CHECK_EVERY).await;
        WorkerState::Busy
    }
}
