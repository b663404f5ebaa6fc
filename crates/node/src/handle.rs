//! The handle a started node is driven through, by the `mydht` binary,
//! by programs that embed a node, and by tests: its name and address, a
//! snapshot of its state, a leave, and a shutdown that stops its work in
//! order (see `tasks`).

use std::net::SocketAddr;
use std::time::Duration;

use mydht_ring::NodeId;
use mydht_store::Store;

use crate::lifecycle::gossip::removed_by_others;
use crate::lifecycle::leave::{LeaveError, LeaveReport, leave, progress_text};
use crate::node::Node;
use crate::obs::status::{NodeStatus, snapshot};
use crate::tasks::Tasks;

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// What a handle asks of its node, without the store type in the handle.
trait Control: Send + Sync {
    fn leave(&self, deadline: Duration) -> BoxFuture<'_, Result<LeaveReport, LeaveError>>;
    fn leave_progress(&self) -> String;
    fn status(&self) -> NodeStatus;
    fn removed(&self) -> bool;
}

impl<S: Store> Control for Node<S> {
    fn leave(&self, deadline: Duration) -> BoxFuture<'_, Result<LeaveReport, LeaveError>> {
        Box::pin(leave(
            &self.cluster,
            &self.movement,
            &self.leaving,
            deadline,
        ))
    }

    fn leave_progress(&self) -> String {
        progress_text(&self.leaving)
    }

    fn status(&self) -> NodeStatus {
        snapshot(self)
    }

    fn removed(&self) -> bool {
        removed_by_others(&self.cluster, self.leave_started())
    }
}

/// A running node. Dropping the handle does not stop it; call
/// [`shutdown`](Self::shutdown).
pub struct NodeHandle {
    name: NodeId,
    addr: SocketAddr,
    tasks: Tasks,
    control: Box<dyn Control>,
}

impl NodeHandle {
    pub(crate) fn new<S: Store>(name: NodeId, addr: SocketAddr, node: Node<S>) -> Self {
        Self {
            name,
            addr,
            tasks: node.tasks.clone(),
            control: Box::new(node),
        }
    }

    /// The node's advertised name (`host:port`).
    pub fn name(&self) -> &NodeId {
        &self.name
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The node's state now: its ring and members, N/W/R, its store's
    /// counts, data movement and workers (what `/status.json` serves).
    pub fn status(&self) -> NodeStatus {
        self.control.status()
    }

    /// Stops the node: no new connections or requests, then requests in
    /// flight finish, then background work stops, then calls to other
    /// members; waits for each (at most a few seconds apiece). The store
    /// closes when the node's last part is dropped, normally before this
    /// returns.
    pub async fn shutdown(self) {
        self.tasks.shutdown().await;
        drop(self.control);
    }

    /// Leaves the ring, handing every key to the members that own it once
    /// this node is gone; call [`shutdown`](Self::shutdown) after. Past
    /// `deadline` the hand-off stops and the error says how far it got. A
    /// last member has nobody to hand off to and leaves nothing.
    pub async fn leave(&self, deadline: Duration) -> Result<LeaveReport, LeaveError> {
        self.control.leave(deadline).await
    }

    /// How far the latest hand-off got (for a leave cut short).
    pub fn leave_progress(&self) -> String {
        self.control.leave_progress()
    }

    /// Whether another member removed this node from the ring (it then
    /// stops by itself: see [`stopped`](Self::stopped)).
    pub fn removed(&self) -> bool {
        self.control.removed()
    }

    /// Waits until the node has stopped (after a shutdown from elsewhere,
    /// or by itself once removed).
    pub async fn stopped(&self) {
        self.tasks.stopped().await;
    }
}
