//! Who is in a mydht cluster, who answers, and how to reach them.
//!
//! A [`Cluster`] is the node's one door to the cluster plane: the
//! membership view (a pure [`View`] whose [`View::merge`] holds every
//! membership rule, kept on disk and published as a [`Ring`] to whoever
//! watches), this node's [`Liveness`] view of which members answer, one
//! pooled connection per member behind a transport seam ([`net`]), and the
//! typed [`Rpc`] helper every call to another member goes through. It also
//! runs the membership procedures that are pure cluster business: joining
//! through a seed, admitting a joiner, spreading this node's own state,
//! gossip, and checking on restart that this node was not removed while it
//! was away.
//!
//! It knows nothing of storage, keys or data movement (that is
//! `mydht-node`, which reacts to ring changes), and runs no background
//! loop of its own: the node owns every task, and drives the steps this
//! crate offers ([`Cluster::recheck_down`], [`Cluster::gossip_round`]).
//! A change is spread to every member at once, best-effort; gossip rounds
//! (compare ring versions with one member, exchange views when they
//! differ) repair whatever a member missed.

mod clocks;
pub mod detector;
mod error;
mod liveness;
mod manager;
pub mod net;
mod persist;
mod pool;
mod replicas;
mod rpc;
pub mod sim;
mod swim;
mod view;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mydht_proto::{Limits, Members, Request};
use mydht_ring::{MemberState, NodeId, Ring, RingParams, RingVersion};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use clocks::{CLOCK_BOUND_MS, wall_clock_ms};
pub use error::{JoinError, MembershipError, PersistError, RejoinError, RpcError, ViewError};
pub use liveness::{DownSet, Liveness, LivenessEvent, events};
pub use manager::Applied;
pub use persist::FILE as MEMBERSHIP_FILE;
pub use replicas::{ReplicasChange, ReplicasError};
pub use rpc::{Done, Entries, FromResponse, Leaves, Parts, Recalled, Rpc, Stored, decode};
pub use view::{Change, Merged, View};

use clocks::{OwnClock, off_the_median};
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
    /// Whose turn it is to be asked in a gossip round.
    gossip_turn: AtomicUsize,
    /// The ring version each member last held, as gossip heard it.
    heard: Mutex<HashMap<NodeId, Heard>>,
    /// This node's clock against the others', from what `heard` holds.
    own_clock: OwnClock,
}

