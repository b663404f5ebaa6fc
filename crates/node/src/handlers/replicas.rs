//! Changing N on a running ring: `replicas` (admin) and `Reshape` (the
//! member call it makes).
//!
//! The node asked makes the ring's parameters "N is changing" (the
//! cluster plane's `set_replicas`: reads keep the N the data is complete
//! under, writes reach a quorum of both the old and the new replica sets)
//! and answers once every alive member holds that. The data then moves in
//! the background, driven by the same node: every alive member runs a
//! spread pass (each key goes from its first current replica to its new
//! replicas that lack it), and once all have finished the node settles the
//! parameters on the new N and every member purges the copies it no longer
//! owns (purge drops a copy only once its owners hold the same or a newer
//! version, so lowering N never drops the last one). If a member does not
//! finish, the change stays under way (writes still reach both sets, which
//! is safe) and the log says so; asking again for that N finishes it. One
//! change at a time, and none while members join or leave: another N is
//! refused until the change under way is done.

use mydht_cluster::ReplicasChange;
use mydht_proto::{ErrorReply, Request};
use mydht_ring::NodeId;
use mydht_store::Store;

use super::Reply;
use super::admin::{answer, failures, skipped_note};
use crate::movement::Pass;
use crate::node::Node;

/// Serves `Replicas`: sets N to `n` and answers once every alive member
/// has it; the data moves afterwards. Asking again for the N a change is
/// heading to resumes it.
pub(crate) async fn replicas<S: Store>(node: &Node<S>, n: u8) -> Reply {
    let n = usize::from(n);
    let params_version = match node.cluster.set_replicas(n).await {
        Ok(ReplicasChange::Changing { params_version }) => params_version,
        Ok(ReplicasChange::AlreadySettled) => return answer("replicas", Vec::new()),
        Err(e) => {
            return Reply::error(ErrorReply::BadRequest {
                reason: e.to_string(),
            });
        }
    };
    tracing::info!(n, params_version, "changing N");
    let alive: Vec<NodeId> = node
        .cluster
        .others()
        .into_iter()
        .filter(|m| !node.cluster.is_down(m))
        .collect();
    let lacking = node.cluster.lacking_params(alive.clone()).await;
    if !lacking.is_empty() {
        let names: Vec<String> = lacking
            .iter()
            .map(|m| format!("{m}: does not hold N={n} yet"))
            .collect();
        return answer("replicas", names);
    }
    let mut asked = alive.clone();
    asked.push(node.cluster.me().clone());
    let driver = node.clone();
    node.tasks.background.spawn(async move {
        move_data(driver, n, params_version, alive, asked).await;
    });
    answer("replicas", Vec::new())
}

/// Spread passes before the driver gives up (each retry only sends what
/// is still missing).
const SPREAD_ATTEMPTS: u32 = 3;

/// Runs the spread pass here and on every member in `others` (again, a
/// few times, while some fail), then, if all finished, settles N and has
/// every member purge.
async fn move_data<S: Store>(
    node: Node<S>,
    n: usize,
    params_version: u64,
    others: Vec<NodeId>,
    asked: Vec<NodeId>,
) {
    let request = Request::Reshape {
        asked: asked.clone(),
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let pass = node.movement.start(Pass::spread_by(asked.clone()));
        let (mine, (theirs, skipped)) = tokio::join!(
            pass.finished(),
            node.cluster
                .tell_alive(others.clone(), &request, node.cfg.admin_timeout)
        );
        skipped_note("replicas", &skipped);
        let failed = failures(&node, &mine, theirs);
        if failed.is_empty() && skipped.is_empty() {
            break;
        }
        if attempt == SPREAD_ATTEMPTS || node.tasks.background.token().is_cancelled() {
            tracing::warn!(n, failed = %failed.join("; "), "the change of N did not finish: writes still reach both the old and the new replicas; ask for N again to finish it");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1 << attempt)).await;
    }
    match node.cluster.finish_replicas(params_version).await {
        Ok(true) => tracing::info!(n, "N changed; purging extra copies"),
        Ok(false) => {
            tracing::warn!(
                n,
                "the ring moved on (another change, or members joining or leaving): N not settled; ask for it again"
            );
            return;
        }
        Err(e) => {
            tracing::warn!(n, error = %e, "N could not be settled");
            return;
        }
    }
    let purge = node.movement.start(Pass::Purge);
    let (mine, (theirs, _)) = tokio::join!(
        purge.finished(),
        node.cluster
            .tell_alive(others, &Request::Purge, node.cfg.admin_timeout)
    );
    let failed = failures(&node, &mine, theirs);
    if !failed.is_empty() {
        tracing::warn!(n, failed = %failed.join("; "), "extra copies not purged everywhere (a later purge drops them)");
    }
}

/// Serves `Reshape`: this node's spread pass.
pub(crate) async fn reshape<S: Store>(node: &Node<S>, asked: Vec<NodeId>) -> Reply {
    let pass = node.movement.start(Pass::spread_by(asked));
    match node.unless_stopping(pass.finished()).await {
        Some(mine) => answer("replicas", failures(node, &mine, Vec::new())),
        None => answer("replicas", vec!["this node is stopping".into()]),
    }
}
