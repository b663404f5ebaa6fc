//! Members of a ring: their names, their states and the versions of those
//! states.
//!
//! A member is named by its advertised `host:port` string exactly as given:
//! `localhost:50140` and `127.0.0.1:50140` are two different members, as in
//! the seed. Its [`MemberState`] is agreed cluster-wide: every change of it
//! comes with a higher version, and of two entries for the same member the
//! one that [supersedes](Member::supersedes) the other wins, whatever order
//! they arrive in. Whether a member is *down* is each node's own view and
//! lives outside the ring (see [`MemberStatus`]).

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::RingError;

/// The longest node name accepted, in bytes (a DNS name is at most 253).
pub const MAX_NODE_ID_LEN: usize = 260;

/// A member's advertised `host:port`, exactly as given.
///
/// Shared, not copied: every version a node stamps and every replica set
/// names members, so a clone is a reference count, not an allocation. It
/// travels as a plain string.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(Arc<str>);

impl NodeId {
    /// Checks and wraps a name. Names are compared byte for byte; nothing is
    /// resolved or normalized. Empty names, names with whitespace or control
    /// characters and names over [`MAX_NODE_ID_LEN`] bytes are refused.
    pub fn new(name: impl Into<String>) -> Result<Self, RingError> {
        Self::checked(&name.into())
    }

    fn checked(name: &str) -> Result<Self, RingError> {
        let reason = if name.is_empty() {
            Some("empty")
        } else if name.len() > MAX_NODE_ID_LEN {
            Some("longer than 260 bytes")
        } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            Some("contains whitespace or a control character")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(RingError::InvalidNodeId {
                name: name.chars().take(64).collect(),
                reason,
            }),
            None => Ok(Self(Arc::from(name))),
        }
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for NodeId {
    type Error = RingError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<NodeId> for String {
    fn from(id: NodeId) -> Self {
        id.0.to_string()
    }
}

impl Serialize for NodeId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = NodeId;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a node name (host:port)")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<NodeId, E> {
                NodeId::checked(v).map_err(E::custom)
            }
        }
        d.deserialize_str(Name)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({:?})", self.0)
    }
}

/// A member's place in the ring, agreed by the whole cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MemberState {
    /// Announced and receiving writes for the ranges it will own, but not yet
    /// holding complete data: it does not answer reads.
    Joining,
    /// A full member: receives writes and answers reads.
    Up,
    /// Handing its ranges to their next owners: still receives writes and
    /// answers reads until it is gone.
    Leaving,
    /// Taken out of the ring: owns nothing, and is refused if it comes back
    /// with the same data directory.
    Removed,
}

impl MemberState {
    /// Whether the member holds complete data for its ranges (read placement).
    pub fn holds_data(self) -> bool {
        matches!(self, Self::Up | Self::Leaving)
    }

    /// Whether the member will own its ranges once pending moves finish.
    pub fn is_target(self) -> bool {
        matches!(self, Self::Up | Self::Joining)
    }

    /// Whether the member has tokens on the circle at all.
    pub fn has_tokens(self) -> bool {
        !matches!(self, Self::Removed)
    }
}

/// How one node sees a member: its ring state, overlaid with that node's own
/// opinion of whether it is alive. This is what status pages show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MemberStatus {
    /// See [`MemberState::Joining`].
    Joining,
    /// See [`MemberState::Up`].
    Up,
    /// See [`MemberState::Leaving`].
    Leaving,
    /// In the ring but not answering, in this node's view: coordinators skip
    /// it without changing the ring or its epoch.
    Down,
    /// See [`MemberState::Removed`].
    Removed,
}

impl MemberStatus {
    /// Overlays liveness on a ring state. A removed member stays removed.
    pub fn of(state: MemberState, down: bool) -> Self {
        match (state, down) {
            (MemberState::Removed, _) => Self::Removed,
            (_, true) => Self::Down,
            (MemberState::Joining, false) => Self::Joining,
            (MemberState::Up, false) => Self::Up,
            (MemberState::Leaving, false) => Self::Leaving,
        }
    }
}

impl fmt::Display for MemberStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Joining => "joining",
            Self::Up => "up",
            Self::Leaving => "leaving",
            Self::Down => "down",
            Self::Removed => "removed",
        })
    }
}

impl MemberState {
    /// Breaks a tie between two entries of one version: only concurrent
    /// decisions (an admin's remove racing the member's own change) give
    /// one version two states, and the later a state comes in a member's
    /// life, the more it wins, so a remove is never undone by a tie.
    fn rank(self) -> u8 {
        match self {
            Self::Joining => 0,
            Self::Up => 1,
            Self::Leaving => 2,
            Self::Removed => 3,
        }
    }
}

