//! Finishing a join: a joining node is in every write set but in no read
//! set. It asks each member for the keys it gained (`SendGained`; each key
//! comes from its first holder, and the other holders check that holder has
//! it), and once every member has answered it becomes up and says so to
//! all. Until then [`JoinFinisher`] keeps trying, as background work.
//!
//! A member the ring lists as up that starts with no saved view lost its
//! data (a wiped dir, or `--memory`): it turns itself back to joining
//! ([`rejoin_empty`]) so it answers no reads until its keys are back.

use std::time::Duration;

use mydht_cluster::{Cluster, MembershipError, RpcError};
use mydht_proto::Request;
use mydht_ring::{MemberState, NodeId};
use thiserror::Error;

use crate::tasks::{Worker, WorkerState};

/// Why a join did not finish yet.
#[derive(Debug, Error)]
pub(crate) enum FinishJoinError {
    /// Some members did not send the keys this node gained.
    #[error("{}", list(.0))]
    NotSent(Vec<RpcError>),
    /// Some ranges this node gains have no holder it can ask (each is
    /// down in its view): they would arrive from nobody.
    #[error(
        "{ranges} gained ranges have no live holder to ask (e.g. held by {example}); waiting for one"
    )]
    NoHolder {
        /// Ranges without a live holder.
        ranges: usize,
        /// The holders of one of them.
        example: String,
    },
    /// This node's state could not be changed.
    #[error(transparent)]
    Membership(#[from] MembershipError),
}

fn list(failed: &[RpcError]) -> String {
    let failed: Vec<String> = failed.iter().map(ToString::to_string).collect();
    failed.join("; ")
}

/// Whether this node is joining (its data has not all arrived).
pub(crate) fn is_joining(cluster: &Cluster) -> bool {
    cluster.my_state() == Some(MemberState::Joining)
}

/// Asks every member for the keys this node gained, each within
/// `deadline`, then becomes up.
pub(crate) async fn finish_join(
    cluster: &Cluster,
    deadline: Duration,
) -> Result<(), FinishJoinError> {
    // A down member is not asked, and the members asked are told who was:
    // each elects a key's sender among them only, so every key comes from
    // a holder that was asked directly.
    let live: Vec<NodeId> = cluster
        .others()
        .into_iter()
        .filter(|n| !cluster.is_down(n))
        .collect();
    let uncovered: Vec<_> = cluster
        .ring()
        .pending_changes()
        .into_iter()
        .filter(|c| c.gained().any(|n| n == cluster.me()))
        .filter(|c| !c.before().is_empty() && !c.before().iter().any(|h| live.contains(h)))
        .collect();
    if let Some(first) = uncovered.first() {
        let holders: Vec<&str> = first.before().iter().map(NodeId::as_str).collect();
        return Err(FinishJoinError::NoHolder {
            ranges: uncovered.len(),
            example: holders.join(", "),
        });
    }
    let request = Request::SendGained {
        node: cluster.me().clone(),
        asked: live.clone(),
    };
    // Every member learns this node's entry before it is asked.
    cluster.spread(None).await;
    let failed = cluster.tell(live, &request, deadline).await;
    if !failed.is_empty() {
        return Err(FinishJoinError::NotSent(failed));
    }
    let applied = cluster.announce(MemberState::Up).await?;
    tracing::info!(
        epoch = applied.after.epoch(),
        "joined: data arrived, now up"
    );
    Ok(())
}

/// Whether the ring lists this node as up beside other members holding
/// data.
pub(crate) fn listed_up_with_others(cluster: &Cluster) -> bool {
    let ring = cluster.ring();
    let me = cluster.me();
    ring.member(me)
        .is_some_and(|m| m.state() == MemberState::Up)
        && ring
            .members()
            .iter()
            .any(|m| m.id() != me && m.state().holds_data())
}

/// Turns this node back to joining (it has lost its data), so that it takes
/// writes but answers no reads until its keys are back.
pub(crate) async fn rejoin_empty(cluster: &Cluster) -> Result<(), MembershipError> {
    cluster.announce(MemberState::Joining).await.map(|_| ())
}

/// Keeps trying to finish the join, every `retry`, until it succeeds.
pub(crate) struct JoinFinisher {
    pub cluster: Cluster,
    pub deadline: Duration,
    pub retry: Duration,
    pub tries: u64,
}

impl Worker for JoinFinisher {
    type Error = std::convert::Infallible;

    fn name(&self) -> String {
        "join".into()
    }

    fn status(&self) -> String {
        format!("{} tries", self.tries)
    }

    async fn work(&mut self) -> Result<WorkerState, Self::Error> {
        if !is_joining(&self.cluster) {
            return Ok(WorkerState::Done);
        }
        self.tries += 1;
        match finish_join(&self.cluster, self.deadline).await {
            Ok(()) => Ok(WorkerState::Done),
            Err(e) => {
                tracing::warn!(error = %e, "join not finished yet; retrying");
                Ok(WorkerState::Idle)
            }
        }
    }

    async fn wait_for_work(&mut self) -> WorkerState {
        tokio::time::sleep(self.retry).await;
        WorkerState::Busy
    }
}
