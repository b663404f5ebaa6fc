//! Changing N on a running ring: the cluster-plane half.
//!
//! N is part of the ring's versioned parameters. A change first makes the
//! parameters "N is changing from `previous` to `n`" (one version up): the
//! current placement keeps the N every key's data is complete under, the
//! target placement takes the new N, and writes reach a quorum of both,
//! exactly as while members join or leave. Once the node's data plane has
//! copied every key to its new replicas, [`Cluster::finish_replicas`]
//! settles the parameters on the new N (one more version); extra copies
//! are then purged by their holders. Both steps are spread like any ring
//! change, and gossip repairs a member that missed one. Moving data is
//! not this crate's business.

use mydht_proto::{Members, Request};
use mydht_ring::{MemberState, NodeId, RingParams};

use crate::{Change, Cluster, MembershipError, View, ViewError};

/// What became of a request to change N.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicasChange {
    /// The ring now changes to the N asked, at this parameters version
    /// (made now, or already under way: asking again resumes it).
    Changing {
        /// The parameters version of the change.
        params_version: u64,
    },
    /// The ring already has the N asked and no change under way.
    AlreadySettled,
}

/// Why N cannot change now.
#[derive(Debug, thiserror::Error)]
pub enum ReplicasError {
    /// Another change of N is under way: it must finish first (asking for
    /// its N again resumes it).
    #[error(
        "N is already changing from {from} to {to}: ask for {to} again to finish that change first"
    )]
    Busy {
        /// The N the data is complete under.
        from: usize,
        /// The N it changes to.
        to: usize,
    },
    /// Members are joining or leaving: N changes once they are done.
    #[error("members are joining or leaving; change N once they are done")]
    Membership,
    /// The change could not be made.
    #[error(transparent)]
    View(#[from] MembershipError),
}

impl Cluster {
    /// Starts changing N to `n` for the whole ring, and spreads it; asking
    /// for the N a change is already heading to resumes it. One change at
    /// a time, and none while members join or leave: two transitions at
    /// once would leave no placement every write reached a quorum of.
    pub async fn set_replicas(&self, n: usize) -> Result<ReplicasChange, ReplicasError> {
        let ring = self.ring();
        let p = ring.params();
        if let Some(from) = p.previous() {
            if p.replicas() == n {
                return Ok(ReplicasChange::Changing {
                    params_version: ring.params_version(),
                });
            }
            return Err(ReplicasError::Busy {
                from,
                to: p.replicas(),
            });
        }
        if p.replicas() == n {
            return Ok(ReplicasChange::AlreadySettled);
        }
        if !membership_settled(&ring) {
            return Err(ReplicasError::Membership);
        }
        let params = RingParams::new(n, p.vnodes())
            .and_then(|np| np.changing_from(p.replicas()))
            .map_err(|e| MembershipError::from(ViewError::from(e)))?;
        let params_version = ring.params_version().saturating_add(1);
        let view = View::new(params, params_version, ring.members().to_vec());
        self.apply(&Change::Gossip { view }).await?;
        self.spread(None).await;
        // A concurrent change at the same version may have won the merge.
        let now = self.ring();
        if now.params() != params || now.params_version() != params_version {
            let p = now.params();
            return Err(ReplicasError::Busy {
                from: p.previous().unwrap_or(p.replicas()),
                to: p.replicas(),
            });
        }
        Ok(ReplicasChange::Changing { params_version })
    }

    /// Ends the change of N made at `params_version` once every key is on
    /// its new replicas; `false` (nothing done) when the ring's parameters
    /// moved on meanwhile, or members are joining or leaving (the change
    /// then stays under way, which is safe, until asked again).
    pub async fn finish_replicas(&self, params_version: u64) -> Result<bool, MembershipError> {
        let ring = self.ring();
        let p = ring.params();
        if ring.params_version() != params_version
            || p.previous().is_none()
            || !membership_settled(&ring)
        {
            return Ok(false);
        }
        let view = View::new(
            p.settled(),
            params_version.saturating_add(1),
            ring.members().to_vec(),
        );
        self.apply(&Change::Gossip { view }).await?;
        self.spread(None).await;
        Ok(true)
    }

    /// The members of `nodes` whose ring does not yet hold this node's
    /// parameters (the same N at the same version, or a later version), or
    /// that did not answer.
    pub async fn lacking_params(&self, nodes: Vec<NodeId>) -> Vec<NodeId> {
        let ring = self.ring();
        let (want, p) = (ring.params_version(), ring.params());
        let same = |m: &Members| {
            m.params_version > want
                || (m.params_version == want
                    && usize::from(m.replicas) == p.replicas()
                    && m.previous_replicas.map(usize::from) == p.previous())
        };
        self.rpc()
            .broadcast::<Members>(nodes, &Request::Members, self.0.request_timeout)
            .await
            .into_iter()
            .filter(|(_, answer)| !matches!(answer, Ok(m) if same(m)))
            .map(|(node, _)| node)
            .collect()
    }
}

/// Whether no member is joining or leaving.
fn membership_settled(ring: &mydht_ring::Ring) -> bool {
    ring.members()
        .iter()
        .all(|m| matches!(m.state(), MemberState::Up | MemberState::Removed))
}
