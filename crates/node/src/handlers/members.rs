//! Membership requests, carried out by the cluster plane: a node asks to
//! join (answered with the member list, and spread to everyone), a member
//! pushes its view (`Gossip`) or compares ring versions (`SyncRing`), and
//! anyone may ask for the member list (`Members`).

use mydht_proto::{Members, Response};
use mydht_ring::NodeId;
use mydht_store::Store;

use super::{Reply, failed};
use crate::node::Node;

pub(crate) fn members<S: Store>(node: &Node<S>) -> Reply {
    Reply::Plain(Response::Members(node.cluster.members()))
}

/// A node asks to join: add it, answer with the member list, and spread
/// the new view to every other member.
pub(crate) async fn join<S: Store>(node: &Node<S>, joiner: NodeId) -> Reply {
    match node.cluster.admit(joiner).await {
        Ok(view) => Reply::Plain(Response::Members(view)),
        Err(e) => Reply::error(failed(&e)),
    }
}

/// A member pushes its view: merge it, and answer with the merged view if
/// the pusher lacks some of it.
pub(crate) async fn gossip<S: Store>(node: &Node<S>, view: Members) -> Reply {
    match node.cluster.gossiped(view).await {
        Ok(Some(merged)) => Reply::Plain(Response::Members(merged)),
        Ok(None) => Reply::Plain(Response::Done),
        Err(e) => Reply::error(failed(&e)),
    }
}

/// A member compares ring versions: answer with this view if they differ.
pub(crate) fn sync_ring<S: Store>(
    node: &Node<S>,
    from: &NodeId,
    version: u64,
    clock_ms: u64,
) -> Reply {
    match node.cluster.sync_ring(from, version, clock_ms) {
        Some(view) => Reply::Plain(Response::Members(view)),
        None => Reply::Plain(Response::Done),
    }
}
