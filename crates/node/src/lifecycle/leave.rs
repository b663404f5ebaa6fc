//! Leaving with a hand-off: the node becomes leaving (still read, and its
//! successors already receive writes), sends each of its keys to the
//! members that own it once it is gone, then marks itself removed and tells
//! everyone. A node that left is refused if it restarts on the same data
//! dir, like a removed one. A last member has nobody to hand off to and
//! leaves nothing.
//!
//! A leave never leaves keys with nobody: it needs an heir, another member
//! up (not leaving) that this node does not consider down, or it does not
//! begin. Members may leave at once (every node of a cluster sent SIGINT):
//! a hand-off is only trusted if the ring did not move while it ran, since
//! an heir that began leaving meanwhile may have scanned its store before
//! this node's keys arrived; when it moved, the hand-off runs again against
//! the new ring, and when no heir is left, this node turns back to up and
//! stops as a member, keeping its data. A leave that fails in any other way
//! also turns back to up: a member that is not leaving is one a restart
//! simply brings back.

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
    #[error("the hand-off failed for {failed}; this node stays a member with its data")]
    Failed {
        /// Each member with what went wrong.
        failed: String,
    },
    /// No other member could take this node's keys: every one is leaving
    /// or down. Nothing was handed off; the node is still a member.
    #[error(
        "no member can take this node's keys ({others} other members, each leaving or down); it stays a member with its data"
    )]
    NoHeir {
        /// Other members in the ring.
        others: usize,
    },
    /// The membership could not be changed or saved.
    #[error("cannot change membership: {0}")]
    Membership(#[from] MembershipError),
}

/// Members that could take this node's keys: up and not down, in this
/// node's view. (A joining member would own keys but hold none yet; a
/// hand-off to it alone would leave them on a member whose join has not
/// finished.)
fn heirs(cluster: &Cluster) -> usize {
    let ring = cluster.ring();
    ring.members()
        .iter()
        .filter(|m| {
            m.id() != cluster.me() && m.state() == MemberState::Up && !cluster.is_down(m.id())
        })
        .count()
}

/// How many hand-offs a leave runs before it gives up on a ring that keeps
/// moving under it.
const MAX_HANDOFFS: usize = 8;

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
    let others = cluster.others().len();
    if others == 0 {
        tracing::info!("last member: nothing to hand off");
        return Ok(LeaveReport {
            checked: 0,
            sent: 0,
            bytes: 0,
        });
    }
    if heirs(cluster) == 0 {
        return Err(LeaveError::NoHeir { others });
    }
    cluster.announce(MemberState::Leaving).await?;
    let outcome = tokio::time::timeout(deadline, hand_off(cluster, movement, progress, others))
        .await
        .unwrap_or_else(|_| {
            let running = progress
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            Err(LeaveError::Deadline {
                deadline,
                checked: running.as_ref().map_or(0, |p| p.scanned()),
                total: running.as_ref().map_or(0, |p| p.total),
            })
        });
    match outcome {
        Ok(report) => {
            cluster.announce(MemberState::Removed).await?;
            tracing::info!(sent = report.sent, bytes = report.bytes, "left the ring");
            Ok(LeaveReport {
                checked: report.scanned,
                sent: report.sent,
                bytes: report.bytes,
            })
        }
        Err(e) => {
            // No leave of its own under way any more: a removal by others
            // from here on must stop this node as it would any member.
            *progress.lock().unwrap_or_else(PoisonError::into_inner) = None;
            // Not leaving any more: a member with its data, that a restart
            // brings back like any other.
            if let Err(back) = cluster.announce(MemberState::Up).await {
                tracing::warn!(error = %back, "could not turn back to up after a failed leave");
            }
            Err(e)
        }
    }
}

/// Hands every key off until a hand-off ran against a ring that did not
/// move meanwhile.
async fn hand_off<S: Store>(
    cluster: &Cluster,
    movement: &MovementQueue<S>,
    progress: &LeaveProgress,
    others: usize,
) -> Result<crate::movement::Report, LeaveError> {
    for _ in 0..MAX_HANDOFFS {
        if heirs(cluster) == 0 {
            return Err(LeaveError::NoHeir { others });
        }
        let ring = cluster.ring();
        let after = View::of_ring(&ring)
            .with_state(cluster.me(), MemberState::Removed)
            .to_ring()
            .map_err(MembershipError::from)?;
        let pass = movement.start(Pass::Leave {
            after: Arc::new(after),
        });
        *progress.lock().unwrap_or_else(PoisonError::into_inner) = Some(pass.progress());
        let report = pass.finished().await;
        if let Some(failed) = report.failures() {
            return Err(LeaveError::Failed { failed });
        }
        // The keys went to members up in this node's view; each must still
        // be up in its own (one that began leaving, and whose word has not
        // arrived, may have scanned its store before they landed). Asking
        // them moves this node's ring if any did.
        let heirs: Vec<_> = ring
            .members()
            .iter()
            .filter(|m| {
                m.id() != cluster.me() && m.state() == MemberState::Up && !cluster.is_down(m.id())
            })
            .map(|m| m.id().clone())
            .collect();
        let silent = cluster.refresh_from(heirs).await;
        if silent.is_empty() && cluster.ring().version() == ring.version() {
            return Ok(report);
        }
        tracing::info!(
            silent = silent.len(),
            "the ring moved during the hand-off, or an heir did not confirm it: handing off again"
        );
    }
    Err(LeaveError::Failed {
        failed: format!("the ring kept moving through {MAX_HANDOFFS} hand-offs"),
    })
}

/// How far the latest leave got, in words.
pub(crate) fn progress_text(progress: &LeaveProgress) -> String {
    match &*progress.lock().unwrap_or_else(PoisonError::into_inner) {
        Some(p) => format!("{} of about {} keys checked", p.scanned(), p.total),
        None => "0 keys checked".into(),
    }
}
