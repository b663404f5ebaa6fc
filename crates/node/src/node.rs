//! A running node's parts, as the doors (the binary protocol's handlers,
//! HTTP, the listener) and the node's handle see them.
//!
//! [`Node`] bundles what `start` built: the cluster plane, the store, the
//! coordinator, the movement queue, anti-entropy, and the node's tasks and
//! workers. Only the doors, `start` and the handle hold it; every part below
//! them was given exactly what it uses when it was built.

use std::ops::Deref;
use std::sync::{Arc, PoisonError};

use mydht_cluster::Cluster;
use mydht_store::{HybridClock, Store};

use crate::antientropy::AntiEntropy;
use crate::config::NodeConfig;
use crate::coord::Coordinator;
use crate::lifecycle::leave::LeaveProgress;
use crate::movement::queue::MovementQueue;
use crate::replication::Replicas;
use crate::replication::hints::Hints;
use crate::tasks::{Tasks, Workers};

/// A running node's parts. Cheap to clone.
pub(crate) struct Node<S>(Arc<Parts<S>>);

/// What a node is made of.
pub(crate) struct Parts<S> {
    pub cfg: NodeConfig,
    pub cluster: Cluster,
    pub store: Arc<S>,
    pub clock: Arc<HybridClock>,
    pub replicas: Replicas<S>,
    pub hints: Hints<S>,
    pub coord: Coordinator<S>,
    pub movement: MovementQueue<S>,
    pub antientropy: AntiEntropy<S>,
    pub tasks: Tasks,
    pub workers: Workers,
    /// The latest leave's progress, for a leave cut short.
    pub leaving: LeaveProgress,
}

impl<S> Clone for Node<S> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<S> Deref for Node<S> {
    type Target = Parts<S>;

    fn deref(&self) -> &Parts<S> {
        &self.0
    }
}

impl<S: Store> Node<S> {
    pub fn new(parts: Parts<S>) -> Self {
        Self(Arc::new(parts))
    }

    /// Whether a leave of this node's own has begun.
    pub fn leave_started(&self) -> bool {
        self.leaving
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Runs `work` unless intake stops first: a request waiting on long
    /// work (a pass, other members) then answers at once instead of holding
    /// up the node's shutdown, and the work itself stops with its phase.
    pub async fn unless_stopping<T>(&self, work: impl Future<Output = T>) -> Option<T> {
        tokio::select! {
            r = work => Some(r),
            () = self.tasks.intake.stopping() => None,
        }
    }
}
