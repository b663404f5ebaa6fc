//! What a client call can fail with.

use mydht_proto::ErrorReply;
use mydht_proto::conn::ConnError;
use thiserror::Error;

/// Why a client call failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A node answered with an error (not found, quorum shortfall, a limit).
    /// Not retried on another node: the answer is the cluster's.
    #[error(transparent)]
    Remote(#[from] ErrorReply),
    /// No node could be reached in the allowed attempts.
    #[error("ERR_UNREACHABLE: {}", .nodes.join(", "))]
    Unreachable {
        /// The nodes tried, in order, each with what went wrong.
        nodes: Vec<String>,
        /// What went wrong on the last attempt.
        last: String,
    },
    /// The request itself is invalid and was not sent (a key or value over
    /// the limits).
    #[error(transparent)]
    Invalid(ErrorReply),
    /// A local file or stream could not be read or written.
    #[error("{what}: {source}")]
    Local {
        /// What was being done.
        what: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// A node's answer made no sense for the request.
    #[error("unexpected answer from {node}: {what}")]
    Unexpected {
        /// The node that answered.
        node: String,
        /// What arrived.
        what: String,
    },
}

impl ClientError {
    /// Whether the error is "the key is absent or deleted".
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Remote(ErrorReply::NotFound))
    }
}

/// A failure of one attempt on one node: retried elsewhere if it is the
/// transport's, returned as it is otherwise.
pub(crate) enum Attempt {
    Transport(String),
    Final(ClientError),
}

impl From<ConnError> for Attempt {
    fn from(e: ConnError) -> Self {
        match e {
            ConnError::Refused(reply) => Self::Final(ClientError::Remote(reply)),
            // Too large for what this call may hold: no node will do better.
            ConnError::Stream(mydht_proto::StreamError::TooLong { received, max }) => {
                Self::Final(ClientError::Invalid(mydht_proto::ErrorReply::TooLarge {
                    what: mydht_proto::Limited::Value,
                    size: received,
                    max,
                }))
            }
            other => Self::Transport(other.to_string()),
        }
    }
}

impl From<ClientError> for Attempt {
    fn from(e: ClientError) -> Self {
        Self::Final(e)
    }
}
