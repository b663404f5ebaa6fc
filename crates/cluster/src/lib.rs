//! Who is in a mydht cluster, who answers, and how to reach them.
//!
//! A [`Cluster`] is the node's one door to the cluster plane: the
//! membership view (a pure [`View`] whose [`View::merge`] holds every
//! membership rule, kept on disk and published as a [`Ring`] to whoever
//! watches), this node's [`Liveness`] view of which members answer, one
//! pooled connection per member behind a transport seam ([`net`]), and the
//! typed [`Rpc`] helper every call to another member goes through. It also
//! runs the membership procedures that are pure cluster business: joining
//! through a seed, admitting a joiner and announcing it, announcing this
//! node's own state, and checking on restart that this node was not
//! removed while it was away.
//!
//! It knows nothing of storage, keys or data movement (that is
//! `mydht-node`, which reacts to ring changes), and runs no background
//! loop of its own: the node owns every task, and drives the steps this
//! crate offers ([`Cluster::recheck_down`]). Announcements are best-effort
//! today; versioned gossip that repairs a missed one plugs into
//! [`View::merge`].

mod error;
mod liveness;
mod manager;
pub mod net;
mod persist;
mod pool;
mod rpc;
mod view;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mydht_proto::{Limits, Members, Request};
use mydht_ring::{MemberState, NodeId, Ring, RingParams};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use error::{JoinError, MembershipError, PersistError, RejoinError, RpcError, ViewError};
pub use liveness::{DownSet, Liveness, LivenessEvent, events};
pub use manager::Applied;
pub use persist::FILE as MEMBERSHIP_FILE;
pub use rpc::{Done, FromResponse, RemoteDigest, Rpc, Stored, decode};
pub use view::{Change, Merged, View};

use manager::ViewManager;
use net::Dialer;
use pool::Pool;

/// How the cluster plane of one node is set up.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// This node's advertised name.
    pub me: NodeId,
    /// Where the view is kept; `None` keeps nothing on disk.
    pub data_dir: Option<PathBuf>,
    /// N and V for a new ring (a joiner learns the ring's).
    pub params: RingParams,
    /// Frame and chunk limits of connections to other members.
    pub limits: Limits,
    /// Opening a connection to a member gives up after this.
    pub connect_timeout: Duration,
    /// A call to a member gives up after this.
    pub request_timeout: Duration,
    /// Calls failing for this long mark a member down.
    pub down_after: Duration,
    /// Members down are tried again this often.
    pub down_backoff: Duration,
}

/// The cluster plane of a running node. Cheap to clone.
#[derive(Clone)]
pub struct Cluster(Arc<Inner>);

struct Inner {
    me: NodeId,
    view: ViewManager,
    liveness: Arc<Liveness>,
    rpc: Rpc,
    request_timeout: Duration,
    /// Where fire-and-forget announcements run, so shutdown waits for them.
    tasks: TaskTracker,
}

impl Cluster {
    /// Loads the saved view (or starts a one-member ring of this node,
    /// unsaved) and says whether a saved view was found. Calls go out
    /// through `dialer`; announcements run on `tasks` and every call is
    /// abandoned once `stop` is cancelled.
    pub fn open(
        cfg: ClusterConfig,
        dialer: Arc<dyn Dialer>,
        tasks: TaskTracker,
        stop: CancellationToken,
    ) -> Result<(Self, bool), MembershipError> {
        let (view, restored) =
            ViewManager::open(cfg.me.clone(), cfg.data_dir.as_deref(), cfg.params)?;
        let liveness = Arc::new(Liveness::new(
            cfg.me.clone(),
            cfg.down_after,
            cfg.down_backoff,
        ));
        let pool = Pool::new(cfg.me.clone(), dialer, cfg.limits, cfg.connect_timeout);
        let rpc = Rpc::new(pool, liveness.clone(), cfg.request_timeout, stop);
        Ok((
            Self(Arc::new(Inner {
                me: cfg.me,
                view,
                liveness,
                rpc,
                request_timeout: cfg.request_timeout,
                tasks,
            })),
            restored,
        ))
    }

    /// This node's advertised name.
    pub fn me(&self) -> &NodeId {
        &self.0.me
    }

