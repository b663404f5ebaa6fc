//! Ring-state announcements and the hand-off to a joining member:
//! `SetState` (joining → up, up → leaving), `Left` (the member is gone:
//! removed) and `SendGained` (send a joining member the keys it gained).

use std::sync::Arc;

use mydht_proto::{ErrorReply, Response};
use mydht_ring::{MemberState, NodeId};
use mydht_store::Store;

use super::Reply;
use super::balance::answer;
use crate::membership::ring_with;
use crate::movement::{self, Pass};
use crate::shared::Shared;

/// Another member announces a change of `node`'s state.
pub(crate) async fn set_state<S: Store>(
    sh: &Arc<Shared<S>>,
    node: NodeId,
    state: MemberState,
    epoch: u64,
) -> Reply {
    if &node == sh.members.me() {
        return Reply::error(ErrorReply::BadRequest {
            reason: "a member's own state is its own to announce".into(),
        });
    }
    match sh.members.announced(&node, state, epoch).await {
        Ok(changed) => {
            if changed {
                tracing::info!(%node, ?state, epoch = sh.members.ring().epoch(), "member state");
            }
            Reply::Plain(Response::Done)
        }
        Err(reason) => Reply::error(ErrorReply::Internal { reason }),
    }
}

/// `node` has handed off its ranges and left the ring.
pub(crate) async fn left<S: Store>(sh: &Arc<Shared<S>>, node: NodeId) -> Reply {
    set_state(sh, node, MemberState::Removed, 0).await
}

/// Sends `node` the keys it gained by joining, for which this node is the
/// first holder, and answers once they are there.
pub(crate) async fn send_gained<S: Store>(sh: &Arc<Shared<S>>, node: NodeId) -> Reply {
    // The joiner may ask before the seed's announcement arrived.
    if let Err(reason) = sh.members.add(node.clone(), 0, false).await {
        return Reply::error(ErrorReply::Internal { reason });
    }
    let ring = sh.members.ring();
    let before = match ring_with(&ring, &node, MemberState::Removed) {
        Ok(r) => Arc::new(r),
        Err(reason) => return Reply::error(ErrorReply::Internal { reason }),
    };
    let report = movement::run(sh, Pass::Restore { before }).await;
    let failed = report
        .failures()
        .map(|f| vec![format!("{}: {f}", sh.members.me())])
        .unwrap_or_default();
    answer("hand-off", failed)
}
