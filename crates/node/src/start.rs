//! Starting a node: bind its port, open its cluster plane (the saved view,
//! or a new one-member ring), build the data plane around the store it was
//! given, join or rejoin, and start serving and its background workers.

use std::sync::Arc;
use std::time::Duration;

use mydht_cluster::net::{Datagrams, Dialer, Listener, TcpAcceptor, TcpDialer, UdpDatagrams};
use mydht_cluster::{Cluster, ClusterConfig, RejoinError};
use mydht_ring::{MemberState, NodeId, RingParams};
use mydht_store::{HybridClock, Store};

use crate::antientropy::{self, AntiEntropy};
use crate::config::NodeConfig;
use crate::coord::{CoordParts, Coordinator};
use crate::error::NodeError;
use crate::handle::NodeHandle;
use crate::lifecycle::autoremove::AutoRemove;
use crate::lifecycle::gossip::{Gossip, watch_removal};
use crate::lifecycle::join::{self, JoinFinisher};
use crate::movement::engine::{Budget, Engine};
use crate::movement::queue::MovementQueue;
use crate::net::accept_loop;
use crate::node::{Node, Parts};
use crate::replication::Replicas;
use crate::replication::hints::{HintReplay, Hints};
use crate::tasks::{Tasks, Worker, WorkerState, Workers};

/// Binds, loads or creates the membership, joins through the seed node if
/// one is given, and starts serving with `store`.
pub async fn start<S: Store>(cfg: NodeConfig, store: S) -> Result<NodeHandle, NodeError> {
    start_with_transport(cfg, store, Transport::default()).await
}

/// How a node reaches other members: TCP connections and the failure
/// detector's datagrams. Tests put a fault-injecting layer over both;
/// TLS goes here later.
pub struct Transport {
    /// Opens connections to members.
    pub dialer: Arc<dyn Dialer>,
    /// Wraps the node's UDP socket, if set.
    pub datagrams: Option<WrapDatagrams>,
}

/// A layer over the node's UDP socket.
pub type WrapDatagrams = Box<dyn FnOnce(Arc<dyn Datagrams>) -> Arc<dyn Datagrams> + Send>;

impl Default for Transport {
    fn default() -> Self {
        Self {
            dialer: Arc::new(TcpDialer),
            datagrams: None,
        }
    }
}

/// Binds TCP on `host:port` and UDP on the same port number; with port 0
/// a few ports are tried until both are free.
async fn bind(host: &str, port: u16) -> Result<(TcpAcceptor, UdpDatagrams), NodeError> {
    let mut attempt = 0;
    loop {
        let tcp_addr = format!("{host}:{port}");
        let listener = TcpAcceptor::bind(&tcp_addr)
            .await
            .map_err(|source| NodeError::Bind {
                addr: tcp_addr.clone(),
                source,
            })?;
        let got = listener.local_addr().map_err(|source| NodeError::Bind {
            addr: tcp_addr.clone(),
            source,
        })?;
        let udp_addr = format!("{host}:{}", got.port());
        match UdpDatagrams::bind(&udp_addr).await {
            Ok(udp) => return Ok((listener, udp)),
            Err(e) if port == 0 && attempt < 8 => {
                tracing::debug!(addr = %udp_addr, error = %e, "UDP port taken; another port");
                attempt += 1;
            }
            Err(source) => {
                return Err(NodeError::Bind {
                    addr: format!("{udp_addr} (UDP, for failure detection)"),
                    source,
                });
            }
        }
    }
}

