//! Typed failures that travel on the wire.
//!
//! An [`ErrorReply`] is what a node answers instead of a result; its
//! [`ErrorCode`] is stable across releases and its `Display` is the one line
//! the CLI prints (`ERR_VALUE_NOT_FOUND`, `ERR_QUORUM: 1 of 2 replicas
//! acknowledged; ...`). Local failures of this crate (framing, streams) are
//! [`FrameError`](crate::FrameError) and [`StreamError`](crate::StreamError).

use mydht_ring::NodeId;
use serde::{Deserialize, Serialize};
use std::fmt;
use thiserror::Error;

/// What a size limit applied to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Limited {
    /// A key.
    Key,
    /// A value sent inline instead of streamed.
    InlineValue,
    /// A whole value.
    Value,
    /// One frame.
    Frame,
}

impl fmt::Display for Limited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Key => "key",
            Self::InlineValue => "inline value",
            Self::Value => "value",
            Self::Frame => "frame",
        })
    }
}

/// A failure answered by a node. Variants are only appended.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Error)]
#[non_exhaustive]
pub enum ErrorReply {
    /// The key is absent or deleted.
    #[error("ERR_VALUE_NOT_FOUND")]
    NotFound,
    /// Fewer replicas acknowledged a write than it required.
    #[error(
        "ERR_QUORUM: {acked} of {required} replicas acknowledged; the write may be partly applied"
    )]
    Quorum {
        /// Replicas that acknowledged.
        acked: u8,
        /// Replicas required (W).
        required: u8,
    },
    /// Fewer replicas answered a read than it required, or the nodes named
    /// could not be reached.
    #[error(
        "ERR_UNAVAILABLE: {answered} of {required} replicas answered{}",
        list(nodes)
    )]
    Unavailable {
        /// Replicas that answered.
        answered: u8,
        /// Replicas required (R).
        required: u8,
        /// Nodes that failed, where known.
        nodes: Vec<NodeId>,
    },
    /// Something exceeded a size limit.
    #[error("ERR_TOO_LARGE: {what} of {size} bytes exceeds the limit of {max}")]
    TooLarge {
        /// What was too large.
        what: Limited,
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The request was malformed or made no sense.
    #[error("ERR_BAD_REQUEST: {reason}")]
    BadRequest {
        /// What was wrong.
        reason: String,
    },
    /// The request is of a kind this node does not know (a newer peer).
    #[error("ERR_UNKNOWN_COMMAND: this node does not know that request")]
    UnknownRequest,
    /// No protocol version is spoken by both ends.
    #[error(
        "ERR_UNSUPPORTED_VERSION: peer speaks protocol {their_min}..={their_max}, this node {min}..={max}"
    )]
    UnsupportedVersion {
        /// The lowest version the peer speaks.
        their_min: u16,
        /// The highest version the peer speaks.
        their_max: u16,
        /// The lowest version this node speaks.
        min: u16,
        /// The highest version this node speaks.
        max: u16,
    },
    /// The node failed internally (a storage error); nothing was acknowledged.
    #[error("ERR_INTERNAL: {reason}")]
    Internal {
        /// What failed.
        reason: String,
    },
    /// This node's clock is so far ahead of the other members' that a
    /// version it stamped could outlive later writes; it refuses writes.
    #[error(
        "ERR_CLOCK_AHEAD: this node's clock is {ahead_ms} ms ahead of the other members', more than the {bound_ms} ms allowed; it refuses writes until its clock is fixed (write through another node)"
    )]
    ClockAhead {
        /// How far ahead, by the members' clocks heard in gossip.
        ahead_ms: u64,
        /// The bound.
        bound_ms: u64,
    },
    /// The key holds a version stamped so far ahead of the members'
    /// clocks (by a node whose clock was far ahead) that no write can be
    /// stamped above it within the skew replicas allow; nothing was
    /// acknowledged.
    #[error(
        "ERR_FUTURE_VERSION: the key holds a version {node} stamped {ahead_ms} ms ahead of the members' clocks; it cannot be overwritten until their clocks reach it"
    )]
    FutureVersion {
        /// The node that stamped it.
        node: NodeId,
        /// How far ahead of the members' present it is.
        ahead_ms: u64,
    },
}

fn list(nodes: &[NodeId]) -> String {
    if nodes.is_empty() {
        return String::new();
    }
    let names: Vec<&str> = nodes.iter().map(NodeId::as_str).collect();
    format!(" (failed: {})", names.join(", "))
}

/// Stable numeric codes of [`ErrorReply`] variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
#[non_exhaustive]
pub enum ErrorCode {
    /// [`ErrorReply::NotFound`].
    NotFound = 1,
    /// [`ErrorReply::Quorum`].
    Quorum = 2,
    /// [`ErrorReply::Unavailable`].
    Unavailable = 3,
    /// [`ErrorReply::TooLarge`].
    TooLarge = 4,
    /// [`ErrorReply::BadRequest`].
    BadRequest = 5,
    /// [`ErrorReply::UnknownRequest`].
    UnknownRequest = 6,
    /// [`ErrorReply::UnsupportedVersion`].
    UnsupportedVersion = 7,
    /// [`ErrorReply::Internal`].
    Internal = 8,
    /// [`ErrorReply::ClockAhead`].
    ClockAhead = 9,
    /// [`ErrorReply::FutureVersion`].
    FutureVersion = 10,
}

impl ErrorReply {
    /// The stable code of this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NotFound => ErrorCode::NotFound,
            Self::Quorum { .. } => ErrorCode::Quorum,
            Self::Unavailable { .. } => ErrorCode::Unavailable,
            Self::TooLarge { .. } => ErrorCode::TooLarge,
            Self::BadRequest { .. } => ErrorCode::BadRequest,
            Self::UnknownRequest => ErrorCode::UnknownRequest,
            Self::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
            Self::Internal { .. } => ErrorCode::Internal,
            Self::ClockAhead { .. } => ErrorCode::ClockAhead,
            Self::FutureVersion { .. } => ErrorCode::FutureVersion,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_match_the_cli_outcome_table() {
        assert_eq!(ErrorReply::NotFound.to_string(), "ERR_VALUE_NOT_FOUND");
        assert_eq!(
            ErrorReply::Quorum {
                acked: 1,
                required: 2
            }
            .to_string(),
            "ERR_QUORUM: 1 of 2 replicas acknowledged; the write may be partly applied"
        );
        let unavailable = ErrorReply::Unavailable {
            answered: 0,
            required: 1,
            nodes: vec![NodeId::new("a:1").expect("valid")],
        };
        assert_eq!(
            unavailable.to_string(),
            "ERR_UNAVAILABLE: 0 of 1 replicas answered (failed: a:1)"
        );
        assert_eq!(unavailable.code() as u16, 3);
    }
}
