//! The agreed ring as this node holds it, for `GET /v1/ring` and `mydht
//! client -c ring`: its version, N, and every current member with its
//! agreed state beside this node's own view of whether it is alive.
//!
//! Removed members are listed apart, so `members` is exactly who is in the
//! ring now. Nothing here is decided: it is a snapshot of the cluster
//! plane.

use mydht_ring::{MemberState, MemberStatus};
use mydht_store::Store;
use serde::{Deserialize, Serialize};

use crate::node::Node;

/// The ring as one node holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingReport {
    /// The node that answered.
    pub node: String,
    /// The ring version: two members report the same one exactly when
    /// they hold the same ring (16 hex digits).
    pub version: String,
    /// The sum of every version in the ring, for people.
    pub epoch: u64,
    /// The configured replication level N.
    pub replicas: usize,
    /// While N changes: the N the data is complete under (reads and
    /// `whereis` still use it); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changing_from: Option<usize>,
    /// Virtual nodes per member.
    pub vnodes: u32,
    /// The members in the ring: joining, up and leaving.
    pub members: Vec<RingMember>,
    /// Members taken out of the ring (left or removed).
    pub removed: Vec<RingMember>,
}

/// One member of a [`RingReport`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingMember {
    /// Its advertised `host:port`.
    pub node: String,
    /// Its agreed ring state: `joining`, `up`, `leaving` or `removed`.
    pub state: String,
    /// Whether the answering node sees it alive (itself always).
    pub alive: bool,
    /// The version of its state.
    pub version: u64,
    /// The ring version it held when gossip last heard from it, if it was
    /// heard; shown beside `version` of the report to tell who lags.
    pub ring_version: Option<String>,
    /// Its wall clock minus the answering node's, in milliseconds, from
    /// its last gossip round (0 for the answering node; `None` until
    /// heard).
    pub clock_offset_ms: Option<i64>,
    /// Whether that clock is more than a second off the members' median.
    pub clock_skewed: bool,
}

/// The ring `node` holds now.
pub(crate) fn report<S: Store>(node: &Node<S>) -> RingReport {
    let ring = node.cluster.ring();
    let heard = node.cluster.heard_versions();
    let me = node.cluster.me();
    let (mut members, mut removed) = (Vec::new(), Vec::new());
    for m in ring.members() {
        let seen = if m.id() == me {
            Some(ring.version().to_string())
        } else {
            heard.get(m.id()).map(|h| h.version.to_string())
        };
        let entry = RingMember {
            node: m.id().to_string(),
            state: MemberStatus::of(m.state(), false).to_string(),
            alive: !node.cluster.is_down(m.id()),
            version: m.version(),
            ring_version: seen,
            clock_offset_ms: if m.id() == me {
                Some(0)
            } else {
                heard.get(m.id()).and_then(|h| h.clock_offset_ms)
            },
            clock_skewed: heard.get(m.id()).is_some_and(|h| h.clock_skewed),
        };
        if m.state() == MemberState::Removed {
            removed.push(entry);
        } else {
            members.push(entry);
        }
    }
    RingReport {
        node: me.to_string(),
        version: ring.version().to_string(),
        epoch: ring.epoch(),
        replicas: ring.params().replicas(),
        changing_from: ring.params().previous(),
        vnodes: ring.params().vnodes(),
        members,
        removed,
    }
}

impl RingReport {
    /// The report as a table, one member a line (what `mydht client -c
    /// ring` prints).
    pub fn table(&self) -> String {
        let mut out = format!(
            "ring {} (epoch {}), N={}, {} members, as {} sees it\n",
            self.version,
            self.epoch,
            self.replicas,
            self.members.len(),
            self.node
        );
        let width = self
            .members
            .iter()
            .chain(&self.removed)
            .map(|m| m.node.len())
            .max()
            .unwrap_or(4)
            .max(4);
        out.push_str(&format!(
            "{:width$}  {:8}  {:5}  {:>7}  {:>10}  RING\n",
            "NODE", "STATE", "ALIVE", "VERSION", "CLOCK ms"
        ));
        for m in self.members.iter().chain(&self.removed) {
            let ring = match &m.ring_version {
                Some(v) if *v == self.version => "same".to_string(),
                Some(v) => format!("differs ({v})"),
                None => "not heard yet".to_string(),
            };
            let clock = match m.clock_offset_ms {
                Some(o) if m.clock_skewed => format!("{o:+}!"),
                Some(o) => format!("{o:+}"),
                None => "?".to_string(),
            };
            out.push_str(&format!(
                "{:width$}  {:8}  {:5}  {:>7}  {clock:>10}  {ring}\n",
                m.node,
                m.state,
                if m.alive { "yes" } else { "no" },
                m.version
            ));
        }
        out
    }
}