/// As [`start`], reaching other members through `transport`.
pub async fn start_with_transport<S: Store>(
    cfg: NodeConfig,
    store: S,
    transport: Transport,
) -> Result<NodeHandle, NodeError> {
    let bind_host = cfg.bind.clone().unwrap_or_else(|| cfg.host.clone());
    let (listener, udp) = bind(&bind_host, cfg.port).await?;
    let addr = listener.local_addr().map_err(|source| NodeError::Bind {
        addr: bind_host.clone(),
        source,
    })?;
    let udp: Arc<dyn Datagrams> = Arc::new(udp);
    let datagrams = match transport.datagrams {
        Some(wrap) => wrap(udp),
        None => udp,
    };
    let dialer = transport.dialer;
    let port = if cfg.port == 0 { addr.port() } else { cfg.port };
    let name = NodeId::new(format!("{}:{port}", cfg.host)).map_err(NodeError::Name)?;
    if let Some(dir) = &cfg.data_dir {
        std::fs::create_dir_all(dir).map_err(|source| NodeError::DataDir {
            path: dir.clone(),
            source,
        })?;
    }
    let params = RingParams::new(cfg.replicas, cfg.vnodes).map_err(NodeError::Ring)?;
    let tasks = Tasks::new(cfg.request_timeout);
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
        dialer,
        tasks.cluster.tracker().clone(),
        tasks.cluster.token().clone(),
    )
    .map_err(NodeError::Membership)?;
    let node = build(cfg, cluster, store, tasks);
    if restored {
        node.cluster.rejoin().await.map_err(|e| match e {
            RejoinError::Removed { by, epoch } => NodeError::Removed {
                node: name.to_string(),
                by: by.to_string(),
                epoch,
            },
            other => NodeError::Rejoin(other),
        })?;
    }
    match node.cfg.seed.clone() {
        Some(seed) if seed != name.as_str() => {
            let ring = node
                .cluster
                .join_through(&seed, restored)
                .await
                .map_err(|source| NodeError::Join {
                    seed: seed.clone(),
                    source,
                })?;
            tracing::info!(%seed, epoch = ring.epoch(), "joined the ring");
            // A member the ring still lists as up, starting with no saved
            // view, lost its data (a wiped dir, or `--memory`): it must not
            // answer reads until its keys are back, so it joins again.
            if !restored && join::listed_up_with_others(&node.cluster) {
                tracing::info!("this member's data is gone: joining again to get it back");
                if let Err(e) = join::rejoin_empty(&node.cluster).await {
                    tracing::warn!(error = %e, "not every member learned this node is joining");
                }
            }
        }
        _ if !restored => node.cluster.save().await.map_err(NodeError::Membership)?,
        _ => {}
    }
    // A leave that did not finish (stopped, or no heir) left this node a
    // member with its data: it serves as one again.
    if restored && node.cluster.my_state() == Some(MemberState::Leaving) {
        tracing::info!("a leave did not finish before this node stopped: back to up");
        node.cluster
            .announce(MemberState::Up)
            .await
            .map_err(NodeError::Membership)?;
    }
    let ring = node.cluster.ring();
    tracing::info!(
        node = %name,
        %addr,
        members = ring.members().len(),
        epoch = ring.epoch(),
        restored,
        "node started"
    );
    node.tasks
        .intake
        .spawn(accept_loop(node.clone(), Box::new(listener)));
    match node.hints.load().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(hints = n, "hints kept from before the restart"),
        Err(e) => tracing::warn!(error = %e, "the hints kept before the restart could not be read"),
    }
    if let Some(interval) = node.cfg.anti_entropy_interval {
        node.workers.spawn(
            &node.tasks.background,
            antientropy::Background {
                antientropy: node.antientropy.clone(),
                interval,
                rounds: 0,
                last: None,
            },
            WorkerState::Idle,
        );
    }
    node.workers.spawn(
        &node.tasks.background,
        HintReplay {
            hints: node.hints.clone(),
            cluster: node.cluster.clone(),
            replicas: node.replicas.clone(),
            store: node.store.clone(),
            tombstone_grace: node.cfg.tombstone_grace,
            since_sweep: 0,
        },
        WorkerState::Idle,
    );
    node.workers.spawn(
        &node.tasks.background,
        Recheck {
            cluster: node.cluster.clone(),
            rounds: 0,
        },
        WorkerState::Idle,
    );
    node.workers.spawn(
        &node.tasks.background,
        Gossip {
            cluster: node.cluster.clone(),
            interval: node.cfg.gossip_interval,
            rounds: 0,
            changes: 0,
            failures: 0,
        },
        WorkerState::Idle,
    );
    if let Some(after) = node.cfg.remove_after {
        node.workers.spawn(
            &node.tasks.background,
            AutoRemove::new(node.clone(), after),
            WorkerState::Idle,
        );
    }
    node.tasks
        .background
        .spawn(node.cluster.clone().run_detector(
            datagrams,
            node.cfg.detector.clone(),
            node.tasks.background.token().clone(),
        ));
    let leaving = {
        let node = node.clone();
        move || node.leave_started()
    };
    node.tasks.background.spawn(watch_removal(
        node.cluster.clone(),
        leaving,
        node.tasks.clone(),
    ));
    // Members send a joining node its keys over the listener, so the join
    // finishes only now; until then it takes writes but answers no reads.
    if join::is_joining(&node.cluster)
        && let Err(e) = join::finish_join(&node.cluster, node.cfg.admin_timeout).await
    {
        tracing::warn!(error = %e, "join not finished; retrying in the background");
        node.workers.spawn(
            &node.tasks.background,
            JoinFinisher {
                cluster: node.cluster.clone(),
                deadline: node.cfg.admin_timeout,
                retry: node.cfg.down_after,
                tries: 1,
            },
            WorkerState::Idle,
        );
    }
    Ok(NodeHandle::new(name, addr, node))
}

