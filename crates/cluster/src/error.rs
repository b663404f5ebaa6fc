//! What can go wrong in the cluster plane, typed: a membership change the
//! rules refuse ([`ViewError`]), a view that cannot be kept on disk
//! ([`PersistError`]), either of those on a live change
//! ([`MembershipError`]), a call to another member ([`RpcError`]), and the
//! two network procedures of a starting node ([`JoinError`],
//! [`RejoinError`]).

use std::path::PathBuf;
use std::time::Duration;

use mydht_proto::ErrorReply;
use mydht_proto::conn::ConnError;
use mydht_ring::{NodeId, RingError};
use thiserror::Error;

/// A membership change the rules refuse, or a view that builds no ring.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ViewError {
    /// The member was removed; only its own join brings it back (as a new
    /// incarnation).
    #[error("{node} was removed from the ring")]
    Removed {
        /// The member.
        node: NodeId,
    },
    /// The change names a node that is not a member.
    #[error("{node} is not a member of the ring")]
    NotMember {
        /// The node.
        node: NodeId,
    },
    /// Another member's view has other N, V or version of them: until N
    /// can change live, that is another cluster (or a forged view), and it
    /// is not merged.
    #[error(
        "a view with N={theirs_n}, V={theirs_v} (version {theirs_version}) is not this ring's N={ours_n}, V={ours_v} (version {ours_version})"
    )]
    OtherParams {
        /// This ring's N.
        ours_n: usize,
        /// This ring's V.
        ours_v: u32,
        /// This ring's version of them.
        ours_version: u64,
        /// The view's N.
        theirs_n: usize,
        /// The view's V.
        theirs_v: u32,
        /// The view's version of them.
        theirs_version: u64,
    },
    /// The view's settings or members build no ring.
    #[error(transparent)]
    Ring(#[from] RingError),
}

/// The view could not be read from or written to the data directory.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PersistError {
    /// Reading or writing the file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The file holds no valid view.
    #[error("{}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The file belongs to another node.
    #[error("{}: belongs to node {owner}, not {me}", path.display())]
    Foreign {
        /// The file.
        path: PathBuf,
        /// The node named in it.
        owner: NodeId,
        /// This node.
        me: NodeId,
    },
}

/// A live membership change failed: refused, or not saved (and so not made).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum MembershipError {
    /// The rules refuse it.
    #[error(transparent)]
    View(#[from] ViewError),
    /// It could not be saved; the view in memory is unchanged.
    #[error("saving membership: {0}")]
    Persist(#[from] PersistError),
}

/// A call to another member failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RpcError {
    /// No connection could be opened (refused, unreachable, handshake).
    #[error("{node}: {source}")]
    Connect {
        /// The member.
        node: NodeId,
        /// What went wrong.
        source: ConnError,
    },
    /// No connection within the connect deadline.
    #[error("no connection within {after:?}")]
    ConnectTimeout {
        /// The member.
        node: NodeId,
        /// The deadline.
        after: Duration,
    },
    /// No answer within the deadline.
    #[error("{node}: no answer within {after:?}")]
    Timeout {
        /// The member.
        node: NodeId,
        /// The deadline.
        after: Duration,
    },
    /// The connection broke, or the exchange failed, mid-call.
    #[error("{node}: {source}")]
    Conn {
        /// The member.
        node: NodeId,
        /// What went wrong.
        source: ConnError,
    },
    /// The member answered with an error.
    #[error("{node}: {error}")]
    Remote {
        /// The member.
        node: NodeId,
        /// Its answer.
        error: ErrorReply,
    },
    /// The member answered with a response of the wrong kind.
    #[error("{node}: unexpected answer {got} (expected {expected})")]
    Unexpected {
        /// The member.
        node: NodeId,
        /// What the call expects.
        expected: &'static str,
        /// What came.
        got: &'static str,
    },
    /// This node considers the member down: it did not call it, or gave
    /// up on the call when the member went down.
    #[error("{node}: down (not answering)")]
    Down {
        /// The member.
        node: NodeId,
    },
    /// The task making the call failed before it answered.
    #[error("{node}: the call was lost (its task failed)")]
    Lost {
        /// The member.
        node: NodeId,
    },
    /// This node is stopping; the call was abandoned.
    #[error("this node is stopping")]
    Stopping,
}

impl RpcError {
    /// The member the call went to, if it got that far.
    pub fn node(&self) -> Option<&NodeId> {
        match self {
            Self::Connect { node, .. }
            | Self::ConnectTimeout { node, .. }
            | Self::Timeout { node, .. }
            | Self::Conn { node, .. }
            | Self::Remote { node, .. }
            | Self::Unexpected { node, .. }
            | Self::Down { node }
            | Self::Lost { node } => Some(node),
            Self::Stopping => None,
        }
    }

    /// Whether the member itself refused the request (as opposed to not
    /// being reached or not answering).
    pub fn is_remote(&self) -> bool {
        matches!(self, Self::Remote { .. } | Self::Unexpected { .. })
    }
}

/// Joining through a seed node failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum JoinError {
    /// The seed's name is not a valid node name.
    #[error(transparent)]
    Name(#[from] RingError),
    /// The seed could not be asked, or refused.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// Its answer could not be taken.
    #[error(transparent)]
    Membership(#[from] MembershipError),
}

/// A node restarting on its saved view may not, or could not, go on.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RejoinError {
    /// It was removed from the ring while it was away.
    #[error("removed from the ring (as {by} reports, epoch {epoch})")]
    Removed {
        /// The member that reported the removal (this node itself when its
        /// own saved view says so).
        by: NodeId,
        /// That member's epoch.
        epoch: u64,
    },
    /// A newer view from `from` could not be taken.
    #[error("taking the view of {from}: {source}")]
    Adopt {
        /// The member that sent it.
        from: NodeId,
        /// What went wrong.
        source: MembershipError,
    },
}
