//! The node's view of the ring's membership, kept on disk.
//!
//! The view (members with their states, N, V and the epoch) lives in
//! `membership.json` in the data directory, written atomically (temporary
//! file, fsync, rename, fsync of the directory) on every change, so that a
//! node restarted without `-s` rejoins the ring it belonged to. Readers take
//! the current [`Ring`] as an `Arc` without waiting on writers; changes are
//! serialised by one async lock held only around the local update, never
//! across a network call.
//!
//! This release spreads changes by announcement (the seed's JOIN/ADDNODE);
//! versioned gossip that repairs missed announcements comes later.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use mydht_proto::Members;
use mydht_ring::{Member, MemberState, NodeId, Ring, RingParams};
use serde::{Deserialize, Serialize};

use crate::NodeError;

const FILE: &str = "membership.json";

#[derive(Serialize, Deserialize)]
struct Persisted {
    node: NodeId,
    epoch: u64,
    replicas: usize,
    vnodes: u32,
    members: Vec<Member>,
}

pub(crate) struct Membership {
    me: NodeId,
    ring: RwLock<Arc<Ring>>,
    path: Option<PathBuf>,
    change: tokio::sync::Mutex<()>,
}

fn build(params: RingParams, epoch: u64, members: Vec<Member>) -> Result<Ring, String> {
    Ring::new(params, epoch, members).map_err(|e| e.to_string())
}

impl Membership {
    /// The view saved in `dir`, or a new one-member ring of `me` (not yet
    /// saved). Says whether a saved view was found.
    pub fn load_or_new(
        me: NodeId,
        dir: Option<&Path>,
        replicas: usize,
        vnodes: u32,
    ) -> Result<(Self, bool), NodeError> {
        let path = dir.map(|d| d.join(FILE));
        let invalid = |p: &Path, reason: String| NodeError::DataDir {
            path: p.to_path_buf(),
            reason,
        };
        if let Some(p) = &path
            && p.exists()
        {
            let text = std::fs::read(p).map_err(|e| invalid(p, e.to_string()))?;
            let saved: Persisted =
                serde_json::from_slice(&text).map_err(|e| invalid(p, e.to_string()))?;
            if saved.node != me {
                return Err(invalid(
                    p,
                    format!("belongs to node {}, not {me}", saved.node),
                ));
            }
            let params = RingParams::new(saved.replicas, saved.vnodes)
                .map_err(|e| invalid(p, e.to_string()))?;
            let ring = build(params, saved.epoch, saved.members).map_err(|e| invalid(p, e))?;
            return Ok((Self::from_ring(me, ring, path), true));
        }
        let params =
            RingParams::new(replicas, vnodes).map_err(|e| NodeError::Config(e.to_string()))?;
        let ring = build(params, 1, vec![Member::new(me.clone(), MemberState::Up)])
            .map_err(NodeError::Config)?;
        Ok((Self::from_ring(me, ring, path), false))
    }

    fn from_ring(me: NodeId, ring: Ring, path: Option<PathBuf>) -> Self {
        Self {
            me,
            ring: RwLock::new(Arc::new(ring)),
            path,
            change: tokio::sync::Mutex::new(()),
        }
    }

    pub fn me(&self) -> &NodeId {
        &self.me
    }

