//! Requests answered from this node's own state: haskey (its own copy,
//! never forwarded), whereis (the preference list), and membership: join
//! and addnode.

use std::sync::Arc;

use mydht_proto::{ErrorReply, Request, Response};
use mydht_ring::{MemberState, NodeId, Position};
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
    let ring = sh.members.ring();
    let nodes = ring.preference_list(Position::of_key(key)).to_vec();
    Reply::Plain(Response::Whereis { nodes })
}

/// A node asks to join: add it, answer with the member list, and announce
/// it to every other member.
pub(crate) async fn join<S: Store>(sh: &Arc<Shared<S>>, node: NodeId) -> Reply {
    let (ring, changed) = match sh.members.add(node.clone(), 0, true).await {
        Ok(r) => r,
        Err(reason) => return Reply::error(ErrorReply::Internal { reason }),
    };
    if changed {
        tracing::info!(%node, epoch = ring.epoch(), "node joined");
        let others: Vec<NodeId> = ring
            .members()
            .iter()
            .filter(|m| m.state() != MemberState::Removed)
            .map(|m| m.id().clone())
            .filter(|id| id != &node && id != sh.members.me())
            .collect();
        let epoch = ring.epoch();
        for member in others {
            let (sh2, node) = (sh.clone(), node.clone());
            sh.tasks.spawn(async move {
                let request = Request::AddNode {
                    node: node.clone(),
                    epoch,
                };
                match sh2.peers.call(&member, request).await {
                    Ok(Response::Done) => {}
                    Ok(other) => tracing::warn!(%member, ?other, "addnode refused"),
                    Err(e) => tracing::warn!(%member, error = %e, "addnode not delivered"),
                }
            });
        }
    }
    Reply::Plain(Response::Members(sh.members.snapshot()))
}

/// A member announces that `node` joined.
pub(crate) async fn add_node<S: Store>(sh: &Arc<Shared<S>>, node: NodeId, epoch: u64) -> Reply {
    match sh.members.add(node.clone(), epoch, false).await {
        Ok((ring, changed)) => {
            if changed {
                tracing::info!(%node, epoch = ring.epoch(), "member added");
            }
            Reply::Plain(Response::Done)
        }
        Err(reason) => Reply::error(ErrorReply::Internal { reason }),
    }
}
