//! Requests answered from this node's own state: haskey (its own copy,
//! never forwarded), whereis (the preference list), and membership: join
//! and addnode.

use std::sync::Arc;

use mydht_proto::{ErrorReply, Response};
use mydht_ring::{NodeId, Position};
use mydht_store::{Stamp, Store};

use super::{Reply, internal};
use crate::shared::Shared;

pub(crate) async fn haskey<S: Store>(sh: &Arc<Shared<S>>, key: &[u8]) -> Reply {
    match sh.store.version_of(key).await {
        Ok(Some(Stamp::Value(v))) => Reply::Plain(Response::HasKey {
            timestamp: Some(v.timestamp),
        }),
        Ok(Some(Stamp::Tombstone(_)) | None) => Reply::Plain(Response::HasKey { timestamp: None }),
        Err(e) => Reply::error(internal(&e)),
    }
}

pub(crate) fn whereis<S: Store>(sh: &Arc<Shared<S>>, key: &[u8]) -> Reply {
    let ring = sh.cluster.ring();
    let nodes = ring.preference_list(Position::of_key(key)).to_vec();
    Reply::Plain(Response::Whereis { nodes })
}

/// A node asks to join: add it, answer with the member list, and announce
/// it to every other member.
pub(crate) async fn join<S: Store>(sh: &Arc<Shared<S>>, node: NodeId) -> Reply {
    match sh.cluster.admit(node).await {
        Ok(view) => Reply::Plain(Response::Members(view)),
        Err(e) => Reply::error(ErrorReply::Internal {
            reason: e.to_string(),
        }),
    }
}

/// A member announces that `node` joined.
pub(crate) async fn add_node<S: Store>(sh: &Arc<Shared<S>>, node: NodeId, epoch: u64) -> Reply {
    match sh.cluster.added(node, epoch).await {
        Ok(()) => Reply::Plain(Response::Done),
        Err(e) => Reply::error(ErrorReply::Internal {
            reason: e.to_string(),
        }),
    }
}
