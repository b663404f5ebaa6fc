//! Why a node could not start.

use std::path::PathBuf;

use thiserror::Error;

/// A startup failure; each says what to fix in one line.
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
    /// The advertised name or the ring settings are invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The data directory could not be read or written.
    #[error("data directory {}: {reason}", path.display())]
    DataDir {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Joining through the seed node failed.
    #[error("cannot join through {seed}: {reason}")]
    Join {
        /// The seed node.
        seed: String,
        /// What went wrong.
        reason: String,
    },
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
