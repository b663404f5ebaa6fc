//! Membership requests, carried out by the cluster plane: a node asks to
//! join (answered with the member list, and announced to everyone), a
//! member announces a newcomer (`AddNode`), a change of its own state
//! (`SetState`) or that it has left (`Left`), and anyone may ask for the
//! member list (`Members`).

use mydht_cluster::{MembershipError, ViewError};
use mydht_proto::{ErrorReply, Response};
use mydht_ring::{MemberState, NodeId};
use mydht_store::Store;

use super::{Reply, failed};
use crate::node::Node;

pub(crate) fn members<S: Store>(node: &Node<S>) -> Reply {
    Reply::Plain(Response::Members(node.cluster.members()))
}

/// A node asks to join: add it, answer with the member list, and announce
/// it to every other member.
pub(crate) async fn join<S: Store>(node: &Node<S>, joiner: NodeId) -> Reply {
    match node.cluster.admit(joiner).await {
        Ok(view) => Reply::Plain(Response::Members(view)),
        Err(e) => Reply::error(failed(&e)),
    }
}

/// A member announces that `added` joined.
pub(crate) async fn add_node<S: Store>(node: &Node<S>, added: NodeId, epoch: u64) -> Reply {
    match node.cluster.added(added, epoch).await {
        Ok(()) => Reply::Plain(Response::Done),
        Err(e) => Reply::error(failed(&e)),
    }
}

/// A member announces a change of its own state.
pub(crate) async fn set_state<S: Store>(
    node: &Node<S>,
    member: NodeId,
    state: MemberState,
    epoch: u64,
) -> Reply {
    match node.cluster.announced(member, state, epoch).await {
        Ok(()) => Reply::Plain(Response::Done),
        Err(MembershipError::View(e @ ViewError::OwnState { .. })) => {
            Reply::error(ErrorReply::BadRequest {
                reason: e.to_string(),
            })
        }
        Err(e) => Reply::error(failed(&e)),
    }
}

/// `member` has handed off its ranges and left the ring.
pub(crate) async fn left<S: Store>(node: &Node<S>, member: NodeId) -> Reply {
    set_state(node, member, MemberState::Removed, 0).await
}