    /// The current ring.
    pub fn ring(&self) -> Arc<Ring> {
        self.0.view.ring()
    }

    /// Wakes on every change of the ring.
    pub fn watch_ring(&self) -> watch::Receiver<Arc<Ring>> {
        self.0.view.watch()
    }

    /// The current view as it travels on the wire.
    pub fn members(&self) -> Members {
        View::of_ring(&self.ring()).to_wire()
    }

    /// Every member that is not removed, but this node.
    pub fn others(&self) -> Vec<NodeId> {
        others(&self.ring(), &self.0.me)
    }

    /// This node's state in the ring.
    pub fn my_state(&self) -> Option<MemberState> {
        self.ring().member(&self.0.me).map(|m| m.state())
    }

    /// Which members answer, in this node's view.
    pub fn liveness(&self) -> &Liveness {
        &self.0.liveness
    }

    /// Whether this node considers `node` down.
    pub fn is_down(&self, node: &NodeId) -> bool {
        self.0.liveness.is_down(node)
    }

    /// Calls to other members.
    pub fn rpc(&self) -> &Rpc {
        &self.0.rpc
    }

    /// Saves the current view (a new ring saves its first member).
    pub async fn save(&self) -> Result<(), MembershipError> {
        self.0.view.save().await
    }

    /// Applies one membership change: merged, saved, then published.
    pub async fn apply(&self, change: &Change) -> Result<Applied, MembershipError> {
        self.0.view.apply(change).await
    }

    /// Asks `seed` to add this node and takes the view it answers with (the
    /// seed then announces the newcomer to every member).
    pub async fn join_through(&self, seed: &str) -> Result<Arc<Ring>, JoinError> {
        let seed = NodeId::new(seed)?;
        let request = Request::Join {
            node: self.0.me.clone(),
        };
        let view: Members = self.0.rpc.call(&seed, request).await?;
        let view = View::from_wire(view).map_err(MembershipError::from)?;
        let applied = self
            .apply(&Change::Adopt {
                view,
                me: self.0.me.clone(),
            })
            .await?;
        Ok(applied.after)
    }

    /// On a restart from a saved view: asks every other member for its
    /// view, refuses to go on if this node was removed while it was away
    /// (its data is stale and the cluster has re-replicated it), and takes
    /// the newest view that lists it if one is newer than the saved one.
    /// When no member answers (the whole cluster is restarting), the saved
    /// view stands.
    pub async fn rejoin(&self) -> Result<(), RejoinError> {
        let me = self.0.me.clone();
        let ring = self.ring();
        if ring
            .member(&me)
            .is_some_and(|m| m.state() == MemberState::Removed)
        {
            return Err(RejoinError::Removed {
                by: me,
                epoch: ring.epoch(),
            });
        }
        // Every member that answers is asked: announcements are best-effort,
        // so one that missed the removal must not be the only one heard.
        let mut newest: Option<(NodeId, Members)> = None;
        for node in others(&ring, &me) {
            let Ok(view) = self.0.rpc.call::<Members>(&node, Request::Members).await else {
                continue;
            };
            match view.members.iter().find(|m| m.id() == &me) {
                Some(m) if m.state() == MemberState::Removed => {
                    return Err(RejoinError::Removed {
                        by: node,
                        epoch: view.epoch,
                    });
                }
                Some(_) if view.epoch > newest.as_ref().map_or(ring.epoch(), |(_, v)| v.epoch) => {
                    newest = Some((node, view));
                }
                _ => {}
            }
        }
        if let Some((from, view)) = newest {
            let epoch = view.epoch;
            let adopted = View::from_wire(view)
                .map_err(MembershipError::from)
                .map(|view| Change::Adopt {
                    view,
                    me: me.clone(),
                });
            let applied = match adopted {
                Ok(change) => self.apply(&change).await,
                Err(e) => Err(e),
            };
            applied.map_err(|source| RejoinError::Adopt {
                from: from.clone(),
                source,
            })?;
            tracing::info!(node = %from, epoch, "took a newer view on restart");
        }
        Ok(())
    }