/// A member's ring version, as gossip last heard it, and its clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heard {
    /// Its ring version then.
    pub version: RingVersion,
    /// When.
    pub at: Instant,
    /// How far its wall clock was ahead of this node's (negative: behind),
    /// in milliseconds, from the last gossip round it started; off by at
    /// most the one-way delay. `None` until it called.
    pub clock_offset_ms: Option<i64>,
    /// Whether that offset was more than [`CLOCK_BOUND_MS`] off the
    /// members' median when it was heard.
    pub clock_skewed: bool,
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
        let turn = start_turn(&cfg.me);
        Ok((
            Self(Arc::new(Inner {
                me: cfg.me,
                view,
                liveness,
                rpc,
                request_timeout: cfg.request_timeout,
                tasks,
                // Members start their turns at different places, so the
                // rounds of a restarted cluster do not all ask one member.
                gossip_turn: AtomicUsize::new(turn),
                heard: Mutex::new(HashMap::new()),
                own_clock: OwnClock::default(),
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
    /// seed then spreads the newcomer to every member). A node that
    /// `restored` a saved view merges the answer into it instead: its own
    /// entry may be newer than the seed's, and must not roll back.
    pub async fn join_through(&self, seed: &str, restored: bool) -> Result<Arc<Ring>, JoinError> {
        let seed = NodeId::new(seed)?;
        let request = Request::Join {
            node: self.0.me.clone(),
        };
        let view: Members = self.0.rpc.call(&seed, request).await?;
        let view = View::from_wire(view).map_err(MembershipError::from)?;
        let change = if restored {
            View::of_ring(&self.ring())
                .same_params(&view)
                .map_err(MembershipError::from)?;
            Change::Gossip { view }
        } else {
            Change::Adopt {
                view,
                me: self.0.me.clone(),
            }
        };
        let applied = self.apply(&change).await?;
        Ok(applied.after)
    }

    /// On a restart from a saved view: asks every other member for its
    /// view, refuses to go on if this node was removed while it was away
    /// (its data is stale and the cluster has re-replicated it), and merges
    /// every view heard into its own. When no member answers (the whole
    /// cluster is restarting), the saved view stands; gossip catches up.
    pub async fn rejoin(&self) -> Result<(), RejoinError> {
        let me = self.0.me.clone();
        let ring = self.ring();
        let Some(mine) = ring.member(&me).cloned() else {
            return Ok(());
        };
        if mine.state() == MemberState::Removed {
            return Err(RejoinError::Removed {
                by: me,
                epoch: ring.epoch(),
            });
        }
        // Every member that answers is asked: one that missed the removal
        // must not be the only one heard.
        let answers = self
            .0
            .rpc
            .broadcast::<Members>(
                others(&ring, &me),
                &Request::Members,
                self.0.request_timeout,
            )
            .await;
        for (node, answer) in answers {
            let Ok(view) = answer else { continue };
            let theirs = view.members.iter().find(|m| m.id() == &me);
            if let Some(m) = theirs
                && m.state() == MemberState::Removed
                && m.supersedes(&mine)
            {
                return Err(RejoinError::Removed {
                    by: node,
                    epoch: view.epoch,
                });
            }
            // One member with a view that cannot be merged must not keep
            // this node from starting: the others' views still count.
            if let Err(e) = self.gossiped(view).await {
                tracing::warn!(%node, error = %e, "its view was not merged on restart");
            }
        }
        Ok(())
    }

    /// A node asks to join: adds it (as joining), spreads the new view to
    /// every other member in the background, and answers with the view.
    pub async fn admit(&self, node: NodeId) -> Result<Members, MembershipError> {
        let applied = self.apply(&Change::Join { node: node.clone() }).await?;
        if applied.changed {
            tracing::info!(%node, epoch = applied.after.epoch(), "node joined");
            let this = self.clone();
            self.0.tasks.spawn(async move {
                this.spread(Some(&node)).await;
            });
        }
        Ok(self.members())
    }

    /// Another member's view, pushed: merged into this one. Answers with
    /// the merged view when it differs from the one heard (so the caller
    /// learns what it lacks in the same call), `None` when both now hold
    /// the same ring.
    pub async fn gossiped(&self, heard: Members) -> Result<Option<Members>, MembershipError> {
        let heard_version = heard.version;
        let view = View::from_wire(heard)?;
        View::of_ring(&self.ring()).same_params(&view)?;
        let applied = self.apply(&Change::Gossip { view }).await?;
        if applied.changed {
            tracing::info!(
                epoch = applied.after.epoch(),
                version = %applied.after.version(),
                "ring changed by gossip"
            );
        }
        Ok((applied.after.version().0 != heard_version).then(|| self.members()))
    }

    /// The cheap half of a gossip round, answered: `None` when the caller's
    /// ring version is this node's, else this node's view.
    pub fn sync_ring(&self, from: &NodeId, version: u64, clock_ms: u64) -> Option<Members> {
        let offset = i128::from(clock_ms) - i128::from(wall_clock_ms());
        let offset = i64::try_from(offset).unwrap_or(if offset < 0 { i64::MIN } else { i64::MAX });
        self.heard(from, RingVersion(version), Some(offset));
        (self.ring().version().0 != version).then(|| self.members())
    }

    /// Notes `node`'s ring version and, when it called, its clock offset
    /// (whether that is off the others' median is judged here, once).
    fn heard(&self, node: &NodeId, version: RingVersion, clock_offset_ms: Option<i64>) {
        // Only members are remembered (a caller names itself, unchecked),
        // and the removed are forgotten: bounded by the ring.
        let ring = self.ring();
        let member = |n: &NodeId| {
            ring.member(n)
                .is_some_and(|m| m.state() != MemberState::Removed)
        };
        let mut heard = self.0.heard.lock().unwrap_or_else(PoisonError::into_inner);
        heard.retain(|n, _| member(n));
        if !member(node) {
            return;
        }
        let before = heard.get(node).copied();
        let mut entry = Heard {
            version,
            at: Instant::now(),
            clock_offset_ms: clock_offset_ms.or(before.and_then(|h| h.clock_offset_ms)),
            clock_skewed: before.is_some_and(|h| h.clock_skewed),
        };
        if let Some(offset) = clock_offset_ms {
            let others: Vec<i64> = heard
                .iter()
                .filter(|(n, _)| *n != node)
                .filter_map(|(_, h)| h.clock_offset_ms)
                .collect();
            entry.clock_skewed = off_the_median(offset, &others);
            if entry.clock_skewed && !before.is_some_and(|h| h.clock_skewed) {
                tracing::warn!(%node, offset_ms = offset, "member's clock is off the others' median by more than {CLOCK_BOUND_MS} ms");
            }
        }
        heard.insert(node.clone(), entry);
        if clock_offset_ms.is_some() {
            let offsets = heard.values().filter_map(|h| h.clock_offset_ms).collect();
            self.0.own_clock.update(offsets);
        }
    }

    /// How far this node's wall clock is ahead of the other members' (the
    /// upper median of their offsets, so an even split is not ahead;
    /// negative: behind), by the offsets gossip heard; `None` until a
    /// member has called. Lock-free: a write reads it.
    pub fn clock_ahead_ms(&self) -> Option<i64> {
        self.0.own_clock.ahead_ms()
    }

    /// How far this node's wall clock is behind the other members' (the
    /// lower median of their offsets; negative: ahead); `None` until a
    /// member has called.
    pub fn clock_behind_ms(&self) -> Option<i64> {
        self.0.own_clock.behind_ms()
    }

    /// The ring version each member held when gossip last heard from it:
    /// whom to flag as seeing another ring.
    pub fn heard_versions(&self) -> HashMap<NodeId, Heard> {
        self.0
            .heard
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// One round of anti-entropy with the next member in turn (members
    /// known down are left to the recheck): compare ring versions, and
    /// when they differ, merge the other's view and push the merged one
    /// back. However many announcements were missed, every member converges
    /// on the same ring. Returns the member asked and whether this node's
    /// ring changed.
    pub async fn gossip_round(&self) -> Option<(NodeId, Result<bool, RpcError>)> {
        let peers: Vec<NodeId> = self
            .others()
            .into_iter()
            .filter(|n| !self.is_down(n))
            .collect();
        if peers.is_empty() {
            return None;
        }
        let turn = self.0.gossip_turn.fetch_add(1, Ordering::Relaxed);
        let peer = peers[turn % peers.len()].clone();
        let result = self.sync_with(&peer).await;
        if let Err(e) = &result {
            tracing::debug!(%peer, error = %e, "gossip round failed");
        }
        Some((peer, result))
    }

    async fn sync_with(&self, peer: &NodeId) -> Result<bool, RpcError> {
        let version = self.ring().version().0;
        let request = Request::SyncRing {
            node: self.0.me.clone(),
            version,
            clock_ms: wall_clock_ms(),
        };
        let theirs: Option<Members> = self.0.rpc.call(peer, request).await?;
        let Some(theirs) = theirs else {
            self.heard(peer, RingVersion(version), None);
            return Ok(false);
        };
        let their_version = theirs.version;
        self.heard(peer, RingVersion(their_version), None);
        let changed = match self.gossiped(theirs).await {
            Ok(_) => self.ring().version().0 != version,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "a gossiped view was refused");
                return Ok(false);
            }
        };
        if self.ring().version().0 != their_version {
            let back: Option<Members> = self
                .0
                .rpc
                .call(peer, Request::Gossip(self.members()))
                .await?;
            match back {
                None => self.heard(peer, self.ring().version(), None),
                Some(back) => {
                    self.heard(peer, RingVersion(back.version), None);
                    if let Err(e) = self.gossiped(back).await {
                        tracing::warn!(%peer, error = %e, "a gossiped view was refused");
                    }
                }
            }
        }
        Ok(changed)
    }

    /// Asks each of `nodes` for its view and merges it: what this node
    /// believes of them is then at least what they believe of themselves.
    /// Returns the members that did not answer.
    pub async fn refresh_from(&self, nodes: Vec<NodeId>) -> Vec<NodeId> {
        let answers = self
            .0
            .rpc
            .broadcast::<Members>(nodes, &Request::Members, self.0.request_timeout)
            .await;
        let mut silent = Vec::new();
        for (node, answer) in answers {
            match answer {
                Ok(view) => {
                    if let Err(e) = self.gossiped(view).await {
                        tracing::warn!(%node, error = %e, "its view was not merged");
                        silent.push(node);
                    }
                }
                Err(_) => silent.push(node),
            }
        }
        silent
    }

    /// Pushes this node's view to every other member (but `skip`) at once,
    /// merging what they answer: how a change this node made reaches the
    /// cluster without waiting for gossip rounds. Best-effort: a member
    /// that misses it catches up by [`Cluster::gossip_round`].
    pub async fn spread(&self, skip: Option<&NodeId>) {
        let targets: Vec<NodeId> = self
            .others()
            .into_iter()
            .filter(|n| Some(n) != skip)
            .collect();
        let request = Request::Gossip(self.members());
        let answers = self
            .0
            .rpc
            .broadcast::<Option<Members>>(targets, &request, self.0.request_timeout)
            .await;
        for (member, answer) in answers {
            match answer {
                Ok(None) => {}
                Ok(Some(view)) => {
                    if let Err(e) = self.gossiped(view).await {
                        tracing::warn!(%member, error = %e, "a gossiped view was refused");
                    }
                }
                Err(e) => tracing::debug!(%member, error = %e, "view not delivered"),
            }
        }
    }

    /// Sets this node's own state (one version up) and spreads it to every
    /// other member.
    pub async fn announce(&self, state: MemberState) -> Result<Applied, MembershipError> {
        let applied = self
            .apply(&Change::Decided {
                node: self.0.me.clone(),
                state,
            })
            .await?;
        self.spread(None).await;
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

    /// Sends `request` to those of `nodes` this node sees alive, each within
    /// `deadline` but abandoned once its member goes down; returns the
    /// failures and the members skipped as not alive.
    pub async fn tell_alive(
        &self,
        nodes: Vec<NodeId>,
        request: &Request,
        deadline: Duration,
    ) -> (Vec<RpcError>, Vec<NodeId>) {
        let (answers, skipped) = self
            .0
            .rpc
            .broadcast_alive::<Done>(nodes, request, deadline)
            .await;
        let failed = answers.into_iter().filter_map(|(_, r)| r.err()).collect();
        (failed, skipped)
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

/// Where `me` starts its gossip turns: a hash of its name.
pub(crate) fn start_turn(me: &NodeId) -> usize {
    me.as_str().bytes().fold(0usize, |h, b| {
        h.wrapping_mul(31).wrapping_add(usize::from(b))
    })
}

/// The members of `ring` that are not removed, but `me`.
fn others(ring: &Ring, me: &NodeId) -> Vec<NodeId> {
    view::others(ring.members(), me)
}