    /// The current ring.
    pub fn ring(&self) -> Arc<Ring> {
        // Writers only swap an Arc; a poisoned lock still holds a valid one.
        self.ring
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The view as it travels on the wire.
    pub fn snapshot(&self) -> Members {
        let ring = self.ring();
        Members {
            epoch: ring.epoch(),
            replicas: u8::try_from(ring.params().replicas()).unwrap_or(u8::MAX),
            vnodes: ring.params().vnodes(),
            members: ring.members().to_vec(),
        }
    }

    /// Saves the current view (a fresh node saves its one-member ring).
    pub async fn save(&self) -> Result<(), String> {
        let _guard = self.change.lock().await;
        self.persist(&self.ring()).await
    }

    /// Adds `node` as joining if it is not a member yet, at an epoch of at
    /// least `min_epoch`. A removed member comes back only through its own
    /// join (`readmit`: a node refuses to start on a data dir of a removed
    /// member, so a join means the dir was wiped); a late announcement or
    /// hand-off request never revives it. Returns the ring and whether it
    /// changed.
    pub async fn add(
        &self,
        node: NodeId,
        min_epoch: u64,
        readmit: bool,
    ) -> Result<(Arc<Ring>, bool), String> {
        let _guard = self.change.lock().await;
        let ring = self.ring();
        match ring.member(&node).map(|m| m.state()) {
            Some(MemberState::Removed) if !readmit => {
                return Err(format!("{node} was removed from the ring"));
            }
            Some(MemberState::Removed) | None => {}
            Some(_) => return Ok((ring, false)),
        }
        let mut members: Vec<Member> = ring
            .members()
            .iter()
            .filter(|m| m.id() != &node)
            .cloned()
            .collect();
        members.push(Member::new(node, MemberState::Joining));
        let epoch = (ring.epoch() + 1).max(min_epoch);
        let next = Arc::new(build(ring.params(), epoch, members)?);
        self.persist(&next).await?;
        self.swap(next.clone());
        Ok((next, true))
    }

    /// Sets `node`'s state (it must be a member) at an epoch of at least
    /// `min_epoch`. Returns the ring before and after, and whether it
    /// changed.
    pub async fn set_state(
        &self,
        node: &NodeId,
        state: MemberState,
        min_epoch: u64,
    ) -> Result<(Arc<Ring>, Arc<Ring>, bool), String> {
        let _guard = self.change.lock().await;
        let ring = self.ring();
        match ring.member(node) {
            None => return Err(format!("{node} is not a member of the ring")),
            Some(m) if m.state() == state => return Ok((ring.clone(), ring, false)),
            Some(_) => {}
        }
        let members = with_state(&ring, node, state);
        let epoch = (ring.epoch() + 1).max(min_epoch);
        let next = Arc::new(build(ring.params(), epoch, members)?);
        self.persist(&next).await?;
        self.swap(next.clone());
        Ok((ring, next, true))
    }

    /// Applies another member's announcement that `node` is now in `state`.
    /// A node not in the view is added; a removed one stays removed (it
    /// comes back only through a join, with a wiped data dir).
    pub async fn announced(
        &self,
        node: &NodeId,
        state: MemberState,
        epoch: u64,
    ) -> Result<bool, String> {
        let _guard = self.change.lock().await;
        let ring = self.ring();
        let members = match ring.member(node) {
            Some(m) if m.state() == state || m.state() == MemberState::Removed => {
                return Ok(false);
            }
            Some(_) => with_state(&ring, node, state),
            None => {
                let mut members = ring.members().to_vec();
                members.push(Member::new(node.clone(), state));
                members
            }
        };
        let next = Arc::new(build(
            ring.params(),
            (ring.epoch() + 1).max(epoch),
            members,
        )?);
        self.persist(&next).await?;
        self.swap(next);
        Ok(true)
    }

    /// Takes a view learned from the ring (the answer to a join), keeping
    /// this node in it.
    pub async fn adopt(&self, view: Members) -> Result<Arc<Ring>, String> {
        let _guard = self.change.lock().await;
        let params =
            RingParams::new(usize::from(view.replicas), view.vnodes).map_err(|e| e.to_string())?;
        let mut members = view.members;
        let mut epoch = view.epoch;
        if !members.iter().any(|m| m.id() == &self.me) {
            members.push(Member::new(self.me.clone(), MemberState::Joining));
            epoch += 1;
        }
        let next = Arc::new(build(params, epoch, members)?);
        self.persist(&next).await?;
        self.swap(next.clone());
        Ok(next)
    }

    fn swap(&self, ring: Arc<Ring>) {
        *self.ring.write().unwrap_or_else(PoisonError::into_inner) = ring;
    }

    async fn persist(&self, ring: &Ring) -> Result<(), String> {
        let Some(path) = self.path.clone() else {
            return Ok(());
        };
        let saved = Persisted {
            node: self.me.clone(),
            epoch: ring.epoch(),
            replicas: ring.params().replicas(),
            vnodes: ring.params().vnodes(),
            members: ring.members().to_vec(),
        };
        let text = serde_json::to_vec_pretty(&saved).map_err(|e| e.to_string())?;
        tokio::task::spawn_blocking(move || write_atomically(&path, &text))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("saving membership: {e}"))
    }
}

/// On a restart from a saved view: asks the other members for theirs,
/// refuses to start if this node was removed while it was away (its data is
/// stale and the cluster has re-replicated it), and takes a newer view if
/// one answers with it. When no member answers (the whole cluster is
/// restarting), the saved view stands.
pub(crate) async fn rejoin<S: mydht_store::Store>(
    sh: &crate::shared::Shared<S>,
) -> Result<(), NodeError> {
    let me = sh.members.me().clone();
    let removed = |by: &NodeId, epoch: u64| NodeError::Removed {
        node: me.to_string(),
        by: by.to_string(),
        epoch,
    };
    let ring = sh.members.ring();
    if ring
        .member(&me)
        .is_some_and(|m| m.state() == MemberState::Removed)
    {
        return Err(removed(&me, ring.epoch()));
    }
    let others: Vec<NodeId> = ring
        .members()
        .iter()
        .filter(|m| m.state() != MemberState::Removed && m.id() != &me)
        .map(|m| m.id().clone())
        .collect();
    // Every member that answers is asked: announcements are best-effort, so
    // one that missed the removal must not be the only one heard.
    let mut newest: Option<(NodeId, mydht_proto::Members)> = None;
    for node in others {
        let Ok(mydht_proto::Response::Members(view)) =
            sh.peers.call(&node, mydht_proto::Request::Members).await
        else {
            continue;
        };
        match view.members.iter().find(|m| m.id() == &me) {
            Some(m) if m.state() == MemberState::Removed => {
                return Err(removed(&node, view.epoch));
            }
            Some(_) if view.epoch > newest.as_ref().map_or(ring.epoch(), |(_, v)| v.epoch) => {
                newest = Some((node, view));
            }
            _ => {}
        }
    }
    if let Some((node, view)) = newest {
        let epoch = view.epoch;
        sh.members
            .adopt(view)
            .await
            .map_err(|reason| NodeError::Join {
                seed: node.to_string(),
                reason,
            })?;
        tracing::info!(%node, epoch, "took a newer view on restart");
    }
    Ok(())
}

/// The members of `ring` with `node`'s state replaced.
pub(crate) fn with_state(ring: &Ring, node: &NodeId, state: MemberState) -> Vec<Member> {
    ring.members()
        .iter()
        .map(|m| {
            if m.id() == node {
                Member::new(node.clone(), state)
            } else {
                m.clone()
            }
        })
        .collect()
}

/// `ring` as it would be with `node` in `state`, at the same epoch: the
/// view before a change, for planning what the change moves.
pub(crate) fn ring_with(ring: &Ring, node: &NodeId, state: MemberState) -> Result<Ring, String> {
    build(ring.params(), ring.epoch(), with_state(ring, node, state))
}

/// Replaces `path` with `data` so that a crash leaves the old or the new
/// file, never a mix.
fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
