//! A member's own comings and goings: finishing a join once its data has
//! arrived, and leaving with a hand-off.
//!
//! A joining node is in every write set but in no read set. It asks each
//! member for the keys it gained (`Handoff`; each key comes from its first
//! holder only), and once every member has answered it becomes up and says
//! so to all. Leaving is the mirror: the node becomes leaving (still read,
//! and its successors already receive writes), sends each of its keys to the
//! members that own it once it is gone, then marks itself removed and tells
//! everyone. A node that left is refused if it restarts on the same data
//! dir, like a removed one.
//!
//! Announcements go member by member with the request deadline; a member
//! that misses one keeps its older view until the next change reaches it
//! (versioned gossip that repairs missed announcements comes later).

use std::sync::Arc;
use std::time::Duration;

use mydht_cluster::View;
use mydht_proto::Request;
use mydht_ring::{MemberState, NodeId};
use mydht_store::Store;
use thiserror::Error;

use crate::movement::{self, Pass};
use crate::shared::Shared;

/// Why a leave did not hand everything off.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LeaveError {
    /// The deadline passed before every key was handed off.
    #[error(
        "the hand-off did not finish within {deadline:?}: {checked} of about {total} keys checked; the rest are only on this node's data dir and their other replicas"
    )]
    Deadline {
        /// The deadline.
        deadline: Duration,
        /// Keys looked at before it passed.
        checked: u64,
        /// Keys held when the leave began.
        total: u64,
    },
    /// Some members could not take their keys.
    #[error("the hand-off failed for {failed}; the ring still lists this node as leaving")]
    Failed {
        /// Each member with what went wrong.
        failed: String,
    },
    /// The membership could not be changed or saved.
    #[error("cannot change membership: {reason}")]
    Membership {
        /// What went wrong.
        reason: String,
    },
}

/// What a finished leave did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaveReport {
    /// Keys looked at.
    pub checked: u64,
    /// Keys sent to their new owners.
    pub sent: u64,
    /// Value bytes sent.
    pub bytes: u64,
}

/// Sets this node's state and announces it to every other member.
async fn announce<S: Store>(sh: &Arc<Shared<S>>, state: MemberState) -> Result<(), String> {
    sh.cluster
        .announce(state)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Whether this node is joining (its data has not all arrived).
pub(crate) fn is_joining<S: Store>(sh: &Shared<S>) -> bool {
    sh.cluster.my_state() == Some(MemberState::Joining)
}

/// Asks every member for the keys this node gained, then becomes up.
pub(crate) async fn finish_join<S: Store>(sh: &Arc<Shared<S>>) -> Result<(), String> {
    let request = Request::SendGained {
        node: sh.cluster.me().clone(),
    };
    // A down member is not waited for: every other holder of a key checks
    // that its elected sender has it and sends it otherwise.
    let live: Vec<NodeId> = sh
        .cluster
        .others()
        .into_iter()
        .filter(|n| !sh.cluster.is_down(n))
        .collect();
    let failed = sh.cluster.tell(live, &request, sh.cfg.admin_timeout).await;
    if !failed.is_empty() {
        let failed: Vec<String> = failed.iter().map(ToString::to_string).collect();
        return Err(failed.join("; "));
    }
    announce(sh, MemberState::Up).await?;
    tracing::info!(
        epoch = sh.cluster.ring().epoch(),
        "joined: data arrived, now up"
    );
    Ok(())
}

/// Whether the ring lists this node as up beside other members holding
/// data.
pub(crate) fn listed_up_with_others<S: Store>(sh: &Arc<Shared<S>>) -> bool {
    let ring = sh.cluster.ring();
    let me = sh.cluster.me();
    ring.member(me)
        .is_some_and(|m| m.state() == MemberState::Up)
        && ring
            .members()
            .iter()
            .any(|m| m.id() != me && m.state().holds_data())
}

/// Turns this node back to joining (it has lost its data), so that it takes
/// writes but answers no reads until the hand-off brings its keys back.
pub(crate) async fn rejoin_empty<S: Store>(sh: &Arc<Shared<S>>) -> Result<(), String> {
    announce(sh, MemberState::Joining).await
}

/// Keeps trying to finish the join until it succeeds or the node stops.
pub(crate) async fn keep_joining<S: Store>(sh: Arc<Shared<S>>) {
    while is_joining(&sh) {
        tokio::select! {
            () = sh.stop.cancelled() => return,
            () = tokio::time::sleep(sh.cfg.down_after) => {}
        }
        let finished = tokio::select! {
            () = sh.stop.cancelled() => return,
            r = finish_join(&sh) => r,
        };
        match finished {
            Ok(()) => return,
            Err(e) => tracing::warn!(error = %e, "join not finished yet; retrying"),
        }
    }
}

/// Leaves the ring: becomes leaving, hands every key off to the members
/// that own it without this node, then becomes removed. A last member has
/// nobody to hand off to and leaves nothing (its data stays in its dir).
pub(crate) async fn leave<S: Store>(
    sh: &Arc<Shared<S>>,
    deadline: Duration,
) -> Result<LeaveReport, LeaveError> {
    let membership = |reason| LeaveError::Membership { reason };
    let ring = sh.cluster.ring();
    // Joining members count: they are who would own the keys next, and the
    // hand-off goes to them like to anyone else.
    let heirs = ring
        .members()
        .iter()
        .filter(|m| m.id() != sh.cluster.me() && m.state().has_tokens())
        .count();
    if heirs == 0 {
        tracing::info!("last member: nothing to hand off");
        return Ok(LeaveReport {
            checked: 0,
            sent: 0,
            bytes: 0,
        });
    }
    announce(sh, MemberState::Leaving)
        .await
        .map_err(membership)?;
    let ring = sh.cluster.ring();
    let after = View::of_ring(&ring)
        .with_state(sh.cluster.me(), MemberState::Removed)
        .to_ring()
        .map_err(|e| membership(e.to_string()))?;
    let total = {
        let s = sh.store.stats();
        s.live_keys + s.tombstones
    };
    let pass = movement::run(
        sh,
        Pass::Leave {
            after: Arc::new(after),
        },
    );
    let report = match tokio::time::timeout(deadline, pass).await {
        Ok(r) => r,
        Err(_) => {
            return Err(LeaveError::Deadline {
                deadline,
                checked: sh.movement.checked(),
                total,
            });
        }
    };
    if let Some(failed) = report.failures() {
        return Err(LeaveError::Failed { failed });
    }
    announce(sh, MemberState::Removed)
        .await
        .map_err(membership)?;
    tracing::info!(sent = report.sent, bytes = report.bytes, "left the ring");
    Ok(LeaveReport {
        checked: report.scanned,
        sent: report.sent,
        bytes: report.bytes,
    })
}