/// The data plane around `store`, each part given what it uses.
fn build<S: Store>(cfg: NodeConfig, cluster: Cluster, store: S, tasks: Tasks) -> Node<S> {
    let store = Arc::new(store);
    let clock = Arc::new(HybridClock::default());
    let replicas = Replicas::new(
        store.clone(),
        cluster.clone(),
        cfg.limits.chunk_size,
        cfg.max_value_len,
    );
    let hints = Hints::new(store.clone(), cfg.hints.clone());
    let coord = Coordinator::new(CoordParts {
        cluster: cluster.clone(),
        replicas: replicas.clone(),
        clock: clock.clone(),
        hints: hints.clone(),
        tasks: tasks.intake.tracker().clone(),
        request_timeout: cfg.request_timeout,
    });
    let engine = Engine {
        store: store.clone(),
        cluster: cluster.clone(),
        replicas: replicas.clone(),
        clock: clock.clone(),
        grace: cfg.tombstone_grace,
        budget: Budget::default(),
    };
    let movement = MovementQueue::new(engine, tasks.background.clone());
    let antientropy = AntiEntropy::new(
        cluster.clone(),
        store.clone(),
        replicas.clone(),
        movement.clone(),
        clock.clone(),
        cfg.tombstone_grace,
    );
    Node::new(Parts {
        cfg,
        cluster,
        store,
        clock,
        replicas,
        hints,
        coord,
        movement,
        antientropy,
        tasks,
        workers: Workers::default(),
        leaving: Default::default(),
    })
}

/// Tries the members marked down again every retry interval, so one that
/// answers again is no longer skipped.
struct Recheck {
    cluster: Cluster,
    rounds: u64,
}

impl Worker for Recheck {
    type Error = std::convert::Infallible;

    fn name(&self) -> String {
        "liveness".into()
    }

    fn status(&self) -> String {
        let down = self.cluster.liveness().down_nodes();
        format!("{} rechecks, {} members down", self.rounds, down.len())
    }

    async fn work(&mut self) -> Result<WorkerState, Self::Error> {
        self.rounds += 1;
        self.cluster.recheck_down().await;
        Ok(WorkerState::Idle)
    }

    async fn wait_for_work(&mut self) -> WorkerState {
        let every: Duration = self.cluster.liveness().retry_interval();
        tokio::time::sleep(every).await;
        WorkerState::Busy
    }
}
