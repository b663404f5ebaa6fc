//! The admin requests, each answered once every member asked has finished:
//!
//! - **balance**: every replica of every range compares what it holds with
//!   the others and sends what they lack (`antientropy`). The node asked
//!   forwards the request, flagged, to every other member and runs its own
//!   round at the same time.
//! - **remove**: take a dead member out of the ring and restore N copies of
//!   what it held. The node asked marks it removed (a new epoch), forwards
//!   the request, flagged, to every other member, and each runs a restore
//!   pass: for every key whose owners changed, its first surviving holder
//!   sends it to the members that gained it. Asking again is harmless: the
//!   pass is planned against the ring with the node put back, so it finds
//!   the same keys and sends only what is still missing.
//! - Balance and remove ask only the members this node sees alive, and give
//!   up on one that goes down mid-call: `ok` means every alive member of the
//!   ring finished; otherwise the answer names those that did not.
//! - **purge**: this node drops the keys it no longer owns, each only once
//!   every owner holds the same or a newer version (sent first if not), so
//!   purge never deletes the last copy. Acts on the node asked only.

use std::sync::Arc;

use mydht_cluster::{Change, View};
use mydht_proto::{ErrorReply, Request, Response};
use mydht_ring::{MemberState, NodeId};
use mydht_store::Store;

use super::{Reply, failed};
use crate::movement::{Pass, Report};
use crate::node::Node;

/// `Done`, or an error naming what failed.
pub(super) fn answer(what: &str, failed: Vec<String>) -> Reply {
    if failed.is_empty() {
        Reply::Plain(Response::Done)
    } else {
        Reply::error(ErrorReply::Internal {
            reason: format!("{what} did not finish on: {}", failed.join("; ")),
        })
    }
}

/// Members not alive are not waited for: an admin call finishes within a
/// bound whatever a dead or paused member does. They are named in the log;
/// the answer names the alive members that did not finish.
pub(super) fn skipped_note(what: &str, skipped: &[NodeId]) {
    if !skipped.is_empty() {
        let names: Vec<&str> = skipped.iter().map(NodeId::as_str).collect();
        tracing::warn!(skipped = %names.join(", "), "{what}: members not alive were not asked");
    }
}

/// This node's failures, then the other members'.
pub(super) fn failures<S: Store>(
    node: &Node<S>,
    mine: &Report,
    theirs: Vec<mydht_cluster::RpcError>,
) -> Vec<String> {
    let mut failed = Vec::new();
    if let Some(f) = mine.failures() {
        failed.push(format!("{}: {f}", node.cluster.me()));
    }
    failed.extend(theirs.iter().map(ToString::to_string));
    failed
}

pub(crate) async fn balance<S: Store>(node: &Node<S>, forwarded: bool) -> Reply {
    let others = if forwarded {
        Vec::new()
    } else {
        node.cluster.others()
    };
    let request = Request::Balance { forwarded: true };
    let both = async {
        tokio::join!(
            node.antientropy.round("balance"),
            node.cluster
                .tell_alive(others, &request, node.cfg.admin_timeout)
        )
    };
    match node.unless_stopping(both).await {
        Some((mine, (theirs, skipped))) => {
            skipped_note("balance", &skipped);
            answer("balance", failures(node, &mine, theirs))
        }
        None => answer("balance", vec!["this node is stopping".into()]),
    }
}

/// Removes `target`. `forwarded` carries the members the node asked first
/// told (itself included); without it this node is that first node.
pub(crate) async fn remove<S: Store>(
    node: &Node<S>,
    target: NodeId,
    forwarded: Option<Vec<NodeId>>,
) -> Reply {
    if &target == node.cluster.me() {
        return Reply::error(ErrorReply::BadRequest {
            reason: format!("{target} cannot remove itself; stop it to make it leave"),
        });
    }
    let change = Change::Decided {
        node: target.clone(),
        state: MemberState::Removed,
    };
    let applied = match node.cluster.apply(&change).await {
        Ok(a) => a,
        Err(e) => {
            return Reply::error(ErrorReply::BadRequest {
                reason: e.to_string(),
            });
        }
    };
    if applied.changed {
        tracing::info!(node = %target, epoch = applied.after.epoch(), "member removed");
    }
    let before = match View::of_ring(&applied.after)
        .with_state(&target, MemberState::Up)
        .to_ring()
    {
        Ok(r) => Arc::new(r),
        Err(e) => return Reply::error(failed(&e)),
    };
    // Only the members told run a restore pass, so a key is left to none
    // that was not: a holder this node sees down is never its sender.
    let (others, asked): (Vec<NodeId>, Vec<NodeId>) = match forwarded {
        Some(asked) => (Vec::new(), asked),
        None => {
            let others: Vec<NodeId> = node
                .cluster
                .others()
                .into_iter()
                .filter(|n| n != &target && !node.cluster.is_down(n))
                .collect();
            let mut asked = others.clone();
            asked.push(node.cluster.me().clone());
            (others, asked)
        }
    };
    let request = Request::Remove {
        node: target,
        forwarded: true,
        asked: asked.clone(),
    };
    let pass = node.movement.start(Pass::restore_by(before, asked));
    let both = async {
        tokio::join!(
            pass.finished(),
            node.cluster
                .tell_alive(others, &request, node.cfg.admin_timeout)
        )
    };
    match node.unless_stopping(both).await {
        Some((mine, (theirs, skipped))) => {
            skipped_note("remove", &skipped);
            answer("remove", failures(node, &mine, theirs))
        }
        None => answer("remove", vec!["this node is stopping".into()]),
    }
}

pub(crate) async fn purge<S: Store>(node: &Node<S>) -> Reply {
    let pass = node.movement.start(Pass::Purge);
    match node.unless_stopping(pass.finished()).await {
        Some(mine) => answer("purge", failures(node, &mine, Vec::new())),
        None => answer("purge", vec!["this node is stopping".into()]),
    }
}
