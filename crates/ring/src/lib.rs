//! Placement for mydht: where every key lives.
//!
//! A [`Ring`] is a pure value built from a membership view (the members, their
//! [`MemberState`] and its version, the replication level N and the
//! virtual-node count V with their own version). Each member owns V tokens on a 64-bit circle, taken from MD5 of its
//! advertised name and a virtual-node index, as the seed did; a key sits at
//! the MD5 of its raw bytes and its preference list is the first N distinct
//! members met walking clockwise. From member states the ring derives who must
//! receive a key's writes and who may answer its reads, the default quorums,
//! and, between two rings, which key ranges change hands.
//!
//! This crate does no I/O and knows nothing of tokio, the network or storage:
//! the node wraps it with persistence, gossip and streaming. Liveness ("this
//! member is down") is not a ring state either; callers pass their own view of
//! it when they ask for a replica set.

mod diff;
mod error;
mod member;
mod position;
mod ring;

pub use diff::{RangeChange, ReplicatedRange, TokenRange};
pub use error::RingError;
pub use member::{Member, MemberState, MemberStatus, NodeId};
pub use position::{Position, token_position};
pub use ring::{
    DEFAULT_REPLICAS, DEFAULT_VNODES, MAX_MEMBERS, MAX_REPLICAS, MAX_TOKENS, MAX_VNODES, Placement,
    Quorum, ReplicaSet, Ring, RingParams, RingVersion, TokenCollision,
};