/// One entry of a membership view: a member, its incarnation, its state,
/// and the version of that state.
///
/// Versions only grow. The member itself advances its own (join → up,
/// up → leaving, leaving → removed); the cluster's rule lets any member
/// advance another's only to remove it, and lets the member a node joins
/// through readmit a removed one as a new incarnation (see ARCHITECTURE.md,
/// Ring). Within one incarnation, removed is final: it wins over every
/// other state of that incarnation whatever their versions, so a member
/// removed while it was cut off cannot come back with a later version of
/// its own that nobody saw.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Member {
    id: NodeId,
    state: MemberState,
    /// Saved views from before versions existed load as version 0.
    #[serde(default)]
    version: u64,
    /// Raised only when a removed member is readmitted.
    #[serde(default)]
    incarnation: u64,
}

impl Member {
    /// A member with the given name and state, at version 0.
    pub fn new(id: NodeId, state: MemberState) -> Self {
        Self {
            id,
            state,
            version: 0,
            incarnation: 0,
        }
    }

    /// This entry in `incarnation`.
    #[must_use]
    pub fn in_incarnation(mut self, incarnation: u64) -> Self {
        self.incarnation = incarnation;
        self
    }

    /// Its incarnation: how many times it was readmitted after a removal.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// This entry at `version`.
    #[must_use]
    pub fn at(mut self, version: u64) -> Self {
        self.version = version;
        self
    }

    /// The version of its state.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Whether this entry replaces `other`, an entry for the same member:
    /// a later incarnation always does; within one, a removal beats every
    /// state that is not one; then a higher version does, and at one
    /// version the later state in a member's life. A total order on
    /// entries, so merging a set of entries gives the same result in any
    /// order.
    pub fn supersedes(&self, other: &Member) -> bool {
        self.order_key() > other.order_key()
    }

    fn order_key(&self) -> (u64, bool, u64, u8) {
        (
            self.incarnation,
            self.state == MemberState::Removed,
            self.version,
            self.state.rank(),
        )
    }

    /// Its name.
    pub fn id(&self) -> &NodeId {
        &self.id
    }

    /// Its ring state.
    pub fn state(&self) -> MemberState {
        self.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_are_taken_as_given() {
        let a = NodeId::new("localhost:50140").expect("valid");
        let b = NodeId::new("127.0.0.1:50140").expect("valid");
        assert_ne!(a, b);
        assert_eq!(a.as_str(), "localhost:50140");
    }

    #[test]
    fn bad_node_ids_are_refused() {
        for bad in ["", "a b:1", "a\0:1", "tab\t:1"] {
            assert!(
                matches!(NodeId::new(bad), Err(RingError::InvalidNodeId { .. })),
                "{bad:?} accepted"
            );
        }
        assert!(NodeId::new("x".repeat(MAX_NODE_ID_LEN + 1)).is_err());
        assert!(NodeId::new("x".repeat(MAX_NODE_ID_LEN)).is_ok());
    }

    #[test]
    fn a_higher_version_wins_and_a_tie_goes_to_the_later_state() {
        let a = NodeId::new("a:1").expect("valid");
        let up2 = Member::new(a.clone(), MemberState::Up).at(2);
        let joining3 = Member::new(a.clone(), MemberState::Joining).at(3);
        let removed2 = Member::new(a, MemberState::Removed).at(2);
        assert!(joining3.supersedes(&up2));
        assert!(!up2.supersedes(&joining3));
        assert!(removed2.supersedes(&up2));
        assert!(!up2.supersedes(&up2), "an entry does not replace itself");
        // Removed is final within an incarnation, whatever the versions;
        // a readmitted incarnation starts over.
        let up9 = Member::new(NodeId::new("a:1").expect("valid"), MemberState::Up).at(9);
        assert!(removed2.supersedes(&up9));
        let back = Member::new(NodeId::new("a:1").expect("valid"), MemberState::Joining)
            .at(3)
            .in_incarnation(1);
        assert!(back.supersedes(&removed2));
    }

    #[test]
    fn down_overlays_every_state_but_removed() {
        assert_eq!(MemberStatus::of(MemberState::Up, true), MemberStatus::Down);
        assert_eq!(
            MemberStatus::of(MemberState::Leaving, true),
            MemberStatus::Down
        );
        assert_eq!(
            MemberStatus::of(MemberState::Removed, true),
            MemberStatus::Removed
        );
        assert_eq!(
            MemberStatus::of(MemberState::Joining, false),
            MemberStatus::Joining
        );
    }
}
