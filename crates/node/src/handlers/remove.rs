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

use mydht_cluster::{Change, View};
use mydht_proto::{ErrorReply, Request};
use mydht_ring::{MemberState, NodeId};
use mydht_store::Store;

use super::Reply;
use super::balance::answer;
use crate::movement::{self, Pass};
use crate::shared::Shared;

pub(crate) async fn remove<S: Store>(sh: &Arc<Shared<S>>, node: NodeId, forwarded: bool) -> Reply {
    if &node == sh.cluster.me() {
        return Reply::error(ErrorReply::BadRequest {
            reason: format!("{node} cannot remove itself; stop it to make it leave"),
        });
    }
    let change = Change::Decided {
        node: node.clone(),
        state: MemberState::Removed,
    };
    let applied = match sh.cluster.apply(&change).await {
        Ok(a) => a,
        Err(e) => {
            return Reply::error(ErrorReply::BadRequest {
                reason: e.to_string(),
            });
        }
    };
    let after = applied.after;
    if applied.changed {
        tracing::info!(%node, epoch = after.epoch(), "member removed");
    }
    let before = match View::of_ring(&after)
        .with_state(&node, MemberState::Up)
        .to_ring()
    {
        Ok(r) => Arc::new(r),
        Err(e) => {
            return Reply::error(ErrorReply::Internal {
                reason: e.to_string(),
            });
        }
    };
    let others: Vec<NodeId> = if forwarded {
        Vec::new()
    } else {
        sh.cluster
            .others()
            .into_iter()
            .filter(|n| n != &node)
            .collect()
    };
    let request = Request::Remove {
        node: node.clone(),
        forwarded: true,
    };
    let (report, theirs) = tokio::join!(
        movement::run(sh, Pass::Restore { before }),
        sh.cluster.tell(others, &request, sh.cfg.admin_timeout)
    );
    let mut failed = Vec::new();
    if let Some(f) = report.failures() {
        failed.push(format!("{}: {f}", sh.cluster.me()));
    }
    failed.extend(theirs.iter().map(ToString::to_string));
    answer("remove", failed)
}
