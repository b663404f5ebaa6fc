//! The node's errors: why it could not start ([`NodeError`]), and the one
//! place a coordinator's failure becomes the wire's error reply.

use std::path::PathBuf;

use mydht_cluster::{JoinError, MembershipError, RejoinError};
use mydht_ring::RingError;
use thiserror::Error;

/// A startup failure; each says what to fix in one line (with its causes,
/// as `{:#}` prints them).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The listen address could not be bound (taken, or not ours).
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// The advertised name is not a valid node name.
    #[error("invalid node name")]
    Name(#[source] RingError),
    /// The ring settings (N, V) are invalid.
    #[error("invalid ring settings")]
    Ring(#[source] RingError),
    /// The data directory could not be created.
    #[error("data directory {}", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The saved membership could not be read or written.
    #[error("membership")]
    Membership(#[source] MembershipError),
    /// Joining through the seed node failed.
    #[error("cannot join through {seed}")]
    Join {
        /// The seed node.
        seed: String,
        /// What went wrong.
        source: JoinError,
    },
    /// Restarting on the saved view failed.
    #[error("rejoining the ring")]
    Rejoin(#[source] RejoinError),
    /// This node was removed from the ring while it was away; its data dir
    /// holds data the cluster has since re-replicated and must not come
    /// back.
    #[error(
        "{node} was removed from the ring (as {by} reports, epoch {epoch}); wipe its data directory to join again"
    )]
    Removed {
        /// This node.
        node: String,
        /// The member that reported the removal.
        by: String,
        /// That member's ring epoch.
        epoch: u64,
    },
}

impl From<crate::coord::CoordError> for mydht_proto::ErrorReply {
    /// The one place a coordinator's failure becomes the wire's error.
    fn from(e: crate::coord::CoordError) -> Self {
        use crate::coord::CoordError;
        use crate::value::ValueError;
        use mydht_proto::{ErrorReply, Limited};
        let byte = |n: usize| u8::try_from(n).unwrap_or(u8::MAX);
        match e {
            CoordError::BadRequest { reason } => ErrorReply::BadRequest { reason },
            CoordError::NotFound => ErrorReply::NotFound,
            CoordError::Quorum { acked, required } => ErrorReply::Quorum {
                acked: byte(acked),
                required: byte(required),
            },
            CoordError::Unavailable {
                answered,
                required,
                nodes,
            } => ErrorReply::Unavailable {
                answered: byte(answered),
                required: byte(required),
                nodes,
            },
            CoordError::Value(ValueError::TooLarge { size, max }) => ErrorReply::TooLarge {
                what: Limited::Value,
                size,
                max,
            },
            CoordError::Value(e @ (ValueError::BadStream { .. } | ValueError::Stalled { .. })) => {
                ErrorReply::BadRequest {
                    reason: e.to_string(),
                }
            }
            CoordError::Value(e) => ErrorReply::Internal {
                reason: e.to_string(),
            },
            CoordError::ClockAhead { ahead_ms, bound_ms } => {
                ErrorReply::ClockAhead { ahead_ms, bound_ms }
            }
            CoordError::FutureVersion { node, ahead_ms } => {
                ErrorReply::FutureVersion { node, ahead_ms }
            }
            CoordError::Internal { reason } => ErrorReply::Internal { reason },
        }
    }
}
