//! Starting and stopping a node.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mydht_cluster::net::{Listener, TcpAcceptor, TcpDialer};
use mydht_cluster::{Cluster, ClusterConfig, RejoinError};
use mydht_ring::{NodeId, RingParams};
use mydht_store::{HybridClock, Store};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::coord::{CoordParts, Coordinator};
use crate::lifecycle::{LeaveError, LeaveReport};
use crate::replication::Replicas;
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
    let listener = TcpAcceptor::bind(&bind_addr)
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
    let params =
        RingParams::new(cfg.replicas, cfg.vnodes).map_err(|e| NodeError::Config(e.to_string()))?;
    let membership_file = cfg
        .data_dir
        .clone()
        .map(|d| d.join(mydht_cluster::MEMBERSHIP_FILE))
        .unwrap_or_default();
    let data_dir_error = |e: &dyn std::fmt::Display| NodeError::DataDir {
        path: membership_file.clone(),
        reason: e.to_string(),
    };
    let tasks = TaskTracker::new();
    let stop = CancellationToken::new();
    let cluster_cfg = ClusterConfig {
        me: name.clone(),
        data_dir: cfg.data_dir.clone(),
        params,
        limits: cfg.limits,
        connect_timeout: cfg.connect_timeout,
        request_timeout: cfg.request_timeout,
        down_after: cfg.down_after,
        down_backoff: cfg.down_backoff,
    };
    let (cluster, restored) = Cluster::open(
        cluster_cfg,
        Arc::new(TcpDialer),
        tasks.clone(),
        stop.clone(),
    )
    .map_err(|e| data_dir_error(&e))?;
    let store = Arc::new(store);
    let clock = Arc::new(HybridClock::default());
    let replicas = Replicas::new(
        store.clone(),
        cluster.clone(),
        cfg.limits.chunk_size,
        cfg.max_value_len,
    );
    let coord = Coordinator::new(CoordParts {
        cluster: cluster.clone(),
        replicas: replicas.clone(),
        clock: clock.clone(),
        tasks: tasks.clone(),
        request_timeout: cfg.request_timeout,
    });
    let sh = Arc::new(Shared {
        clock,
        cluster,
        replicas,
        coord,
        movement: crate::movement::Movement::default(),
        tasks,
        stop,
        store,
        cfg,
    });
    if restored {
        sh.cluster.rejoin().await.map_err(|e| match e {
            RejoinError::Removed { by, epoch } => NodeError::Removed {
                node: name.to_string(),
                by: by.to_string(),
                epoch,
            },
            RejoinError::Adopt { from, source } => NodeError::Join {
                seed: from.to_string(),
                reason: source.to_string(),
            },
            other => NodeError::Join {
                seed: name.to_string(),
                reason: other.to_string(),
            },
        })?;
    }
    match sh.cfg.seed.clone() {
        Some(seed) if seed != name.as_str() => {
            let ring = sh
                .cluster
                .join_through(&seed)
                .await
                .map_err(|e| NodeError::Join {
                    seed: seed.clone(),
                    reason: e.to_string(),
                })?;
            tracing::info!(%seed, epoch = ring.epoch(), "joined the ring");
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
        _ if !restored => sh.cluster.save().await.map_err(|e| data_dir_error(&e))?,
        _ => {}
    }
    let ring = sh.cluster.ring();
    tracing::info!(
        node = %name,
        %addr,
        members = ring.members().len(),
        epoch = ring.epoch(),
        restored,
        "node started"
    );
    sh.tasks.spawn(accept_loop(sh.clone(), Box::new(listener)));
    let watcher = sh.clone();
    sh.tasks.spawn(async move {
        loop {
            tokio::select! {
                () = watcher.stop.cancelled() => return,
                () = tokio::time::sleep(watcher.cluster.liveness().retry_interval()) => {}
            }
            watcher.cluster.recheck_down(&watcher.stop).await;
        }
    });
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
