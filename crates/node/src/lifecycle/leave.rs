//! Leaving with a hand-off: the node becomes leaving (still read, and its
//! successors already receive writes), sends each of its keys to the
//! members that own it once it is gone, then marks itself removed and tells
//! everyone. A node that left is refused if it restarts on the same data
//! dir, like a removed one. A last member has nobody to hand off to and
//! leaves nothing.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mydht_cluster::{Cluster, MembershipError, View};
use mydht_ring::MemberState;
use mydht_store::Store;
use thiserror::Error;

use crate::movement::Pass;
use crate::movement::engine::Progress;
use crate::movement::queue::MovementQueue;

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
    #[error("cannot change membership: {0}")]
    Membership(#[from] MembershipError),
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

/// The progress of the latest leave, kept for a leave cut short.
pub(crate) type LeaveProgress = Mutex<Option<Arc<Progress>>>;

/// Leaves the ring: becomes leaving, hands every key off to the members
/// that own it without this node, then becomes removed.
pub(crate) async fn leave<S: Store>(
    cluster: &Cluster,
    movement: &MovementQueue<S>,
    progress: &LeaveProgress,
    deadline: Duration,
) -> Result<LeaveReport, LeaveError> {
    let ring = cluster.ring();
    // Joining members count: they are who would own the keys next, and the
    // hand-off goes to them like to anyone else.
    let heirs = ring
        .members()
        .iter()
        .filter(|m| m.id() != cluster.me() && m.state().has_tokens())
        .count();
    if heirs == 0 {
        tracing::info!("last member: nothing to hand off");
        return Ok(LeaveReport {
            checked: 0,
            sent: 0,
            bytes: 0,
        });
    }
    let applied = cluster.announce(MemberState::Leaving).await?;
    let after = View::of_ring(&applied.after)
        .with_state(cluster.me(), MemberState::Removed)
        .to_ring()
        .map_err(MembershipError::from)?;
    let pass = movement.start(Pass::Leave {
        after: Arc::new(after),
    });
    let running = pass.progress();
    *progress.lock().unwrap_or_else(PoisonError::into_inner) = Some(running.clone());
    let report = match tokio::time::timeout(deadline, pass.finished()).await {
        Ok(r) => r,
        Err(_) => {
            return Err(LeaveError::Deadline {
                deadline,
                checked: running.scanned(),
                total: running.total,
            });
        }
    };
    if let Some(failed) = report.failures() {
        return Err(LeaveError::Failed { failed });
    }
    cluster.announce(MemberState::Removed).await?;
    tracing::info!(sent = report.sent, bytes = report.bytes, "left the ring");
    Ok(LeaveReport {
        checked: report.scanned,
        sent: report.sent,
        bytes: report.bytes,
    })
}

/// How far the latest leave got, in words.
pub(crate) fn progress_text(progress: &LeaveProgress) -> String {
    match &*progress.lock().unwrap_or_else(PoisonError::into_inner) {
        Some(p) => format!("{} of about {} keys checked", p.scanned(), p.total),
        None => "0 keys checked".into(),
    }
}
