//! Starting and stopping a node.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mydht_proto::{Request, Response};
use mydht_ring::NodeId;
use mydht_store::{HybridClock, Store};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::dedup::Dedup;
use crate::lifecycle::{LeaveError, LeaveReport};
use crate::membership::Membership;
use crate::peers::Peers;
use crate::server::accept_loop;
use crate::shared::Shared;
use crate::{NodeConfig, NodeError};

/// A running node. Dropping the handle does not stop it; call
/// [`shutdown`](Self::shutdown).
pub struct NodeHandle {
    name: NodeId,
    addr: SocketAddr,
    stop: CancellationToken,
    tasks: TaskTracker,
    leaver: Arc<dyn Leaver>,
}

/// Leaving, without the store type in [`NodeHandle`].
trait Leaver: Send + Sync {
    fn leave(&self, deadline: Duration) -> BoxFuture<'_, Result<LeaveReport, LeaveError>>;
    fn progress(&self) -> String;
}

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

impl<S: Store> Leaver for Arc<Shared<S>> {
    fn leave(&self, deadline: Duration) -> BoxFuture<'_, Result<LeaveReport, LeaveError>> {
        Box::pin(crate::lifecycle::leave(self, deadline))
    }

    fn progress(&self) -> String {
        let s = self.store.stats();
        format!(
            "{} of about {} keys checked",
            self.movement.checked(),
            s.live_keys + s.tombstones
        )
    }
}

impl NodeHandle {
    /// The node's advertised name (`host:port`).
    pub fn name(&self) -> &NodeId {
        &self.name
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, ends every connection and background task, and
    /// waits for them.
    pub async fn shutdown(self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Leaves the ring, handing every key to the members that own it once
    /// this node is gone; call [`shutdown`](Self::shutdown) after. Past
    /// `deadline` the hand-off stops and the error says how far it got. A
    /// last member has nobody to hand off to and leaves nothing.
    pub async fn leave(&self, deadline: Duration) -> Result<LeaveReport, LeaveError> {
        self.leaver.leave(deadline).await
    }

    /// How far the latest hand-off got (for a leave cut short).
    pub fn leave_progress(&self) -> String {
        self.leaver.progress()
    }

    /// Waits until the node has stopped (after a shutdown from elsewhere).
    pub async fn stopped(&self) {
        self.stop.cancelled().await;
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// Binds, loads or creates the membership, joins through the seed node if
/// one is given, and starts serving with `store`.
pub async fn start<S: Store>(cfg: NodeConfig, store: S) -> Result<NodeHandle, NodeError> {
    let bind_host = cfg.bind.clone().unwrap_or_else(|| cfg.host.clone());
    let bind_addr = format!("{bind_host}:{}", cfg.port);
    let listener = TcpListener::bind(&bind_addr)
        .await
        .map_err(|source| NodeError::Bind {
            addr: bind_addr.clone(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| NodeError::Bind {
        addr: bind_addr.clone(),
        source,
    })?;
    let port = if cfg.port == 0 { addr.port() } else { cfg.port };
    let name = NodeId::new(format!("{}:{port}", cfg.host))
        .map_err(|e| NodeError::Config(e.to_string()))?;
    if let Some(dir) = &cfg.data_dir {
        std::fs::create_dir_all(dir).map_err(|e| NodeError::DataDir {
            path: dir.clone(),
            reason: e.to_string(),
        })?;
    }
    let (members, restored) = Membership::load_or_new(
        name.clone(),
        cfg.data_dir.as_deref(),
        cfg.replicas,
        cfg.vnodes,
    )?;
    let peers = Peers::new(
        name.clone(),
        cfg.limits,
        cfg.connect_timeout,
        cfg.request_timeout,
        cfg.down_backoff,
        cfg.down_after,
    );
    let sh = Arc::new(Shared {
        clock: HybridClock::default(),
        members,
        peers,
        dedup: Dedup::default(),
        movement: crate::movement::Movement::default(),
        tasks: TaskTracker::new(),
        stop: CancellationToken::new(),
        store,
        cfg,
    });
    if restored {
        crate::membership::rejoin(&sh).await?;
    }
    match sh.cfg.seed.clone() {
        Some(seed) if seed != name.as_str() => {
            join(&sh, &seed).await?;
            // A member the ring still lists as up, starting with no saved
            // view, lost its data (a wiped dir, or `--memory`): it must not
            // answer reads until its keys are back, so it joins again.
            if !restored && crate::lifecycle::listed_up_with_others(&sh) {
                tracing::info!("this member's data is gone: joining again to get it back");
                if let Err(e) = crate::lifecycle::rejoin_empty(&sh).await {
                    tracing::warn!(error = %e, "not every member learned this node is joining");
                }
            }
        }
        _ if !restored => sh
            .members
            .save()
            .await
            .map_err(|reason| NodeError::DataDir {
                path: sh.cfg.data_dir.clone().unwrap_or_default(),
                reason,
            })?,
        _ => {}
    }
    let ring = sh.members.ring();
    tracing::info!(
        node = %name,
        %addr,
        members = ring.members().len(),
        epoch = ring.epoch(),
        restored,
        "node started"
    );
    sh.tasks.spawn(accept_loop(sh.clone(), listener));
    let watcher = sh.clone();
    sh.tasks
        .spawn(async move { crate::peers::watch_down(&watcher.peers, &watcher.stop).await });
    // Members send a joining node its keys over the listener, so the join
    // finishes only now; until then it takes writes but answers no reads.
    if crate::lifecycle::is_joining(&sh)
        && let Err(e) = crate::lifecycle::finish_join(&sh).await
    {
        tracing::warn!(error = %e, "join not finished; retrying in the background");
        sh.tasks.spawn(crate::lifecycle::keep_joining(sh.clone()));
    }
    Ok(NodeHandle {
        name,
        addr,
        stop: sh.stop.clone(),
        tasks: sh.tasks.clone(),
        leaver: Arc::new(sh.clone()),
    })
}

/// Asks `seed` to add this node and adopts the member list it answers with
/// (the seed then announces the newcomer to every member).
async fn join<S: Store>(sh: &Arc<Shared<S>>, seed: &str) -> Result<(), NodeError> {
    let failed = |reason: String| NodeError::Join {
        seed: seed.to_string(),
        reason,
    };
    let seed_id = NodeId::new(seed).map_err(|e| failed(e.to_string()))?;
    let request = Request::Join {
        node: sh.members.me().clone(),
    };
    match sh.peers.call(&seed_id, request).await.map_err(failed)? {
        Response::Members(view) => {
            let ring = sh.members.adopt(view).await.map_err(failed)?;
            tracing::info!(%seed, epoch = ring.epoch(), "joined the ring");
            Ok(())
        }
        Response::Error(e) => Err(failed(e.to_string())),
        other => Err(failed(format!("unexpected answer {other:?}"))),
    }
}
