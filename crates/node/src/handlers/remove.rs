//! remove: take a dead member out of the ring and restore N copies of what
//! it held.
//!
//! The member asked marks the node removed (a new epoch), forwards the
//! request, flagged, to every other member, and each runs a restore pass:
//! for every key whose owners changed, its first surviving holder sends it
//! to the members that gained it. The answer comes once every member has
//! finished. Asking again is harmless: the pass is planned against the ring
//! with the node put back, so it finds the same keys, and sends only what is
//! still missing.

use std::sync::Arc;

use mydht_proto::{ErrorReply, Request};
use mydht_ring::{MemberState, NodeId};
use mydht_store::Store;
use tokio::task::JoinSet;

use super::Reply;
use super::balance::{answer, forward, gather};
use crate::membership::ring_with;
use crate::movement::{self, Pass};
use crate::shared::Shared;

pub(crate) async fn remove<S: Store>(sh: &Arc<Shared<S>>, node: NodeId, forwarded: bool) -> Reply {
    if &node == sh.members.me() {
        return Reply::error(ErrorReply::BadRequest {
            reason: format!("{node} cannot remove itself; stop it to make it leave"),
        });
    }
    let (_, after, changed) = match sh.members.set_state(&node, MemberState::Removed, 0).await {
        Ok(r) => r,
        Err(reason) => return Reply::error(ErrorReply::BadRequest { reason }),
    };
    if changed {
        tracing::info!(%node, epoch = after.epoch(), "member removed");
    }
    let before = match ring_with(&after, &node, MemberState::Up) {
        Ok(r) => Arc::new(r),
        Err(reason) => return Reply::error(ErrorReply::Internal { reason }),
    };
    let mut others = JoinSet::new();
    if !forwarded {
        let request = Request::Remove {
            node: node.clone(),
            forwarded: true,
        };
        others = forward(sh, &request, Some(&node));
    }
    let report = movement::run(sh, Pass::Restore { before }).await;
    let mut failed = Vec::new();
    if let Some(f) = report.failures() {
        failed.push(format!("{}: {f}", sh.members.me()));
    }
    failed.extend(gather(others, &sh.stop).await);
    answer("remove", failed)
}