    /// A node asks to join: adds it (as joining), announces it to every
    /// other member in the background, and answers with the view.
    pub async fn admit(&self, node: NodeId) -> Result<Members, MembershipError> {
        let applied = self.apply(&Change::Join { node: node.clone() }).await?;
        if applied.changed {
            let ring = applied.after;
            tracing::info!(%node, epoch = ring.epoch(), "node joined");
            let targets: Vec<NodeId> = others(&ring, &self.0.me)
                .into_iter()
                .filter(|m| m != &node)
                .collect();
            let request = Request::AddNode {
                node,
                epoch: ring.epoch(),
            };
            let rpc = self.0.rpc.clone();
            let deadline = self.0.request_timeout;
            self.0.tasks.spawn(async move {
                for (member, answer) in rpc.broadcast::<Done>(targets, &request, deadline).await {
                    match answer {
                        Ok(Done) => {}
                        Err(e) if e.is_remote() => {
                            tracing::warn!(%member, error = %e, "addnode refused");
                        }
                        Err(e) => tracing::warn!(%member, error = %e, "addnode not delivered"),
                    }
                }
            });
        }
        Ok(self.members())
    }

    /// Another member announces that `node` joined.
    pub async fn added(&self, node: NodeId, epoch: u64) -> Result<(), MembershipError> {
        let applied = self
            .apply(&Change::Joined {
                node: node.clone(),
                epoch,
            })
            .await?;
        if applied.changed {
            tracing::info!(%node, epoch = applied.after.epoch(), "member added");
        }
        Ok(())
    }

    /// Another member announces that `node` is now in `state`.
    pub async fn announced(
        &self,
        node: NodeId,
        state: MemberState,
        epoch: u64,
    ) -> Result<(), MembershipError> {
        if node == self.0.me {
            return Err(ViewError::OwnState { node }.into());
        }
        let change = Change::Announced {
            node: node.clone(),
            state,
            epoch,
        };
        let applied = self.apply(&change).await?;
        if applied.changed {
            tracing::info!(%node, ?state, epoch = applied.after.epoch(), "member state");
        }
        Ok(())
    }

    /// Sets this node's own state and announces it to every other member
    /// (best-effort: a member that misses it keeps its older view).
    pub async fn announce(&self, state: MemberState) -> Result<Applied, MembershipError> {
        let me = self.0.me.clone();
        let applied = self
            .apply(&Change::Decided {
                node: me.clone(),
                state,
            })
            .await?;
        let request = if state == MemberState::Removed {
            Request::Left { node: me }
        } else {
            Request::SetState {
                node: me,
                state,
                epoch: applied.after.epoch(),
            }
        };
        let failed = self.tell_others(&request, self.0.request_timeout).await;
        if !failed.is_empty() {
            let failed: Vec<String> = failed.iter().map(ToString::to_string).collect();
            tracing::warn!(?state, failed = %failed.join("; "), "state announcement not delivered");
        }
        Ok(applied)
    }

    /// Sends `request` to every other member, each within `deadline`;
    /// returns the failures.
    pub async fn tell_others(&self, request: &Request, deadline: Duration) -> Vec<RpcError> {
        self.tell(self.others(), request, deadline).await
    }

    /// Sends `request` to `nodes`, each within `deadline`; returns the
    /// failures.
    pub async fn tell(
        &self,
        nodes: Vec<NodeId>,
        request: &Request,
        deadline: Duration,
    ) -> Vec<RpcError> {
        self.0
            .rpc
            .broadcast::<Done>(nodes, request, deadline)
            .await
            .into_iter()
            .filter_map(|(_, r)| r.err())
            .collect()
    }

    /// Asks every member marked down for its member list, all at once; one
    /// that answers is no longer skipped. A real round trip, not just a
    /// connection: a connection can stay open to a member that stopped
    /// answering. The node runs this every [`Liveness::retry_interval`].
    pub async fn recheck_down(&self) {
        let down = self.0.liveness.down_nodes();
        if down.is_empty() {
            return;
        }
        // Each answer clears its member's mark; a failure keeps it.
        let _ = self
            .0
            .rpc
            .broadcast::<Members>(down, &Request::Members, self.0.request_timeout)
            .await;
    }
}

/// The members of `ring` that are not removed, but `me`.
fn others(ring: &Ring, me: &NodeId) -> Vec<NodeId> {
    view::others(ring.members(), me)
}
