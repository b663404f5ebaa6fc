//! What every part of a running node shares: its settings, store, clock,
//! membership, peer connections, retry cache and task ownership.

use mydht_store::HybridClock;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use mydht_cluster::Cluster;

use std::sync::Arc;

use crate::NodeConfig;
use crate::coord::Coordinator;
use crate::movement::Movement;
use crate::replication::Replicas;

pub(crate) struct Shared<S> {
    pub cfg: NodeConfig,
    pub store: Arc<S>,
    pub clock: Arc<HybridClock>,
    pub cluster: Cluster,
    pub replicas: Replicas<S>,
    pub coord: Coordinator<S>,
    /// Data movement in progress, for the status page.
    pub movement: Movement,
    /// Every task the node starts is tracked here, so shutdown can wait for
    /// them all.
    pub tasks: TaskTracker,
    /// Cancelled when the node shuts down.
    pub stop: CancellationToken,
}
