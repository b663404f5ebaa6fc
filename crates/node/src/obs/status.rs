//! One snapshot of a node's state: its ring and how it sees each member,
//! N/W/R, what its store holds, what data is moving, and its workers.
//! Serialised as-is for `/status.json`; the HTML page is rendered from it.

use mydht_ring::{MemberState, MemberStatus};
use mydht_store::Store;
use serde::{Deserialize, Serialize};

use crate::movement::queue::MovementStatus;
use crate::node::Node;
use crate::tasks::WorkerInfo;

/// A node's state at one moment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The node's advertised name.
    pub node: String,
    /// Its ring's epoch.
    pub epoch: u64,
    /// Its ring's version (see `/v1/ring`).
    pub ring_version: String,
    /// Members that are not removed.
    pub ring_size: usize,
    /// How many times a member went down in this node's view, since it
    /// started (a member falsely declared down counts here too).
    pub downs: u64,
    /// N, W and R.
    pub replication: Replication,
    /// Every member, removed ones included, as this node sees it.
    pub members: Vec<MemberView>,
    /// What this node's store holds.
    pub store: StoreView,
    /// Data movement on this node.
    pub movement: MovementStatus,
    /// Hints this node keeps for replicas that missed writes.
    pub hints: HintsView,
    /// Its background workers.
    pub workers: Vec<WorkerInfo>,
}

/// Hints kept for replicas that missed writes, and what became of them
/// since the node started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HintsView {
    /// Hints waiting for their replica.
    pub pending: u64,
    /// Hints delivered.
    pub delivered: u64,
    /// Hints dropped past their bound (age, bytes) or for a removed member.
    pub dropped: u64,
}

/// Replication level and default quorums.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replication {
    /// The effective N (at most the members holding data).
    pub n: usize,
    /// The ring's configured N.
    pub configured: usize,
    /// The default write quorum.
    pub w: usize,
    /// The default read quorum.
    pub r: usize,
}

/// One member as this node sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    /// Its advertised name.
    pub node: String,
    /// Its ring state: `joining`, `up`, `leaving` or `removed`.
    pub state: String,
    /// Whether this node considers it down.
    pub down: bool,
    /// The version of its state.
    pub version: u64,
    /// Whether the ring version it held when gossip last heard from it
    /// differs from this node's (`false` when not heard yet).
    pub ring_differs: bool,
    /// Whether its clock is more than a second off the members' median.
    pub clock_skewed: bool,
    /// The two together, as the status page shows it (`down` overlays
    /// every state but `removed`).
    pub status: String,
}

/// Counts kept by the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreView {
    /// Keys holding a value.
    pub live_keys: u64,
    /// Keys holding a tombstone.
    pub tombstones: u64,
    /// Bytes of live values.
    pub value_bytes: u64,
}

impl NodeStatus {
    /// How the snapshot shows `member`, if it lists it.
    pub fn member(&self, member: &str) -> Option<&MemberView> {
        self.members.iter().find(|m| m.node == member)
    }
}

/// The state of `node` now.
pub(crate) fn snapshot<S: Store>(node: &Node<S>) -> NodeStatus {
    let ring = node.cluster.ring();
    let quorum = ring.quorum();
    let stats = node.store.stats();
    let heard = node.cluster.heard_versions();
    let members = ring
        .members()
        .iter()
        .map(|m| {
            let down = node.cluster.is_down(m.id());
            MemberView {
                node: m.id().to_string(),
                state: MemberStatus::of(m.state(), false).to_string(),
                down,
                version: m.version(),
                ring_differs: heard
                    .get(m.id())
                    .is_some_and(|h| h.version != ring.version()),
                clock_skewed: heard.get(m.id()).is_some_and(|h| h.clock_skewed),
                status: MemberStatus::of(m.state(), down).to_string(),
            }
        })
        .collect();
    NodeStatus {
        node: node.cluster.me().to_string(),
        epoch: ring.epoch(),
        ring_version: ring.version().to_string(),
        downs: node.cluster.liveness().downs(),
        ring_size: ring
            .members()
            .iter()
            .filter(|m| m.state() != MemberState::Removed)
            .count(),
        replication: Replication {
            n: quorum.n(),
            configured: ring.params().replicas(),
            w: quorum.w(),
            r: quorum.r(),
        },
        members,
        store: StoreView {
            live_keys: stats.live_keys,
            tombstones: stats.tombstones,
            value_bytes: stats.value_bytes,
        },
        movement: node.movement.status(),
        hints: {
            let c = node.hints.counts();
            HintsView {
                pending: c.pending,
                delivered: c.delivered,
                dropped: c.dropped,
            }
        },
        workers: node.workers.list(),
    }
}
