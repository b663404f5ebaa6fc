//! Errors raised while building a ring from a membership view.

use thiserror::Error;

/// Why a membership view could not be turned into a ring, or a name into a
/// [`NodeId`](crate::NodeId).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RingError {
    /// The replication level is outside `1..=max`.
    #[error("replication level {replicas} is out of range (1..={max})")]
    InvalidReplicas {
        /// The requested N.
        replicas: usize,
        /// The largest N supported.
        max: usize,
    },
    /// The virtual-node count is outside `1..=max`.
    #[error("virtual-node count {vnodes} is out of range (1..={max})")]
    InvalidVnodes {
        /// The requested V.
        vnodes: u32,
        /// The largest V supported.
        max: u32,
    },
    /// The view lists more members than a ring supports.
    #[error("{count} members is more than the {max} a ring supports")]
    TooManyMembers {
        /// Members in the view.
        count: usize,
        /// The most supported.
        max: usize,
    },
    /// The view's members would put more tokens on the circle than a ring
    /// supports (members times V).
    #[error("{tokens} tokens is more than the {max} a ring supports")]
    TooManyTokens {
        /// Tokens the view asks for.
        tokens: usize,
        /// The most supported.
        max: usize,
    },
    /// The same member appears twice in one view.
    #[error("member {id} appears more than once")]
    DuplicateMember {
        /// The repeated name.
        id: String,
    },
    /// A node name that cannot identify a member.
    #[error("invalid node name {name:?}: {reason}")]
    InvalidNodeId {
        /// The name as given (possibly cut short if it was very long).
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}
