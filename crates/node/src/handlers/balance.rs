//! balance: every replica of every range compares what it holds with the
//! others and sends what they lack (see `movement`). The node asked forwards
//! the request, flagged, to every other member, runs its own pass at the
//! same time, and answers once all have finished, naming any that failed.

use std::sync::Arc;

use mydht_proto::{ErrorReply, Request, Response};
use mydht_ring::{MemberState, NodeId, Position, TokenRange};
use mydht_store::Store;
use tokio::task::JoinSet;

use super::Reply;
use crate::movement;
use crate::shared::Shared;

pub(crate) async fn balance<S: Store>(sh: &Arc<Shared<S>>, forwarded: bool) -> Reply {
    let mut failed = Vec::new();
    let mut others = JoinSet::new();
    if !forwarded {
        others = forward(sh, &Request::Balance { forwarded: true }, None);
    }
    let report = movement::balance(sh).await;
    if let Some(f) = report.failures() {
        failed.push(format!("{}: {f}", sh.members.me()));
    }
    failed.extend(gather(others, &sh.stop).await);
    answer("balance", failed)
}

/// Sends `request` to every member but this node and `except`, each within
/// the admin deadline.
pub(super) fn forward<S: Store>(
    sh: &Arc<Shared<S>>,
    request: &Request,
    except: Option<&NodeId>,
) -> JoinSet<Result<(), String>> {
    let ring = sh.members.ring();
    let mut set = JoinSet::new();
    for m in ring.members() {
        let node = m.id();
        if m.state() == MemberState::Removed || node == sh.members.me() || Some(node) == except {
            continue;
        }
        let (sh, node, request) = (sh.clone(), node.clone(), request.clone());
        set.spawn(async move {
            match sh
                .peers
                .call_within(&node, request, sh.cfg.admin_timeout)
                .await
            {
                Ok(Response::Done) => Ok(()),
                Ok(Response::Error(e)) => Err(format!("{node}: {e}")),
                Ok(other) => Err(format!("{node}: unexpected answer {other:?}")),
                Err(e) => Err(e),
            }
        });
    }
    set
}

/// Waits for requests sent to other members; returns their failures. A
/// stopping node does not wait out its peers' deadlines.
pub(crate) async fn gather(
    mut set: JoinSet<Result<(), String>>,
    stop: &tokio_util::sync::CancellationToken,
) -> Vec<String> {
    let mut failed = Vec::new();
    loop {
        let next = tokio::select! {
            () = stop.cancelled() => {
                failed.push("this node is stopping".into());
                set.abort_all();
                break;
            }
            next = set.join_next() => next,
        };
        match next {
            None => break,
            Some(Ok(Ok(()))) => {}
            Some(Ok(Err(e))) => failed.push(e),
            Some(Err(e)) => failed.push(format!("a task calling a member failed: {e}")),
        }
    }
    failed
}

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

/// Serves `ReplicaDigest`: this node's digest of a range.
pub(crate) async fn serve_digest<S: Store>(sh: &Arc<Shared<S>>, start: u64, end: u64) -> Reply {
    let range = TokenRange::new(Position(start), Position(end));
    match sh.store.digest(range).await {
        Ok(d) => Reply::Plain(Response::Digest {
            count: d.count,
            hash: d.hash,
        }),
        Err(e) => Reply::error(super::internal(&e)),
    }
}
