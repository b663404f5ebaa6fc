//! The coordinator: any node takes a client's read or write and carries it
//! out over the key's replicas, whichever door (binary protocol or HTTP)
//! it came through.
//!
//! A write is stamped once with this node's hybrid logical clock (past the
//! newest version the client has seen), sent to the key's whole write set
//! at once, and answered when W replicas acknowledged: W of the replicas
//! holding the key now and, while members join or leave, W of those that
//! will hold it after ([`quorum`]); a retry with the same write id is answered with the first
//! outcome ([`dedup`]). A read asks the read set at once, answers with the
//! newest version once R replicas answered, and repairs stale replicas in
//! the background with that version, unchanged. Both give up early when so
//! many replicas failed that the quorum cannot be reached.
//!
//! It speaks no wire types: it takes keys, values ([`ValueStream`]) and
//! versions and answers [`Written`], [`Read`] or a [`CoordError`]; the doors
//! turn those into frames or HTTP responses.

pub(crate) mod dedup;
pub(crate) mod quorum;
mod read;
mod write;

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mydht_cluster::Cluster;
use mydht_proto::Version;
use mydht_ring::NodeId;
use mydht_store::{HybridClock, Store};
use thiserror::Error;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

use crate::replication::Replicas;
use crate::replication::hints::Hints;
use crate::value::{ValueError, ValueStream};
use dedup::Dedup;
use quorum::QuorumTracker;

/// What a write stores.
pub(crate) enum Write {
    /// A value that came whole (at most a chunk).
    Value(Bytes),
    /// A value that streams in.
    Stream(ValueStream),
    /// A delete.
    Tombstone,
}

/// A write that reached its quorum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Written {
    /// The version stamped.
    pub version: Version,
    /// Whether it was a delete.
    pub deleted: bool,
}

/// A value read, with its version.
pub(crate) struct Read {
    pub version: Version,
    pub value: ValueStream,
}

/// Why a coordinated read or write did not succeed.
#[derive(Debug, Error)]
pub(crate) enum CoordError {
    /// The request itself is wrong (a quorum outside 1..=N, a version too
    /// far ahead of this node's clock).
    #[error("{reason}")]
    BadRequest {
        /// What is wrong.
        reason: String,
    },
    /// The key holds no value (absent or deleted).
    #[error("value not found")]
    NotFound,
    /// Fewer than W replicas acknowledged; the write may be partly applied.
    #[error("{acked} of {required} replicas acknowledged")]
    Quorum {
        /// Acknowledgements from counted replicas.
        acked: usize,
        /// W.
        required: usize,
    },
    /// Fewer than R replicas answered a read.
    #[error("{answered} of {required} replicas answered")]
    Unavailable {
        /// Replicas that answered.
        answered: usize,
        /// R.
        required: usize,
        /// The replicas that did not (down, or failed).
        nodes: Vec<NodeId>,
    },
    /// The client's value broke off or broke its rules.
    #[error(transparent)]
    Value(#[from] ValueError),
    /// This node's clock is too far ahead of the other members' to stamp
    /// writes.
    #[error("this node's clock is {ahead_ms} ms ahead of the other members'")]
    ClockAhead {
        /// How far ahead.
        ahead_ms: u64,
        /// The bound.
        bound_ms: u64,
    },
    /// The key holds a version stamped too far ahead to write above.
    #[error("the key holds a version {node} stamped {ahead_ms} ms ahead")]
    FutureVersion {
        /// Who stamped it.
        node: NodeId,
        /// How far ahead.
        ahead_ms: u64,
    },
    /// Something on this node failed.
    #[error("{reason}")]
    Internal {
        /// What.
        reason: String,
    },
}

/// What the coordinator works with.
pub(crate) struct CoordParts<S> {
    pub cluster: Cluster,
    pub replicas: Replicas<S>,
    pub clock: Arc<HybridClock>,
    /// Where missed replicas are remembered.
    pub hints: Hints<S>,
    /// Where replica calls still running after the answer, and read
    /// repairs, run.
    pub tasks: TaskTracker,
    pub request_timeout: Duration,
}

/// The coordinator of one node. Cheap to clone.
pub(crate) struct Coordinator<S>(Arc<Inner<S>>);

struct Inner<S> {
    cluster: Cluster,
    replicas: Replicas<S>,
    clock: Arc<HybridClock>,
    hints: Hints<S>,
    dedup: Dedup,
    tasks: TaskTracker,
    request_timeout: Duration,
}

impl<S> Clone for Coordinator<S> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<S: Store> Coordinator<S> {
    pub fn new(parts: CoordParts<S>) -> Self {
        Self(Arc::new(Inner {
            cluster: parts.cluster,
            replicas: parts.replicas,
            clock: parts.clock,
            hints: parts.hints,
            dedup: Dedup::default(),
            tasks: parts.tasks,
            request_timeout: parts.request_timeout,
        }))
    }
}

/// Answers from targets called at once, each as it comes.
type Answers<T, E> = mpsc::Receiver<(NodeId, Result<T, E>)>;

impl<S: Store> Coordinator<S> {
    /// Calls every target at once, each in its own task on the
    /// coordinator's tracker (so the calls still running when the quorum is
    /// decided go on in the background); their answers come on the channel
    /// returned, which holds `capacity` of them unread. `make_call` gives
    /// the call, once, if there is any target.
    fn call_each<A, T, E, F, Fut>(
        &self,
        targets: impl Iterator<Item = (NodeId, A)>,
        capacity: usize,
        make_call: impl FnOnce() -> F,
    ) -> Answers<T, E>
    where
        A: Send + 'static,
        // Each task gets its own copy of `call` and makes its future itself,
        // so no large future is built here and moved into the task.
        F: FnOnce(NodeId, A) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send,
        T: Send + 'static,
        E: Display + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let mut targets = targets.peekable();
        // Made only when there is somebody to call: what it captures (a
        // value, the key) is not copied for a write that stays local.
        let mut last = targets.peek().is_some().then(make_call);
        while let Some((node, arg)) = targets.next() {
            // The last task takes `call` itself; the others a copy.
            let call = if targets.peek().is_some() {
                last.clone()
            } else {
                last.take()
            };
            let Some(call) = call else { break };
            let tx = tx.clone();
            self.0.tasks.spawn(async move {
                let result = call(node.clone(), arg).await;
                if let Err(e) = &result {
                    tracing::debug!(%node, error = %e, "replica call failed");
                }
                let _ = tx.send((node, result)).await;
            });
        }
        rx
    }
}

/// Feeds `answers` to `tracker` until the quorum is decided or every call
/// has answered, handing each answer to `each` too.
async fn until_decided<T, E: Display>(
    tracker: &mut QuorumTracker,
    answers: &mut Answers<T, E>,
    mut each: impl FnMut(NodeId, Result<T, E>),
) {
    while !tracker.decided() {
        let Some((node, result)) = answers.recv().await else {
            break;
        };
        tracker.record(&node, &result);
        each(node, result);
    }
}

/// `asked` (`w` or `r`), or the ring's default; at most the effective N.
fn quorum_of(asked: Option<u8>, default: usize, n: usize, what: &str) -> Result<usize, CoordError> {
    match asked.map(usize::from) {
        None => Ok(default),
        Some(k) if (1..=n.max(1)).contains(&k) => Ok(k),
        Some(k) => Err(CoordError::BadRequest {
            reason: format!("{what}={k} is outside 1..={n} (the effective N)"),
        }),
    }
}
