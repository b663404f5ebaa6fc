//! Ring-state announcements and the hand-off to a joining member:
//! `SetState` (joining → up, up → leaving), `Left` (the member is gone:
//! removed) and `SendGained` (send a joining member the keys it gained).

use std::sync::Arc;

use mydht_cluster::{Change, MembershipError, View, ViewError};
use mydht_proto::{ErrorReply, Response};
use mydht_ring::{MemberState, NodeId};
use mydht_store::Store;

use super::Reply;
use super::balance::answer;
use crate::movement::{self, Pass};
use crate::shared::Shared;

/// Another member announces a change of `node`'s state.
pub(crate) async fn set_state<S: Store>(
    sh: &Arc<Shared<S>>,
    node: NodeId,
    state: MemberState,
    epoch: u64,
) -> Reply {
    match sh.cluster.announced(node, state, epoch).await {
        Ok(()) => Reply::Plain(Response::Done),
        Err(MembershipError::View(e @ ViewError::OwnState { .. })) => {
            Reply::error(ErrorReply::BadRequest {
                reason: e.to_string(),
            })
        }
        Err(e) => Reply::error(ErrorReply::Internal {
            reason: e.to_string(),
        }),
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
    let change = Change::Joined {
        node: node.clone(),
        epoch: 0,
    };
    let ring = match sh.cluster.apply(&change).await {
        Ok(applied) => applied.after,
        Err(e) => {
            return Reply::error(ErrorReply::Internal {
                reason: e.to_string(),
            });
        }
    };
    let before = match View::of_ring(&ring)
        .with_state(&node, MemberState::Removed)
        .to_ring()
    {
        Ok(r) => Arc::new(r),
        Err(e) => {
            return Reply::error(ErrorReply::Internal {
                reason: e.to_string(),
            });
        }
    };
    let report = movement::run(sh, Pass::Restore { before }).await;
    let failed = report
        .failures()
        .map(|f| vec![format!("{}: {f}", sh.cluster.me())])
        .unwrap_or_default();
    answer("hand-off", failed)
}
